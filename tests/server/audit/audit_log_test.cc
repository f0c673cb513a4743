#include "server/audit/audit_log.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/audit/audit_format.h"
#include "common/audit/audit_verify.h"
#include "common/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::audit {
namespace {

using hosn::keyd::v1::AuditRecord;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// A software stand-in for the HSM checkpoint key: a real P-256 key, signing
// with the same algorithm the daemon uses.
class SoftwareSigner : public CheckpointSigner {
 public:
  SoftwareSigner() : key_(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")) {}
  std::string algorithm() const override { return "ecdsa-p256-sha256"; }
  absl::StatusOr<std::string> Sign(std::string_view message) override {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t length = 0;
    if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &length,
                       reinterpret_cast<const uint8_t*>(message.data()), message.size()) != 1) {
      return absl::InternalError("sign");
    }
    std::string out(length, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &length,
                       reinterpret_cast<const uint8_t*>(message.data()), message.size()) != 1) {
      return absl::InternalError("sign");
    }
    out.resize(length);
    return out;
  }
  EVP_PKEY* key() const { return key_.get(); }

 private:
  UniquePkey key_;
};

AuditRecord Release(int i) {
  AuditRecord record;
  record.set_event("key.release");
  record.set_actor(absl::StrCat("hosn://node/n", i % 7));
  record.set_outcome(i % 3 == 0 ? "denied" : "granted");
  if (i % 3 == 0) record.set_reason("pcr 7 mismatch");
  auto* model = record.add_attributes();
  model->set_name("model");
  model->set_value("embeddings-en");
  return record;
}

class AuditLogTest : public ::testing::Test {
 protected:
  AuditLogOptions Options() {
    AuditLogOptions options;
    options.directory = dir_.Join("audit");
    options.replica_id = "keyd-1";
    options.checkpoint_interval = 10;
    options.signer = &signer_;
    return options;
  }

  // Writes `n` entries through a fresh log and closes it.
  void WriteEntries(int n, AuditLogOptions options) {
    HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(options));
    for (int i = 1; i <= n; ++i) {
      HOSN_ASSERT_OK_AND_ASSIGN(uint64_t sequence, log->Append(Release(i)));
      ASSERT_EQ(sequence, static_cast<uint64_t>(i));
    }
    HOSN_ASSERT_OK(log->Close());
  }

  std::string LogPath(int index = 1) {
    return dir_.Join(absl::StrCat("audit/audit-", std::string(5, '0'), index, ".jsonl"));
  }

  std::vector<std::string> Lines(int index = 1) {
    auto contents = ReadFile(LogPath(index), 1 << 26);
    EXPECT_TRUE(contents.ok());
    std::vector<std::string> lines = absl::StrSplit(*contents, '\n', absl::SkipEmpty());
    return lines;
  }

  void WriteLines(const std::vector<std::string>& lines, int index = 1) {
    HOSN_ASSERT_OK(WriteFileAtomically(LogPath(index), absl::StrJoin(lines, "\n") + "\n", 0600));
  }

  VerifyReport Verify() {
    std::vector<std::string> files;
    for (int index = 1; std::filesystem::exists(LogPath(index)); ++index) {
      files.push_back(*ReadFile(LogPath(index), 1 << 26));
    }
    auto checkpoints = ReadFile(dir_.Join("audit/checkpoints.jsonl"), 1 << 26);
    VerifyOptions options;
    options.checkpoint_interval = 10;
    return VerifyAuditLog(files, checkpoints.ok() ? *checkpoints : "", signer_.key(), options);
  }

  // Deletes entries `first`..`last` and relinks the rest as an attacker
  // without the checkpoint key would: renumbered and rehashed.
  void DeleteAndRelink(int first, int last) {
    std::vector<std::string> lines = Lines();
    lines.erase(lines.begin() + (first - 1), lines.begin() + last);
    std::string previous(kGenesisHash);
    for (size_t i = 0; i < lines.size(); ++i) {
      HOSN_ASSERT_OK_AND_ASSIGN(AuditRecord record, ParseRecord(lines[i]));
      record.set_sequence(i + 1);
      record.set_previous_sha256(previous);
      HOSN_ASSERT_OK_AND_ASSIGN(lines[i], SerializeRecord(record));
      previous = LineHash(lines[i]);
    }
    WriteLines(lines);
  }

  // Keeps only the checkpoint lines for which `keep(sequence)` holds.
  void FilterCheckpoints(const std::function<bool(uint64_t)>& keep) {
    const std::string path = dir_.Join("audit/checkpoints.jsonl");
    std::vector<std::string> lines =
        absl::StrSplit(*ReadFile(path, 1 << 20), '\n', absl::SkipEmpty());
    std::string kept;
    for (const std::string& line : lines) {
      auto checkpoint = ParseCheckpoint(line);
      ASSERT_TRUE(checkpoint.ok());
      if (keep(checkpoint->sequence())) kept += line + "\n";
    }
    HOSN_ASSERT_OK(WriteFileAtomically(path, kept, 0600));
  }

  ScopedTempDir dir_;
  SoftwareSigner signer_;
};

// An untouched log of 100 entries verifies against its 10 checkpoints.
TEST_F(AuditLogTest, UntouchedLogVerifies) {
  WriteEntries(100, Options());
  const VerifyReport report = Verify();
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.entries, 100u);
  EXPECT_EQ(report.checkpoints_checked, 10u);
  EXPECT_TRUE(report.findings.empty());
}

// A1: deleting the last 5 entries is caught by the final signed checkpoint.
TEST_F(AuditLogTest, TruncationDetected) {
  WriteEntries(100, Options());
  std::vector<std::string> lines = Lines();
  lines.resize(95);
  WriteLines(lines);
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings, Contains(Field(&Finding::kind, FindingKind::kTruncated)));
  EXPECT_THAT(report.findings, Contains(Field(&Finding::sequence, 100u)));
}

// A1: deleting entries 40-44 and relinking the rest (renumbered, rehashed,
// without the checkpoint key) passes the chain but not the checkpoints.
TEST_F(AuditLogTest, RelinkedDeletionDetected) {
  WriteEntries(100, Options());
  ASSERT_NO_FATAL_FAILURE(DeleteAndRelink(40, 44));
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  // The chain itself is consistent again, so what catches it is the first
  // checkpoint after the deletion.
  EXPECT_THAT(report.findings, Contains(Field(&Finding::kind, FindingKind::kCheckpointMismatch)));
  EXPECT_THAT(report.findings, Contains(Field(&Finding::sequence, 40u)));
  EXPECT_THAT(report.findings,
              ::testing::Not(Contains(Field(&Finding::kind, FindingKind::kChainBroken))));
}

// Deleting entries without relinking names the gap and the broken link.
TEST_F(AuditLogTest, DeletionNamesEntries) {
  WriteEntries(100, Options());
  std::vector<std::string> lines = Lines();
  lines.erase(lines.begin() + 39, lines.begin() + 44);
  WriteLines(lines);
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings,
              Contains(::testing::AllOf(Field(&Finding::kind, FindingKind::kMissing),
                                        Field(&Finding::message, HasSubstr("entries 40 to 44")))));
  EXPECT_THAT(report.findings,
              Contains(::testing::AllOf(Field(&Finding::kind, FindingKind::kChainBroken),
                                        Field(&Finding::sequence, 45u))));
}

// Turning a denial into a grant breaks the chain at the next entry.
TEST_F(AuditLogTest, EditDetected) {
  WriteEntries(100, Options());
  std::vector<std::string> lines = Lines();
  HOSN_ASSERT_OK_AND_ASSIGN(AuditRecord record, ParseRecord(lines[29]));  // entry 30
  ASSERT_EQ(record.outcome(), "denied");
  record.set_outcome("granted");
  record.clear_reason();
  HOSN_ASSERT_OK_AND_ASSIGN(lines[29], SerializeRecord(record));
  WriteLines(lines);
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings,
              Contains(::testing::AllOf(Field(&Finding::kind, FindingKind::kChainBroken),
                                        Field(&Finding::sequence, 31u))));
  EXPECT_THAT(report.findings,
              Contains(::testing::AllOf(Field(&Finding::kind, FindingKind::kCheckpointMismatch),
                                        Field(&Finding::sequence, 30u))));
}

// A relinked deletion whose later checkpoint lines were deleted too is still
// caught: 65 entries without a checkpoint is more than the writer leaves.
TEST_F(AuditLogTest, RelinkPlusDeletedCheckpointsDetected) {
  WriteEntries(100, Options());
  ASSERT_NO_FATAL_FAILURE(DeleteAndRelink(40, 44));
  FilterCheckpoints([](uint64_t sequence) { return sequence < 40; });
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings,
              Contains(::testing::AllOf(Field(&Finding::kind, FindingKind::kMissingCheckpoint),
                                        Field(&Finding::sequence, 31u))));
  EXPECT_EQ(report.last_checkpoint_sequence, 30u);
  EXPECT_EQ(report.unanchored_entries, 65u);
}

// Cutting the last entries and the last checkpoint line leaves a log whose
// files agree; the daemon's own checkpoint, passed as an anchor, catches it,
// and the report names the entries no signature covers.
TEST_F(AuditLogTest, TailTruncationCaughtByAnchor) {
  WriteEntries(100, Options());
  const std::string head_at_100 = LineHash(Lines().back());
  std::vector<std::string> lines = Lines();
  lines.resize(95);
  WriteLines(lines);
  FilterCheckpoints([](uint64_t sequence) { return sequence < 100; });
  const VerifyReport files_only = Verify();
  EXPECT_TRUE(files_only.verified);
  EXPECT_EQ(files_only.last_checkpoint_sequence, 90u);
  EXPECT_EQ(files_only.unanchored_entries, 5u);

  std::vector<std::string> files = {*ReadFile(LogPath(), 1 << 20)};
  VerifyOptions options;
  options.checkpoint_interval = 10;
  options.anchor = CheckpointAnchor{100, head_at_100};
  const VerifyReport anchored = VerifyAuditLog(
      files, *ReadFile(dir_.Join("audit/checkpoints.jsonl"), 1 << 20), signer_.key(), options);
  EXPECT_FALSE(anchored.verified);
  EXPECT_THAT(anchored.findings, Contains(Field(&Finding::kind, FindingKind::kAnchorMismatch)));
}

// Swapping two entries is reported as out of order.
TEST_F(AuditLogTest, ReorderDetected) {
  WriteEntries(100, Options());
  std::vector<std::string> lines = Lines();
  std::swap(lines[60], lines[61]);
  WriteLines(lines);
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings,
              Contains(::testing::AllOf(Field(&Finding::kind, FindingKind::kOutOfOrder),
                                        Field(&Finding::sequence, 61u))));
}

// A checkpoint signed by another key is refused.
TEST_F(AuditLogTest, ForeignCheckpointKeyRefused) {
  WriteEntries(20, Options());
  SoftwareSigner other;
  std::vector<std::string> files = {*ReadFile(LogPath(), 1 << 20)};
  const VerifyReport report =
      VerifyAuditLog(files, *ReadFile(dir_.Join("audit/checkpoints.jsonl"), 1 << 20), other.key());
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings,
              Contains(Field(&Finding::kind, FindingKind::kBadCheckpointSignature)));
}

// After a crash mid-write the torn last line is cut, reported as a torn tail
// (not tampering), and numbering continues.
TEST_F(AuditLogTest, TornTailRecovered) {
  WriteEntries(25, Options());
  {
    auto contents = ReadFile(LogPath(), 1 << 20);
    ASSERT_TRUE(contents.ok());
    HOSN_ASSERT_OK(WriteFileAtomically(LogPath(), *contents + "{\"sequence\":\"26\",\"ti", 0600));
  }
  std::vector<std::string> torn_files = {*ReadFile(LogPath(), 1 << 20)};
  const VerifyReport torn_report = VerifyAuditLog(
      torn_files, *ReadFile(dir_.Join("audit/checkpoints.jsonl"), 1 << 20), signer_.key());
  EXPECT_TRUE(torn_report.verified);
  EXPECT_THAT(torn_report.findings, Contains(Field(&Finding::kind, FindingKind::kTornTail)));

  HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(Options()));
  EXPECT_EQ(log->stats().torn_tail_bytes, 20u);
  HOSN_ASSERT_OK_AND_ASSIGN(uint64_t sequence, log->Append(Release(26)));
  EXPECT_EQ(sequence, 26u);
  HOSN_ASSERT_OK(log->Close());
  const VerifyReport report = Verify();
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.entries, 26u);
}

// The daemon refuses to append to a log whose whole lines were altered.
TEST_F(AuditLogTest, OpenRefusesTamperedLog) {
  WriteEntries(30, Options());
  std::vector<std::string> lines = Lines();
  std::swap(lines[28], lines[29]);
  WriteLines(lines);
  EXPECT_THAT(AuditLog::Open(Options()), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("entry")));
}

// The chain continues across rotated files and still verifies.
TEST_F(AuditLogTest, RotationKeepsChain) {
  AuditLogOptions options = Options();
  options.max_file_bytes = 2048;
  WriteEntries(60, options);
  ASSERT_TRUE(std::filesystem::exists(LogPath(2)));
  const VerifyReport report = Verify();
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.entries, 60u);
  // Reopening continues the numbering in the newest file.
  HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(options));
  HOSN_ASSERT_OK_AND_ASSIGN(uint64_t sequence, log->Append(Release(61)));
  EXPECT_EQ(sequence, 61u);
}

// Many threads appending share batches (group commit), get distinct
// sequence numbers 1..N, and the result verifies.
TEST_F(AuditLogTest, ConcurrentAppendsGroupCommit) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(Options()));
  std::vector<std::vector<uint64_t>> sequences(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto sequence = log->Append(Release(t * kPerThread + i));
        if (sequence.ok()) sequences[t].push_back(*sequence);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<uint64_t> all;
  for (const auto& s : sequences) all.insert(s.begin(), s.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.rbegin(), static_cast<uint64_t>(kThreads * kPerThread));
  const AuditLogStats stats = log->stats();
  EXPECT_EQ(stats.appended, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LT(stats.batches, stats.appended);
  HOSN_ASSERT_OK(log->Close());
  EXPECT_TRUE(Verify().verified);
}

// A write that fails (file size limit reached) turns the log unhealthy: the
// entry is not acknowledged and every later append is refused.
TEST_F(AuditLogTest, WriteFailureIsSticky) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(Options()));
  HOSN_ASSERT_OK(log->Append(Release(1)).status());
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit tiny = {300, old_limit.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tiny), 0);
  auto failed = log->Append(Release(2));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("write failed")));
  EXPECT_FALSE(log->healthy());
  EXPECT_THAT(log->Append(Release(3)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("earlier write failed")));
  EXPECT_EQ(log->stats().write_failures, 1u);
}

}  // namespace
}  // namespace hosn::audit
