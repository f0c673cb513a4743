// Event-log parsing and replay against real boot logs (go-tpm-tools and
// tpm2-tools fixtures) and against malformed logs.
#include "server/attest/event_log.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/base/hex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/denial.h"
#include "tests/server/attest/test_data.h"
#include "tests/testing/status_matchers.h"

namespace hosn::attest {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

// Every PCR in `expected` has the same value in `replayed`.
void ExpectPcrsEqual(const tpm::PcrValues& expected, const tpm::PcrValues& replayed) {
  size_t compared = 0;
  for (const auto& [alg, bank] : expected) {
    ASSERT_TRUE(replayed.contains(alg)) << tpm::HashAlgName(alg);
    for (const auto& [pcr, value] : bank) {
      ASSERT_TRUE(replayed.at(alg).contains(pcr)) << tpm::HashAlgName(alg) << ":" << pcr;
      EXPECT_EQ(HexEncode(replayed.at(alg).at(pcr)), HexEncode(value))
          << tpm::HashAlgName(alg) << ":" << pcr;
      ++compared;
    }
  }
  EXPECT_GT(compared, 0u);
}

class GoTpmToolsLog : public ::testing::TestWithParam<std::string> {};

// Each real go-tpm-tools log replays to the PCRs in expected_pcrs.json.
TEST_P(GoTpmToolsLog, ReplaysToExpectedPcrs) {
  HOSN_ASSERT_OK_AND_ASSIGN(google::protobuf::Struct all,
                            testing::ReadSharedJson("tpm/go-tpm-tools/expected_pcrs.json"));
  const google::protobuf::Struct& entry = all.fields().at(GetParam()).struct_value();
  const std::string file = entry.fields().at("file").string_value();
  tpm::PcrValues expected;
  for (const auto& [bank_name, bank] : entry.fields().at("expected_pcrs").struct_value().fields()) {
    std::string lower = bank_name;
    for (char& c : lower) c = static_cast<char>(std::tolower(c));
    HOSN_ASSERT_OK_AND_ASSIGN(TPM2_ALG_ID alg, tpm::HashAlgFromName(lower));
    HOSN_ASSERT_OK_AND_ASSIGN(expected[alg], testing::PcrBankFromJson(bank.struct_value()));
  }
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes, testing::ReadSharedBytes("tpm/go-tpm-tools/" + file));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(bytes));
  // debian-10.bin is the only SHA-1-format log among them.
  EXPECT_EQ(log.crypto_agile, GetParam() != "Debian10GCE");
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrValues replayed, ReplayEventLog(log));
  ExpectPcrsEqual(expected, replayed);
}

INSTANTIATE_TEST_SUITE_P(AllLogs, GoTpmToolsLog,
                         ::testing::Values("ArchLinuxWorkstation", "CGKE251000", "COS101AmdSev",
                                           "COS85AmdSev", "COS93AmdSev", "Debian10GCE", "GdcHost",
                                           "GlinuxNoSecureBootLaptop", "Rhel8GCE",
                                           "SP800155EventLog", "Ubuntu2104NoDbxGCE",
                                           "Ubuntu2104NoSecureBootGCE", "Ubuntu2404AmdSevSnp",
                                           "UbuntuAmdSevGCE"));

class Tpm2ToolsLog : public ::testing::TestWithParam<std::string> {};

// The expected output of tpm2_eventlog for a fixture: expected-pretty/ for the
// logs that have one there, the .yaml beside the log otherwise.
std::string YamlFor(const std::string& name) {
  return name == "event.bin" ? "tpm/tpm2-tools/event.bin.yaml"
                             : "tpm/tpm2-tools/expected-pretty/" + name + ".yaml";
}

// Each tpm2-tools fixture replays to the `pcrs:` section of its expected YAML.
TEST_P(Tpm2ToolsLog, ReplaysToExpectedYaml) {
  const std::string name = GetParam();
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrValues expected, testing::ReadYamlPcrs(YamlFor(name)));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes, testing::ReadSharedBytes("tpm/tpm2-tools/" + name));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(bytes));
  EXPECT_THAT(CheckEventDigests(log), IsOk());
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrValues replayed, ReplayEventLog(log));
  ExpectPcrsEqual(expected, replayed);
  // Banks the YAML leaves out (the fixture's events carry no digest for them)
  // are left out of the replay too.
  for (const auto& [alg, bank] : replayed) {
    if (!bank.empty()) {
      EXPECT_TRUE(expected.contains(alg)) << tpm::HashAlgName(alg);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllLogs, Tpm2ToolsLog,
                         ::testing::Values("event-arch-linux.bin", "event-bootorder.bin",
                                           "event-gce-ubuntu-2104-log.bin",
                                           "event-moklisttrusted.bin", "event-postcode.bin",
                                           "event-sd-boot-fedora37.bin", "event-uefi-sha1-log.bin",
                                           "event-uefiaction.bin", "event-uefiservices.bin",
                                           "event-uefivar.bin", "event.bin"));

// specid-vendordata.bin declares 4 bytes of vendor info that lie beyond the
// header event's own size; tpm2-tools tolerates that, this parser names it.
TEST(EventLog, VendorInfoBeyondHeaderRejected) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes,
                            testing::ReadSharedBytes("tpm/tpm2-tools/specid-vendordata.bin"));
  EXPECT_THAT(ParseEventLog(bytes), StatusIs(absl::StatusCode::kPermissionDenied,
                                             "malformed event log: event 0: bad vendor info"));
}

// The SHA-1-format log (no Spec ID header) is read as such.
TEST(EventLog, ReadsSha1FormatLog) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes,
                            testing::ReadSharedBytes("tpm/tpm2-tools/event-uefi-sha1-log.bin"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(bytes));
  EXPECT_FALSE(log.crypto_agile);
  ASSERT_EQ(log.algorithms.size(), 1u);
  EXPECT_EQ(log.algorithms[0].first, TPM2_ALG_SHA1);
}

// gdc-host.bin starts in locality 3: PCR0 replays from 00..03, as its quote shows.
TEST(EventLog, GdcHostRecordsStartupLocality) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes,
                            testing::ReadSharedBytes("tpm/go-tpm-tools/eventlogs/gdc-host.bin"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(bytes));
  ASSERT_TRUE(log.startup_locality.has_value());
  EXPECT_EQ(*log.startup_locality, 3);
}

// The two logs go-tpm-tools rejects: the events it objects to are where
// docs/attestation.md says, and the logs still replay (see GoTpmToolsLog).
TEST(EventLog, UpstreamRejectedEventsIdentified) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      tpm::Bytes arch,
      testing::ReadSharedBytes("tpm/go-tpm-tools/eventlogs/arch-linux-workstation.bin"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog arch_log, ParseEventLog(arch));
  const Event& secure_boot = arch_log.events[2];  // event 3
  EXPECT_EQ(secure_boot.number, 3u);
  EXPECT_EQ(secure_boot.type, kEvEfiVariableDriverConfig);
  EXPECT_EQ(secure_boot.pcr, 7u);
  // UEFI_VARIABLE_DATA: GUID (16), u64 name length, u64 data length = 0.
  ASSERT_GE(secure_boot.data.size(), 32u);
  EXPECT_EQ(std::count(secure_boot.data.begin() + 24, secure_boot.data.begin() + 32, 0), 8);

  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes gdc,
                            testing::ReadSharedBytes("tpm/go-tpm-tools/eventlogs/gdc-host.bin"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog gdc_log, ParseEventLog(gdc));
  EXPECT_EQ(gdc_log.events[1].type, 0x00000007u);  // EV_S_CRTM_CONTENTS, Boot Guard
  EXPECT_EQ(gdc_log.events[2].type, 0x00000008u);  // EV_S_CRTM_VERSION
  EXPECT_EQ(gdc_log.events[2].pcr, 0u);
}

// Every truncation of a real log is either rejected as malformed or is a
// shorter valid log; none crashes or reads past the end.
TEST(EventLog, TruncatedLogsAreRejectedCleanly) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes,
                            testing::ReadSharedBytes("tpm/tpm2-tools/event-uefivar.bin"));
  size_t rejected = 0;
  for (size_t len = 0; len < bytes.size(); ++len) {
    absl::StatusOr<EventLog> log = ParseEventLog({bytes.data(), len});
    if (!log.ok()) {
      EXPECT_EQ(GetDenialReason(log.status()), DenialReason::kMalformedEventLog);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, bytes.size() / 2);
}

// An event whose size field claims more than the log holds names its event.
TEST(EventLog, OversizedEventNamesTheEvent) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes,
                            testing::ReadSharedBytes("tpm/tpm2-tools/event-uefivar.bin"));
  // The last event's data size sits 4 + 53 bytes before the end (EventSize 53
  // in the fixture's YAML); make it huge.
  tpm::Bytes bad = bytes;
  const size_t size_at = bad.size() - 53 - 4;
  ASSERT_EQ(bad[size_at], 53);
  bad[size_at + 3] = 0x7f;
  EXPECT_THAT(ParseEventLog(bad), StatusIs(absl::StatusCode::kPermissionDenied,
                                           HasSubstr("event 1: event size exceeds the log")));
}

// An empty log and a header-only log without algorithms are refused.
TEST(EventLog, RejectsEmptyAndBadHeader) {
  EXPECT_THAT(ParseEventLog({}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("malformed event log")));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes bytes,
                            testing::ReadSharedBytes("tpm/tpm2-tools/event-uefivar.bin"));
  tpm::Bytes bad = bytes;
  bad[32 + 24] = 0;  // numberOfAlgorithms = 0 (header data starts at byte 32)
  bad[32 + 25] = 0;
  EXPECT_THAT(ParseEventLog(bad),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("bad algorithm count")));
}

// Hash-of-data events in the real logs carry honest digests, and a forged
// separator is named.
TEST(EventLog, EventDigestsChecked) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      tpm::Bytes bytes, testing::ReadSharedBytes("tpm/go-tpm-tools/attestations/"
                                                 "gce-cos-85-nonce9009.binary_bios_measurements"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(bytes));
  EXPECT_THAT(CheckEventDigests(log), IsOk());
  for (Event& event : log.events) {
    if (event.type == kEvSeparator) {
      event.data[0] ^= 1;
      break;
    }
  }
  absl::Status status = CheckEventDigests(log);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kEventDigestMismatch);
  EXPECT_THAT(status.message(), HasSubstr("type 0x00000004"));
}

}  // namespace
}  // namespace hosn::attest
