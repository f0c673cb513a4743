// Checkpoint outages (issue #7): the audit log signs its checkpoints with a
// real EC P-256 key on a SoftHSM token, reached through the fault-injecting
// PKCS#11 module, which refuses C_SignInit for a while. The log must record
// each failure as an audit.checkpoint_failed entry so the verifier reports an
// outage instead of "missing checkpoint", while deleted checkpoint lines and
// rewritten entries are still caught.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/audit/audit_format.h"
#include "common/audit/audit_verify.h"
#include "common/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/audit/audit_log.h"
#include "server/hsm/key_store.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::audit {
namespace {

using hosn::hsm::KeyRef;
using hosn::hsm::KeyStore;
using hosn::hsm::testing::FaultModule;
using hosn::hsm::testing::OptionsFor;
using hosn::keyd::v1::AuditCheckpoint;
using hosn::keyd::v1::AuditRecord;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::SoftHsmToken;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kInterval = 10;
// While active, every signature the token is asked for fails.
constexpr char kSigningDown[] = "fn=C_SignInit,count=-1,rv=CKR_FUNCTION_FAILED";
// Replaced by the previous entry's hash when entries are relinked.
constexpr char kPreviousHashPlaceholder[] = "<previous>";

// Signs checkpoints with a token key through the KeyStore, as the daemon's
// HsmCheckpointSigner does through its backend.
class TokenSigner : public CheckpointSigner {
 public:
  TokenSigner(KeyStore* store, KeyRef key) : store_(store), key_(std::move(key)) {}
  std::string algorithm() const override { return "ecdsa-p256-sha256"; }
  absl::StatusOr<std::string> Sign(std::string_view message) override {
    return store_->Sign(key_, "ecdsa-p256-sha256", message);
  }

 private:
  KeyStore* const store_;
  const KeyRef key_;
};

AuditRecord Decision(int i) {
  AuditRecord record;
  record.set_event("key.release");
  record.set_actor(absl::StrCat("hosn://node/n", i % 5));
  record.set_outcome(i % 4 == 0 ? "denied" : "granted");
  return record;
}

class AuditOutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-audit"));
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(OptionsFor(*token_, FaultModule::Path())));
    HOSN_ASSERT_OK_AND_ASSIGN(hsm::SigningKey key,
                              store_->GenerateSigningKey("ec-p256", "hosn-audit", "a1"));
    const auto* der = reinterpret_cast<const uint8_t*>(key.public_key_der.data());
    public_key_.reset(d2i_PUBKEY(nullptr, &der, static_cast<long>(key.public_key_der.size())));
    ASSERT_NE(public_key_, nullptr);
    signer_ = std::make_unique<TokenSigner>(store_.get(), key.private_key);
    ASSERT_TRUE(faults_.Configure(""));
  }

  void TearDown() override { (void)faults_.Configure(""); }

  AuditLogOptions Options() {
    AuditLogOptions options;
    options.directory = dir_.Join("audit");
    options.replica_id = "keyd-1";
    options.checkpoint_interval = kInterval;
    options.signer = signer_.get();
    options.on_checkpoint = [this](const absl::Status& result) {
      (result.ok() ? signed_calls_ : failed_calls_) += 1;
    };
    return options;
  }

  // Appends `n` decisions one at a time (one batch each, so a checkpoint
  // falls due at every interval).
  void AppendDecisions(AuditLog& log, int n) {
    for (int i = 0; i < n; ++i) HOSN_ASSERT_OK(log.Append(Decision(i)).status());
  }

  // 15 entries signed, 70 with the token refusing to sign, then
  // `after_recovery` signed again; closed.
  void WriteOutageLog(int after_recovery) {
    HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(Options()));
    ASSERT_NO_FATAL_FAILURE(AppendDecisions(*log, 15));
    ASSERT_TRUE(faults_.Configure(kSigningDown));
    ASSERT_NO_FATAL_FAILURE(AppendDecisions(*log, 70));
    EXPECT_GT(faults_.Fired(), 0);
    ASSERT_TRUE(faults_.Configure(""));
    ASSERT_NO_FATAL_FAILURE(AppendDecisions(*log, after_recovery));
    HOSN_ASSERT_OK(log->Close());
    stats_ = log->stats();
  }

  std::string LogPath() { return dir_.Join("audit/audit-000001.jsonl"); }
  std::string CheckpointsPath() { return dir_.Join("audit/checkpoints.jsonl"); }

  std::vector<std::string> Lines(const std::string& path) {
    auto contents = ReadFile(path, 1 << 24);
    EXPECT_TRUE(contents.ok());
    return absl::StrSplit(contents.ok() ? *contents : "", '\n', absl::SkipEmpty());
  }

  std::vector<uint64_t> CheckpointSequences() {
    std::vector<uint64_t> sequences;
    for (const std::string& line : Lines(CheckpointsPath())) {
      auto checkpoint = ParseCheckpoint(line);
      EXPECT_TRUE(checkpoint.ok());
      if (checkpoint.ok()) sequences.push_back(checkpoint->sequence());
    }
    return sequences;
  }

  void KeepCheckpoints(const std::function<bool(uint64_t)>& keep) {
    std::string kept;
    for (const std::string& line : Lines(CheckpointsPath())) {
      auto checkpoint = ParseCheckpoint(line);
      ASSERT_TRUE(checkpoint.ok());
      if (keep(checkpoint->sequence())) kept += line + "\n";
    }
    HOSN_ASSERT_OK(WriteFileAtomically(CheckpointsPath(), kept, 0600));
  }

  // Rewrites the entries as someone without the signing key would: applies
  // `edit` to the parsed entries, then renumbers and relinks them all.
  void RewriteEntries(const std::function<void(std::vector<AuditRecord>&)>& edit) {
    std::vector<AuditRecord> records;
    for (const std::string& line : Lines(LogPath())) {
      HOSN_ASSERT_OK_AND_ASSIGN(AuditRecord record, ParseRecord(line));
      records.push_back(std::move(record));
    }
    edit(records);
    std::string previous(kGenesisHash);
    std::string out;
    for (size_t i = 0; i < records.size(); ++i) {
      records[i].set_sequence(i + 1);
      records[i].set_previous_sha256(previous);
      // A forger knows the hash of the entry before once relinked.
      for (auto& attribute : *records[i].mutable_attributes()) {
        if (attribute.value() == kPreviousHashPlaceholder) attribute.set_value(previous);
      }
      HOSN_ASSERT_OK_AND_ASSIGN(std::string line, SerializeRecord(records[i]));
      previous = LineHash(line);
      out += line + "\n";
    }
    HOSN_ASSERT_OK(WriteFileAtomically(LogPath(), out, 0600));
  }

  VerifyReport Verify(std::optional<CheckpointAnchor> anchor = std::nullopt) {
    auto entries = ReadFile(LogPath(), 1 << 24);
    auto checkpoints = ReadFile(CheckpointsPath(), 1 << 24);
    VerifyOptions options;
    options.checkpoint_interval = kInterval;
    options.anchor = anchor;
    return VerifyAuditLog({entries.ok() ? *entries : ""}, checkpoints.ok() ? *checkpoints : "",
                          public_key_.get(), options);
  }

  // Sequences of the audit.checkpoint_failed entries.
  std::vector<uint64_t> FailureEntries() {
    std::vector<uint64_t> sequences;
    for (const std::string& line : Lines(LogPath())) {
      auto record = ParseRecord(line);
      EXPECT_TRUE(record.ok());
      if (record.ok() && record->event() == kCheckpointFailedEvent) {
        sequences.push_back(record->sequence());
      }
    }
    return sequences;
  }

  ScopedTempDir dir_;
  FaultModule faults_;
  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<KeyStore> store_;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> public_key_{nullptr, EVP_PKEY_free};
  std::unique_ptr<TokenSigner> signer_;
  int signed_calls_ = 0;
  int failed_calls_ = 0;
  AuditLogStats stats_;
};

// The largest number of entries between two neighbouring checkpoints (or
// the log's start and end).
uint64_t LargestUnsignedRun(std::vector<uint64_t> checkpoints, uint64_t last) {
  checkpoints.push_back(last);
  std::sort(checkpoints.begin(), checkpoints.end());
  uint64_t previous = 0;
  uint64_t largest = 0;
  for (uint64_t sequence : checkpoints) {
    largest = std::max(largest, sequence - previous);
    previous = sequence;
  }
  return largest;
}

// An outage longer than twice the interval, followed by recovery, verifies:
// the failures are entries at the interval, reported as an outage that the
// first checkpoint after it covers, and nothing is "missing checkpoint".
TEST_F(AuditOutageTest, OutageRecordedAndReported) {
  ASSERT_NO_FATAL_FAILURE(WriteOutageLog(15));
  const std::vector<uint64_t> failures = FailureEntries();
  ASSERT_GE(failures.size(), 6u);
  // Without the failure entries this log would break the interval rule.
  EXPECT_GT(LargestUnsignedRun(CheckpointSequences(), stats_.last_sequence), 2 * kInterval);
  for (size_t i = 1; i < failures.size(); ++i) {
    EXPECT_LE(failures[i] - failures[i - 1], 2 * kInterval);
  }
  EXPECT_EQ(stats_.checkpoint_failed_entries, failures.size());
  EXPECT_GE(stats_.checkpoint_failures, failures.size());
  EXPECT_EQ(static_cast<uint64_t>(failed_calls_), stats_.checkpoint_failures);
  EXPECT_GT(signed_calls_, 0);

  const VerifyReport report = Verify();
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.checkpoint_failures, failures.size());
  EXPECT_THAT(report.findings,
              Not(Contains(Field(&Finding::kind, FindingKind::kMissingCheckpoint))));
  EXPECT_THAT(report.findings,
              Contains(AllOf(Field(&Finding::kind, FindingKind::kCheckpointOutage),
                             Field(&Finding::sequence, failures.front()),
                             Field(&Finding::message, HasSubstr("CKR_FUNCTION_FAILED")),
                             Field(&Finding::message, HasSubstr("which covers them")))));
  EXPECT_EQ(report.unanchored_entries, 0u);
}

// The HSM still cannot sign when the log closes: the tail is reported as an
// outage covered by no signed checkpoint, with every entry counted as
// unanchored, and the daemon's own checkpoint (the anchor) still decides.
TEST_F(AuditOutageTest, OutageAtTailStaysUnanchored) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(Options()));
  ASSERT_NO_FATAL_FAILURE(AppendDecisions(*log, 15));
  ASSERT_TRUE(faults_.Configure(kSigningDown));
  ASSERT_NO_FATAL_FAILURE(AppendDecisions(*log, 50));
  EXPECT_FALSE(log->Close().ok());
  const uint64_t last = log->stats().last_sequence;
  ASSERT_EQ(CheckpointSequences(), std::vector<uint64_t>{10});

  const VerifyReport report = Verify();
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.last_sequence, last);
  EXPECT_EQ(report.last_checkpoint_sequence, 10u);
  EXPECT_EQ(report.unanchored_entries, last - 10);
  EXPECT_THAT(report.findings,
              Contains(AllOf(Field(&Finding::kind, FindingKind::kCheckpointOutage),
                             Field(&Finding::message, HasSubstr("entries 11 to ")),
                             Field(&Finding::message, HasSubstr("covered by no signed")))));
  // The last entry is the failure Close recorded.
  EXPECT_EQ(FailureEntries().back(), last);
}

// Deleting the checkpoint lines after an outage is caught as before: the
// stretch after the last recorded failure is longer than the writer leaves.
TEST_F(AuditOutageTest, DeletedCheckpointsAfterOutageDetected) {
  ASSERT_NO_FATAL_FAILURE(WriteOutageLog(50));
  const uint64_t last_failure = FailureEntries().back();
  ASSERT_TRUE(Verify().verified);
  KeepCheckpoints([&](uint64_t sequence) { return sequence < last_failure; });
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings,
              Contains(AllOf(Field(&Finding::kind, FindingKind::kMissingCheckpoint),
                             Field(&Finding::sequence, last_failure))));
}

// Rewriting entries during the outage and relinking them is caught by the
// checkpoint signed after the outage, which covers them through the chain.
TEST_F(AuditOutageTest, RewriteInsideOutageDetected) {
  ASSERT_NO_FATAL_FAILURE(WriteOutageLog(15));
  ASSERT_NO_FATAL_FAILURE(RewriteEntries([](std::vector<AuditRecord>& records) {
    records[39].set_outcome("granted");  // entry 40, inside the outage
    records[39].set_actor("hosn://node/other");
  }));
  const VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_THAT(report.findings, Contains(Field(&Finding::kind, FindingKind::kCheckpointMismatch)));
}

// What someone who can write the log directory gains: after deleting every
// checkpoint line past entry 10 they can rewrite the rest and forge failure
// entries. Forged failures that do not name the entry before them do not
// count, so the gap is caught; well-formed ones pass the interval rule but
// leave the whole rewritten stretch reported as unanchored, and the daemon's
// own checkpoint catches it.
TEST_F(AuditOutageTest, ForgedFailuresGiveOnlyAnUnanchoredTail) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto log, AuditLog::Open(Options()));
  ASSERT_NO_FATAL_FAILURE(AppendDecisions(*log, 100));
  HOSN_ASSERT_OK(log->Close());
  const std::string head_at_100 = LineHash(Lines(LogPath()).back());
  KeepCheckpoints([](uint64_t sequence) { return sequence <= 10; });
  ASSERT_FALSE(Verify().verified);

  const auto forge = [](bool well_formed) {
    return [well_formed](std::vector<AuditRecord>& records) {
      for (size_t at : {size_t{25}, size_t{45}, size_t{65}, size_t{85}}) {
        AuditRecord failure;
        failure.set_replica_id(records[at - 1].replica_id());
        failure.set_time(records[at - 1].time());
        failure.set_event(std::string(kCheckpointFailedEvent));
        failure.set_actor("daemon");
        failure.set_outcome("failed");
        failure.set_reason("forged");
        auto* attribute = failure.add_attributes();
        attribute->set_name(std::string(kCheckpointFailedSequenceAttribute));
        // The entry before it gets number `at` after relinking.
        attribute->set_value(absl::StrCat(well_formed ? at : at - 3));
        if (well_formed) {
          attribute = failure.add_attributes();
          attribute->set_name(std::string(kCheckpointFailedHeadAttribute));
          attribute->set_value(kPreviousHashPlaceholder);
        }
        records.insert(records.begin() + static_cast<long>(at), failure);
      }
    };
  };
  HOSN_ASSERT_OK_AND_ASSIGN(const std::string original, ReadFile(LogPath(), 1 << 24));

  // Failure entries that do not name the entry before them and its hash are
  // not what the writer makes: the gap is still reported.
  ASSERT_NO_FATAL_FAILURE(RewriteEntries(forge(false)));
  VerifyReport report = Verify();
  EXPECT_FALSE(report.verified);
  EXPECT_EQ(report.checkpoint_failures, 0u);
  EXPECT_THAT(report.findings, Contains(Field(&Finding::kind, FindingKind::kMissingCheckpoint)));

  // Well-formed forgeries: accepted by the interval rule, never as signed.
  HOSN_ASSERT_OK(WriteFileAtomically(LogPath(), original, 0600));
  ASSERT_NO_FATAL_FAILURE(RewriteEntries(forge(true)));
  report = Verify();
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.checkpoint_failures, 4u);
  EXPECT_EQ(report.last_checkpoint_sequence, 10u);
  EXPECT_EQ(report.unanchored_entries, 94u);
  EXPECT_THAT(report.findings,
              Contains(AllOf(Field(&Finding::kind, FindingKind::kCheckpointOutage),
                             Field(&Finding::message, HasSubstr("entries 11 to 104")),
                             Field(&Finding::message, HasSubstr("covered by no signed")))));
  const VerifyReport anchored = Verify(CheckpointAnchor{100, head_at_100});
  EXPECT_FALSE(anchored.verified);
  EXPECT_THAT(anchored.findings, Contains(Field(&Finding::kind, FindingKind::kAnchorMismatch)));
}

}  // namespace
}  // namespace hosn::audit
