// kill -9 of hosn-keyd while nodes are being released keys (issue #7 part 4):
// a real daemon (SoftHSM token, mTLS) and a swtpm node replaying prepared
// attestations from 8 threads. After SIGKILL and a restart, every release a
// node received is in the log under the audit_sequence its reply carried, as
// a granted key.release, the numbering has no gap, and the whole directory
// verifies against the HSM-signed checkpoints.
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/audit/audit_format.h"
#include "common/audit/audit_reader.h"
#include "common/audit/audit_verify.h"
#include "common/base/file_util.h"
#include "tests/server/release/release_fixture.h"
#include "tests/testing/status_matchers.h"

namespace hosn::release::testing {
namespace {

class AuditReleaseTest : public ReleaseFixture {};

TEST_F(AuditReleaseTest, KillNineLosesNoAcknowledgedRelease) {
  ASSERT_NO_FATAL_FAILURE(StartKeyd(/*challenge_ttl_seconds=*/3600));
  Node node = NewNode("a");
  ASSERT_NE(node.tpm, nullptr);
  ASSERT_TRUE(Enroll(node, "a", "gpu").ok());
  ASSERT_TRUE(SetPolicyFromNode(node, "gpu", {"embeddings-en"}).ok());
  std::vector<Attempt> attempts;
  for (int i = 0; i < 8; ++i) {
    HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(node, "node-a"));
    attempts.push_back(std::move(attempt));
  }

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<uint64_t> acknowledged;  // audit_sequence of every release received
  std::vector<std::thread> nodes;
  for (int t = 0; t < 8; ++t) {
    nodes.emplace_back([&, t] {
      auto stub = v1::KeyReleaseService::NewStub(ChannelFor("node-a"));
      while (!stop.load()) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::ReleaseKeyResponse response;
        if (stub->ReleaseKey(&context, attempts[t].request, &response).ok() &&
            !response.wrapped_dek().empty()) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(response.audit_sequence());
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(keyd_->Stop(SIGKILL, absl::Seconds(30)).ok());
  stop = true;
  for (std::thread& thread : nodes) thread.join();
  ASSERT_GT(acknowledged.size(), 20u);
  std::printf("releases acknowledged before kill -9: %zu\n", acknowledged.size());

  // Restart on the same log; one more release numbers on from the last entry.
  keyd_.reset();
  ASSERT_NO_FATAL_FAILURE(StartKeyd(/*challenge_ttl_seconds=*/3600));
  v1::ReleaseKeyResponse after;
  ASSERT_TRUE(Release("node-a", attempts[0].request, &after).ok());
  ASSERT_TRUE(keyd_->Stop(SIGTERM, absl::Seconds(30)).ok());  // final checkpoint

  std::map<uint64_t, v1::AuditRecord> log;
  std::vector<std::string> files;
  for (uint64_t index : audit::ListLogFiles(dir_.Join("audit"))) {
    HOSN_ASSERT_OK_AND_ASSIGN(std::string text,
                              ReadFile(dir_.Join("audit/" + audit::LogFileName(index)), 1 << 30));
    for (const std::string& line :
         std::vector<std::string>(absl::StrSplit(text, '\n', absl::SkipEmpty()))) {
      HOSN_ASSERT_OK_AND_ASSIGN(v1::AuditRecord record, audit::ParseRecord(line));
      log[record.sequence()] = record;
    }
    files.push_back(std::move(text));
  }
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.begin()->first, 1u);
  EXPECT_EQ(log.rbegin()->first, log.size()) << "numbering has a gap";
  for (uint64_t sequence : acknowledged) {
    auto it = log.find(sequence);
    ASSERT_NE(it, log.end()) << "acknowledged release " << sequence << " not in the log";
    EXPECT_EQ(it->second.event(), "key.release");
    EXPECT_EQ(it->second.outcome(), "granted");
    EXPECT_EQ(it->second.actor(), "hosn://node/a");
  }
  EXPECT_EQ(log[after.audit_sequence()].event(), "key.release");
  EXPECT_GT(after.audit_sequence(), *acknowledged.rbegin());

  // The directory verifies against the checkpoints signed in the HSM.
  HOSN_ASSERT_OK_AND_ASSIGN(std::string chain, ReadFile(pki_.Cert("hsm-signer"), 1 << 20));
  BIO* bio = BIO_new_mem_buf(chain.data(), static_cast<int>(chain.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  EVP_PKEY* key = X509_get_pubkey(cert);
  X509_free(cert);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string checkpoints,
                            ReadFile(dir_.Join("audit/checkpoints.jsonl"), 1 << 30));
  const audit::VerifyReport report = audit::VerifyAuditLog(files, checkpoints, key);
  EVP_PKEY_free(key);
  EXPECT_TRUE(report.verified);
  for (const audit::Finding& finding : report.findings) {
    ADD_FAILURE() << finding.sequence << ": " << audit::FindingKindName(finding.kind) << ": "
                  << finding.message;
  }
  EXPECT_EQ(report.unanchored_entries, 0u);
}

}  // namespace
}  // namespace hosn::release::testing
