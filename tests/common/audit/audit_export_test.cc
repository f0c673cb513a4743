// export.json parsing (common/audit/audit_export.h): the exporter's text
// round-trips, and values no exporter writes are refused rather than
// converted (a negative or huge number used to be cast from double to
// uint64_t, undefined behaviour; audit_export_meta_fuzz found it).
#include "common/audit/audit_export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace hosn::audit {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kHead[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

TEST(AuditExportTest, ExporterTextRoundTrips) {
  const AuditExportMeta meta{
      .anchor_sequence = 42, .anchor_sha256 = kHead, .checkpoint_interval = 100};
  HOSN_ASSERT_OK_AND_ASSIGN(AuditExportMeta parsed,
                            ParseAuditExportMeta(SerializeAuditExportMeta(meta)));
  EXPECT_EQ(parsed, meta);
}

TEST(AuditExportTest, MissingFieldsKeepDefaults) {
  HOSN_ASSERT_OK_AND_ASSIGN(AuditExportMeta parsed, ParseAuditExportMeta("{}"));
  EXPECT_EQ(parsed, AuditExportMeta{});
}

TEST(AuditExportTest, RefusesNumbersThatAreNotWholeAndInRange) {
  for (const char* json : {R"({"anchor_sequence":-1})", R"({"anchor_sequence":1e300})",
                           R"({"checkpoint_interval":-1e30})", R"({"checkpoint_interval":2.5})",
                           R"({"anchor_sequence":18446744073709551616})",
                           R"({"anchor_sequence":"7"})", R"({"checkpoint_interval":null})"}) {
    EXPECT_THAT(ParseAuditExportMeta(json),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("export.json")))
        << json;
  }
}

TEST(AuditExportTest, RefusesAnchorHashThatIsNotHex) {
  for (
      const char* json :
      {R"({"anchor_sha256":"x\"y"})", R"({"anchor_sha256":7})",
       R"({"anchor_sha256":"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"})"}) {
    EXPECT_THAT(ParseAuditExportMeta(json),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("export.json")))
        << json;
  }
}

TEST(AuditExportTest, RefusesNonJson) {
  EXPECT_THAT(ParseAuditExportMeta("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("export.json")));
}

}  // namespace
}  // namespace hosn::audit
