// The daemon's audit log end to end (issue #7 parts 1, 2 and 4): a real
// hosn-keyd on a SoftHSM token per test over loopback mTLS, real decisions
// (SignManifest through the HSM, refused callers), `hosnctl audit export` as
// the auditor and `hosnctl audit verify` on the copy. Case A1 of
// ../shared/cases/README.md: deletion, truncation, edits and reordering of
// the copy are each caught and named by entry number. Also: rotation keeps
// the chain, a full disk turns decisions into UNAVAILABLE with the metric and
// health showing it, a daemon that cannot open its log refuses to start, and
// kill -9 under load loses no acknowledged entry.
#include <openssl/sha.h>
#include <signal.h>
#include <sys/mount.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/agent/cli/keyd_channel.h"
#include "common/audit/audit_format.h"
#include "common/audit/audit_reader.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "gmock/gmock.h"
#include "hosn/keyd/v1/audit.grpc.pb.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"
#include "tests/client/ctl/keyd_fixture.h"
#include "tests/server/api/grpc_test_util.h"
#include "tests/server/keyd/cms_attributes.h"

namespace hosn::ctl::keyd_fixture {
namespace {

namespace v1 = ::hosn::keyd::v1;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

constexpr char kSmallLog[] = "checkpoint_interval: 10 max_file_bytes: 4096";

class AuditTest : public KeydFixture {
 protected:
  // A second daemon directory with its own audit block.
  void Restart(const std::string& audit_fields) {
    if (keyd_ != nullptr) (void)keyd_->Stop(SIGTERM, absl::Seconds(30));
    daemon_dir_ = dir_.Join("keyd");
    fs::create_directories(daemon_dir_);
    ASSERT_NO_FATAL_FAILURE(StartKeyd(daemon_dir_, absl::StrCat("audit { directory: \"", AuditDir(),
                                                                "\" ", audit_fields, " }\n")));
  }
  std::string AuditDir() const { return daemon_dir_ + "/audit"; }

  std::shared_ptr<grpc::Channel> Channel(const std::string& client) {
    agent::KeydEndpoint endpoint{Address(), absl::StrCat(pki_, "/", client, ".pem"),
                                 absl::StrCat("file:", pki_, "/", client, ".key"),
                                 absl::StrCat(pki_, "/ca.pem"), ""};
    auto channel = agent::MakeKeydChannel(endpoint);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return *channel;
  }

  // One SignManifest for `manifest`; the gRPC status.
  grpc::Status Sign(v1::SigningService::Stub& stub, const std::string& manifest) {
    v1::SignManifestRequest request;
    request.set_manifest(manifest);
    request.set_cms_signed_attributes(hosn::testing::CmsAttributesFor(manifest, SignerChain()));
    v1::SignManifestResponse response;
    auto context = agent::ContextWithTimeout(absl::Seconds(20));
    return stub.SignManifest(context.get(), request, &response);
  }
  const std::string& SignerChain() {
    if (chain_.empty()) chain_ = ReadFileOrDie(absl::StrCat(pki_, "/hsm-signer.pem"));
    return chain_;
  }

  // `n` signatures as the signer.
  void SignMany(int n) {
    auto stub = v1::SigningService::NewStub(Channel("signer"));
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(Sign(*stub, absl::StrCat("manifest ", i)).ok());
    }
  }

  // hosnctl audit ...; output in audit.txt; the exit code.
  int Hosnctl(const std::string& args) {
    return Sh(absl::StrCat(BinaryPath("client/ctl/hosnctl"), " audit ", args, " >",
                           dir_.Join("audit.txt"), " 2>&1"));
  }
  std::string Output() { return ReadFileOrDie(dir_.Join("audit.txt")); }
  int Export(const std::string& out, const std::string& client = "auditor") {
    return Hosnctl(absl::StrCat("export --keyd ", Address(), " --tls-cert ", pki_, "/", client,
                                ".pem --tls-key file:", pki_, "/", client, ".key --tls-ca ", pki_,
                                "/ca.pem --out ", out));
  }
  int Verify(const std::string& log, const std::string& extra = "") {
    return Hosnctl(absl::StrCat("verify --log ", log, " --ca ", pki_, "/ca.pem ", extra));
  }

  // The lines of an exported copy's single entry file.
  std::vector<std::string> Lines(const std::string& copy) {
    return absl::StrSplit(ReadFileOrDie(copy + "/audit-000001.jsonl"), '\n', absl::SkipEmpty());
  }
  void WriteLines(const std::string& copy, const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    WriteFileOrDie(copy + "/audit-000001.jsonl", text);
  }
  // A copy of the export in `name`.
  std::string CopyOf(const std::string& exported, const std::string& name) {
    const std::string copy = dir_.Join(name);
    fs::copy(exported, copy, fs::copy_options::recursive);
    return copy;
  }

  std::string daemon_dir_;
  std::string chain_;
};

// Decisions land in the log with actor and outcome; the auditor's export
// verifies; callers without the auditor role cannot export.
TEST_F(AuditTest, DecisionsAreLoggedAndTheExportVerifies) {
  ASSERT_NO_FATAL_FAILURE(Restart(kSmallLog));
  ASSERT_NO_FATAL_FAILURE(SignMany(3));
  auto as_node = v1::SigningService::NewStub(Channel("node-a"));
  EXPECT_EQ(Sign(*as_node, "not yours").error_code(), grpc::StatusCode::PERMISSION_DENIED);

  const std::string out = dir_.Join("export");
  ASSERT_EQ(Export(out), 0) << Output();
  EXPECT_THAT(Output(), HasSubstr("anchor: sequence"));
  ASSERT_EQ(Verify(out), 0) << Output();
  EXPECT_THAT(Output(), HasSubstr("verified: 5 entries"));

  std::vector<v1::AuditRecord> records;
  for (const std::string& line : Lines(out)) {
    HOSN_ASSERT_OK_AND_ASSIGN(v1::AuditRecord record, audit::ParseRecord(line));
    records.push_back(record);
  }
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0].event(), "daemon.start");  // the fixture's first daemon used another dir
  EXPECT_EQ(records[1].event(), "manifest.sign");
  EXPECT_EQ(records[1].actor(), "hosn://signer/ci");
  EXPECT_EQ(records[1].outcome(), "ok");
  EXPECT_EQ(records[4].event(), "auth.failure");
  EXPECT_EQ(records[4].actor(), "hosn://node/a");
  EXPECT_EQ(records[4].outcome(), "denied");

  // Only auditors read the log; a refused export is exit 5.
  EXPECT_EQ(Export(dir_.Join("by-signer"), "signer"), 5) << Output();
  // The refusal itself is an audited decision.
  ASSERT_EQ(Export(dir_.Join("export2")), 0) << Output();
  EXPECT_THAT(ReadFileOrDie(dir_.Join("export2/audit-000001.jsonl")),
              HasSubstr("\"actor\":\"hosn://signer/ci\",\"outcome\":\"denied\""));
}

// StreamAuditLog with follow delivers new entries as they become durable,
// until the auditor cancels; it starts from any sequence.
TEST_F(AuditTest, StreamFollowsUntilCancelled) {
  ASSERT_NO_FATAL_FAILURE(Restart(kSmallLog));
  ASSERT_NO_FATAL_FAILURE(SignMany(2));  // entries 1 (daemon.start), 2, 3
  auto audit_stub = v1::AuditService::NewStub(Channel("auditor"));
  grpc::ClientContext context;
  v1::StreamAuditLogRequest request;
  request.set_from_sequence(2);
  request.set_follow(true);
  auto reader = audit_stub->StreamAuditLog(&context, request);
  v1::StreamAuditLogResponse item;
  ASSERT_TRUE(reader->Read(&item));
  EXPECT_EQ(item.sequence(), 2u);
  ASSERT_TRUE(reader->Read(&item));
  EXPECT_EQ(item.sequence(), 3u);
  // A decision made now arrives on the open stream.
  auto signer = v1::SigningService::NewStub(Channel("signer"));
  ASSERT_TRUE(Sign(*signer, "while following").ok());
  ASSERT_TRUE(reader->Read(&item));
  EXPECT_EQ(item.sequence(), 4u);
  EXPECT_THAT(item.entry_json(), HasSubstr("manifest.sign"));
  context.TryCancel();
  while (reader->Read(&item)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// Case A1 on an exported copy of 100+ entries across rotated files: every
// tamper is refused (exit 3) and named by entry number; the untouched copy
// and the daemon's own rotated directory verify.
TEST_F(AuditTest, TamperingWithTheExportIsNamedByEntry) {
  ASSERT_NO_FATAL_FAILURE(Restart(kSmallLog));
  ASSERT_NO_FATAL_FAILURE(SignMany(100));
  // Rotation: the daemon's log spans several files and still verifies.
  EXPECT_GT(audit::ListLogFiles(AuditDir()).size(), 3u);
  ASSERT_EQ(Verify(AuditDir(), absl::StrCat("--signer-chain ", pki_, "/hsm-signer.pem")), 0)
      << Output();

  const std::string out = dir_.Join("export");
  ASSERT_EQ(Export(out), 0) << Output();
  ASSERT_EQ(Verify(out), 0) << Output();
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 101u);

  // Truncation: the last 5 entries removed; the daemon's anchor names 101.
  {
    const std::string copy = CopyOf(out, "truncated");
    WriteLines(copy, std::vector<std::string>(lines.begin(), lines.end() - 5));
    EXPECT_EQ(Verify(copy), 3) << Output();
    EXPECT_THAT(Output(), HasSubstr("entry 101: "));
  }
  // Deletion of 40-44.
  {
    const std::string copy = CopyOf(out, "deleted");
    std::vector<std::string> kept = lines;
    kept.erase(kept.begin() + 39, kept.begin() + 44);
    WriteLines(copy, kept);
    EXPECT_EQ(Verify(copy), 3) << Output();
    EXPECT_THAT(Output(), HasSubstr("entry 40: missing"));
  }
  // Deletion of 40-44, renumbered and relinked without the HSM key: the
  // chain is whole again, the first signed checkpoint after 40 is not.
  {
    const std::string copy = CopyOf(out, "relinked");
    std::vector<std::string> kept = lines;
    kept.erase(kept.begin() + 39, kept.begin() + 44);
    std::string previous(audit::kGenesisHash);
    for (size_t i = 0; i < kept.size(); ++i) {
      HOSN_ASSERT_OK_AND_ASSIGN(v1::AuditRecord record, audit::ParseRecord(kept[i]));
      record.set_sequence(i + 1);
      record.set_previous_sha256(previous);
      HOSN_ASSERT_OK_AND_ASSIGN(kept[i], audit::SerializeRecord(record));
      previous = audit::LineHash(kept[i]);
    }
    WriteLines(copy, kept);
    EXPECT_EQ(Verify(copy), 3) << Output();
    EXPECT_THAT(Output(), HasSubstr("checkpoint mismatch"));
    EXPECT_THAT(Output(), Not(HasSubstr("chain broken")));
  }
  // An edit of entry 30 (the actor) breaks the link at 31.
  {
    const std::string copy = CopyOf(out, "edited");
    std::vector<std::string> edited = lines;
    const size_t at = edited[29].find("hosn://signer/ci");
    ASSERT_NE(at, std::string::npos);
    edited[29].replace(at, 16, "hosn://signer/xx");
    WriteLines(copy, edited);
    EXPECT_EQ(Verify(copy), 3) << Output();
    EXPECT_THAT(Output(), HasSubstr("entry 31: chain broken"));
  }
  // Entries 50 and 51 swapped.
  {
    const std::string copy = CopyOf(out, "reordered");
    std::vector<std::string> swapped = lines;
    std::swap(swapped[49], swapped[50]);
    WriteLines(copy, swapped);
    EXPECT_EQ(Verify(copy), 3) << Output();
    EXPECT_THAT(Output(), HasSubstr("out of order"));
    EXPECT_THAT(Output(), HasSubstr("entry 50: "));
  }
  // A torn last line is reported, and is not tampering.
  {
    const std::string copy = CopyOf(out, "torn");
    WriteFileOrDie(copy + "/audit-000001.jsonl",
                   ReadFileOrDie(copy + "/audit-000001.jsonl") + "{\"sequence\":\"10");
    EXPECT_EQ(Verify(copy), 0) << Output();
    EXPECT_THAT(Output(), HasSubstr("torn tail"));
  }
  // A certificate of the right CA but another key: every signature is bad.
  EXPECT_EQ(Verify(out, absl::StrCat("--signer-chain ", pki_, "/server.pem")), 3) << Output();
  EXPECT_THAT(Output(), HasSubstr("entry 10: bad checkpoint signature"));
  // A signer certificate the auditor's CA did not issue is refused (exit 4).
  ASSERT_EQ(Sh(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                            "-nodes -subj /CN=other -days 1 -keyout ",
                            dir_.Join("other.key"), " -out ", dir_.Join("other.pem"),
                            " >/dev/null 2>&1")),
            0);
  EXPECT_EQ(Verify(out, absl::StrCat("--signer-chain ", dir_.Join("other.pem"))), 4) << Output();
  EXPECT_THAT(Output(), HasSubstr("signer certificate not trusted"));
}

// A daemon that cannot open its log, or finds it altered, does not start.
TEST_F(AuditTest, UnusableLogRefusesToStart) {
  ASSERT_TRUE(keyd_->Stop(SIGTERM, absl::Seconds(30)).ok());
  const std::string dir = dir_.Join("refused");
  fs::create_directories(dir);
  WriteFileOrDie(dir_.Join("not-a-dir"), "x");
  const auto start = [&](const std::string& audit_dir) {
    const std::string config = dir + "/keyd.textproto";
    std::string text = ReadFileOrDie(dir_.Join("keyd.textproto"));
    text.replace(text.find("audit {"), std::string::npos,
                 absl::StrCat("audit { directory: \"", audit_dir, "\" }\n"));
    WriteFileOrDie(config, text);
    KeydProcess keyd(config, dir);
    auto code = keyd.WaitExit(absl::Seconds(30));
    EXPECT_TRUE(code.ok()) << code.status();
    return std::make_pair(code.value_or(-1), keyd.Log());
  };
  auto [code, log] = start(dir_.Join("not-a-dir/audit"));
  EXPECT_EQ(code, 73) << log;
  EXPECT_THAT(log, HasSubstr("audit_open_failed"));

  // An entry in the middle of the newest file no longer parses.
  const std::string altered = dir_.Join("audit");  // the fixture daemon's log
  const std::string file = altered + "/" + audit::LogFileName(1);
  std::string text = ReadFileOrDie(file);
  text.insert(0, "garbage\n");
  WriteFileOrDie(file, text);
  std::tie(code, log) = start(altered);
  EXPECT_EQ(code, 65) << log;
}

// A full disk under the log: decisions fail with UNAVAILABLE, the gauge goes
// to 0, health reports NOT_SERVING, and the daemon's log says why.
TEST_F(AuditTest, FullDiskRefusesDecisions) {
  const std::string mount_point = dir_.Join("small");
  fs::create_directories(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point};
  ASSERT_TRUE(keyd_->Stop(SIGTERM, absl::Seconds(30)).ok());
  daemon_dir_ = dir_.Join("keyd");
  fs::create_directories(daemon_dir_);
  ASSERT_NO_FATAL_FAILURE(
      StartKeyd(daemon_dir_, absl::StrCat("audit { directory: \"", mount_point, "/audit\" }\n")));
  auto stub = v1::SigningService::NewStub(Channel("signer"));
  ASSERT_TRUE(Sign(*stub, "before").ok());
  auto metrics = hosn::testing::HttpGet(keyd_->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("hosn_keyd_audit_healthy 1"));
  // Checkpoint signing works (outages: tests/server/audit/audit_outage_test.cc).
  EXPECT_THAT(*metrics, HasSubstr("hosn_keyd_audit_checkpoint_signing 1"));
  EXPECT_THAT(*metrics, HasSubstr("hosn_keyd_audit_checkpoint_failures_total 0"));

  // Fill the file system.
  Sh(absl::StrCat("dd if=/dev/zero of=", mount_point, "/fill bs=4k 2>/dev/null"));
  // The last page of the file may still have room for a few entries.
  grpc::Status refused;
  int signed_after_full = 0;
  while (signed_after_full < 100 &&
         (refused = Sign(*stub, absl::StrCat("after ", signed_after_full))).ok()) {
    ++signed_after_full;
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_EQ(refused.error_message(), "audit log unavailable");
  EXPECT_EQ(Sign(*stub, "again").error_code(), grpc::StatusCode::UNAVAILABLE);
  metrics = hosn::testing::HttpGet(keyd_->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("hosn_keyd_audit_healthy 0"));
  grpc::Status health_status;
  EXPECT_EQ(hosn::testing::HealthCheck(Channel("operator"), "", &health_status), 2);
  EXPECT_THAT(keyd_->Log(), HasSubstr("audit_unhealthy"));
  EXPECT_THAT(keyd_->Log(), HasSubstr("No space left on device"));
  // Room again does not silently resume: the log stays refused until restart.
  fs::remove(mount_point + "/fill");
  EXPECT_EQ(Sign(*stub, "later").error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(keyd_->Stop(SIGKILL, absl::Seconds(30)).ok());
}

// kill -9 while 8 clients sign: every signature a client received has its
// entry in the log after the restart; the chain verifies; a torn last line
// is reported as torn and numbering continues after it.
TEST_F(AuditTest, KillNineLosesNoAcknowledgedEntry) {
  ASSERT_NO_FATAL_FAILURE(Restart("checkpoint_interval: 50 max_file_bytes: 65536"));
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> acknowledged;  // hex SHA-256 of signed manifests
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto stub = v1::SigningService::NewStub(Channel("signer"));
      for (int i = 0; !stop.load(); ++i) {
        const std::string manifest = absl::StrCat("load ", t, " ", i);
        if (Sign(*stub, manifest).ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(Sha256Hex(manifest));
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(keyd_->Stop(SIGKILL, absl::Seconds(30)).ok());
  stop.store(true);
  for (std::thread& client : clients) client.join();
  ASSERT_GT(acknowledged.size(), 50u);
  std::printf("acknowledged before kill -9: %zu signatures\n", acknowledged.size());

  // Simulate a crash in the middle of a write: half a line at the end.
  const std::vector<uint64_t> files = audit::ListLogFiles(AuditDir());
  ASSERT_FALSE(files.empty());
  const std::string newest = AuditDir() + "/" + audit::LogFileName(files.back());
  const std::string before = ReadFileOrDie(newest);
  WriteFileOrDie(newest, before + "{\"sequence\":\"99999\",\"ti");
  ASSERT_EQ(Verify(AuditDir(), absl::StrCat("--signer-chain ", pki_, "/hsm-signer.pem")), 0)
      << Output();
  EXPECT_THAT(Output(), HasSubstr("torn tail"));

  keyd_.reset();
  ASSERT_NO_FATAL_FAILURE(
      StartKeyd(daemon_dir_, absl::StrCat("audit { directory: \"", AuditDir(),
                                          "\" checkpoint_interval: 50 max_file_bytes: 65536 }\n")));
  EXPECT_THAT(keyd_->Log(), HasSubstr("audit_torn_tail"));
  ASSERT_NO_FATAL_FAILURE(SignMany(1));

  const std::string out = dir_.Join("export");
  ASSERT_EQ(Export(out), 0) << Output();
  ASSERT_EQ(Verify(out), 0) << Output();
  std::set<std::string> logged;
  uint64_t expected = 1;
  bool restarted = false;
  for (const std::string& line : Lines(out)) {
    HOSN_ASSERT_OK_AND_ASSIGN(v1::AuditRecord record, audit::ParseRecord(line));
    EXPECT_EQ(record.sequence(), expected++);
    for (const auto& attribute : record.attributes()) {
      if (attribute.name() == "manifest_sha256") logged.insert(attribute.value());
      if (attribute.name() == "torn_tail_bytes") restarted = true;
    }
  }
  EXPECT_TRUE(restarted) << "daemon.start after the crash records the torn tail";
  for (const std::string& digest : acknowledged) {
    EXPECT_TRUE(logged.count(digest)) << "acknowledged signature missing from the log: " << digest;
  }
}

}  // namespace
}  // namespace hosn::ctl::keyd_fixture
