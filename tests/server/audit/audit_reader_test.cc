// AuditLogReader over a real AuditLog directory: entries in order across
// rotated files, from any sequence, bounded by the durable head, resumed
// where the previous read stopped, with checkpoint lines in step.
#include "common/audit/audit_reader.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/audit/audit_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/audit/audit_log.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::audit {
namespace {

using ::testing::ElementsAre;

// The reader never checks signatures; a constant one is enough here.
class ConstantSigner : public CheckpointSigner {
 public:
  std::string algorithm() const override { return "test"; }
  absl::StatusOr<std::string> Sign(std::string_view) override { return std::string("sig"); }
};

class AuditReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AuditLogOptions options;
    options.directory = dir_.Join("audit");
    options.replica_id = "r";
    options.max_file_bytes = 1024;
    options.checkpoint_interval = 10;
    options.signer = &signer_;
    HOSN_ASSERT_OK_AND_ASSIGN(log_, AuditLog::Open(options));
    Append(35);
  }
  void Append(int n) {
    for (int i = 0; i < n; ++i) {
      hosn::keyd::v1::AuditRecord record;
      record.set_event("test.event");
      HOSN_ASSERT_OK(log_->Append(record).status());
    }
  }
  // "eN" for entries and "cN" for checkpoints, in delivery order.
  std::vector<std::string> Read(AuditLogReader& reader, uint64_t up_to, int stop_after = -1) {
    std::vector<std::string> seen;
    int entries = 0;
    absl::Status status = reader.Read(
        up_to,
        [&](uint64_t sequence, std::string_view line) {
          EXPECT_TRUE(ParseRecord(line).ok());
          seen.push_back(absl::StrCat("e", sequence));
          return ++entries != stop_after;
        },
        [&](std::string_view line) {
          auto checkpoint = ParseCheckpoint(line);
          EXPECT_TRUE(checkpoint.ok());
          seen.push_back(absl::StrCat("c", checkpoint.ok() ? checkpoint->sequence() : 0));
          return true;
        });
    EXPECT_TRUE(status.ok()) << status;
    return seen;
  }

  hosn::testing::ScopedTempDir dir_;
  ConstantSigner signer_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditReaderTest, WholeLogAcrossRotatedFiles) {
  EXPECT_GT(ListLogFiles(dir_.Join("audit")).size(), 3u);
  AuditLogReader reader(dir_.Join("audit"), 1);
  const std::vector<std::string> seen = Read(reader, log_->stats().last_sequence);
  std::vector<std::string> want;
  for (int i = 1; i <= 35; ++i) want.push_back(absl::StrCat("e", i));
  want.insert(want.end(), {"c10", "c20", "c30"});
  EXPECT_EQ(seen, want);
  EXPECT_EQ(reader.last_sequence(), 35u);
}

TEST_F(AuditReaderTest, FromAMiddleSequence) {
  AuditLogReader reader(dir_.Join("audit"), 23);
  const std::vector<std::string> seen = Read(reader, 35);
  ASSERT_EQ(seen.size(), 13u + 1u);
  EXPECT_EQ(seen.front(), "e23");
  EXPECT_EQ(seen[12], "e35");
  EXPECT_EQ(seen.back(), "c30");  // c10 and c20 name entries before 23
}

TEST_F(AuditReaderTest, BoundedThenResumedAsTheLogGrows) {
  AuditLogReader reader(dir_.Join("audit"), 1);
  std::vector<std::string> first = Read(reader, 12);
  EXPECT_EQ(first.size(), 13u);
  EXPECT_EQ(first[11], "e12");
  EXPECT_EQ(first.back(), "c10");
  // A callback that stops: the next read starts at the next entry.
  EXPECT_THAT(Read(reader, 35, /*stop_after=*/1), ElementsAre("e13"));
  Append(5);  // 36..40, checkpoint 40
  const std::vector<std::string> rest = Read(reader, log_->stats().last_sequence);
  EXPECT_EQ(rest.front(), "e14");
  EXPECT_THAT(std::vector<std::string>(rest.end() - 4, rest.end()),
              ElementsAre("e40", "c20", "c30", "c40"));
  EXPECT_TRUE(Read(reader, log_->stats().last_sequence).empty());
}

TEST_F(AuditReaderTest, LatestCheckpoint) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::optional<StoredCheckpoint> latest,
                            ReadLatestCheckpoint(dir_.Join("audit")));
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->checkpoint.sequence(), 30u);
  EXPECT_EQ(*SerializeCheckpoint(latest->checkpoint), latest->line);
}

}  // namespace
}  // namespace hosn::audit
