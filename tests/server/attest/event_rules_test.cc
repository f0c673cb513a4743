// Event-content rules of the boot policy on the real go-tpm-tools event logs:
// Secure Boot state, EFI application allow-list and forbidden EFI actions,
// each evaluated only after the log replayed to the quote. The quotes are the
// upstream expected PCR values (expected_pcrs.json), as VerifyQuote would
// return them.
#include "server/attest/event_rules.h"

#include <cctype>
#include <string>
#include <vector>

#include "common/base/hex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/boot_policy.h"
#include "server/attest/denial.h"
#include "tests/server/attest/test_data.h"
#include "tests/testing/status_matchers.h"

namespace hosn::attest {
namespace {

using ::hosn::testing::IsOk;
using ::testing::HasSubstr;

struct RealBoot {
  EventLog log;
  VerifiedQuote quote;
};

// The log of `name` (a key of expected_pcrs.json) and a quote of its expected
// PCRs 0-7 in `bank`.
RealBoot Load(const std::string& name, TPM2_ALG_ID bank = TPM2_ALG_SHA256) {
  RealBoot boot;
  absl::StatusOr<google::protobuf::Struct> all =
      testing::ReadSharedJson("tpm/go-tpm-tools/expected_pcrs.json");
  EXPECT_TRUE(all.ok()) << all.status();
  const google::protobuf::Struct& entry = all->fields().at(name).struct_value();
  absl::StatusOr<tpm::Bytes> bytes =
      testing::ReadSharedBytes("tpm/go-tpm-tools/" + entry.fields().at("file").string_value());
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<EventLog> log = ParseEventLog(*bytes);
  EXPECT_TRUE(log.ok()) << log.status();
  boot.log = *log;
  for (const auto& [bank_name, values] :
       entry.fields().at("expected_pcrs").struct_value().fields()) {
    std::string lower = bank_name;
    for (char& c : lower) c = static_cast<char>(std::tolower(c));
    if (*tpm::HashAlgFromName(lower) != bank) continue;
    absl::StatusOr<tpm::PcrBank> pcrs = testing::PcrBankFromJson(values.struct_value());
    EXPECT_TRUE(pcrs.ok()) << pcrs.status();
    tpm::PcrBankSelection selection{.hash = bank, .pcrs = {}};
    for (uint32_t pcr = 0; pcr <= 7; ++pcr) {
      selection.pcrs.push_back(pcr);
      boot.quote.quoted_values[bank][pcr] = pcrs->at(pcr);
    }
    boot.quote.selection.push_back(selection);
  }
  return boot;
}

// Golden-value-free policy: PCRs 0-7 quoted, the log must replay them.
BootPolicy RulesPolicy(EventRules rules, TPM2_ALG_ID bank = TPM2_ALG_SHA256) {
  BootPolicy policy;
  policy.node_class = "gpu";
  policy.bank = bank;
  policy.allow_sha1 = bank == TPM2_ALG_SHA1;
  policy.required_pcrs = {0, 1, 2, 3, 4, 5, 6, 7};
  policy.require_event_log = true;
  policy.event_rules = std::move(rules);
  return policy;
}

EventRules SecureBootRule() {
  EventRules rules;
  rules.require_secure_boot = true;
  return rules;
}

EventRules Apps(std::vector<tpm::Bytes> digests) {
  EventRules rules;
  rules.allowed_efi_applications = std::move(digests);
  return rules;
}

EventRules Actions(std::vector<std::string> actions) {
  EventRules rules;
  rules.forbidden_efi_actions = std::move(actions);
  return rules;
}

absl::Status Evaluate(const BootPolicy& policy, const RealBoot& boot) {
  return EvaluateBootPolicy(policy, boot.quote, &boot.log).status();
}

tpm::Bytes Hex(const std::string& hex) {
  absl::StatusOr<std::vector<uint8_t>> raw = HexDecode(hex);
  EXPECT_TRUE(raw.ok());
  return raw.ok() ? *raw : tpm::Bytes();
}

class SecureBootOn : public ::testing::TestWithParam<std::string> {};
class SecureBootOff : public ::testing::TestWithParam<std::string> {};

// Logs whose PCR 7 SecureBoot variable event holds 0x01 pass.
TEST_P(SecureBootOn, Accepted) {
  EXPECT_THAT(Evaluate(RulesPolicy(SecureBootRule()), Load(GetParam())), IsOk());
}

// Logs whose SecureBoot variable holds 0x00 (or nothing) are denied.
TEST_P(SecureBootOff, Denied) {
  const RealBoot boot = Load(GetParam());
  // Without the rule the same boot passes: the denial is the rule's.
  ASSERT_THAT(Evaluate(RulesPolicy(EventRules()), boot), IsOk());
  absl::Status status = Evaluate(RulesPolicy(SecureBootRule()), boot);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kSecureBootDisabled) << status;
  EXPECT_THAT(status.message(), HasSubstr("SecureBoot = "));
}

INSTANTIATE_TEST_SUITE_P(RealLogs, SecureBootOn,
                         ::testing::Values("CGKE251000", "COS101AmdSev", "COS85AmdSev",
                                           "COS93AmdSev", "Rhel8GCE", "SP800155EventLog"));
INSTANTIATE_TEST_SUITE_P(RealLogs, SecureBootOff,
                         ::testing::Values("ArchLinuxWorkstation", "GdcHost",
                                           "GlinuxNoSecureBootLaptop", "Ubuntu2104NoDbxGCE",
                                           "Ubuntu2104NoSecureBootGCE", "Ubuntu2404AmdSevSnp",
                                           "UbuntuAmdSevGCE"));

// arch-linux-workstation's SecureBoot event has no data byte: disabled.
TEST(EventRules, EmptySecureBootVariableIsDisabled) {
  absl::Status status = Evaluate(RulesPolicy(SecureBootRule()), Load("ArchLinuxWorkstation"));
  EXPECT_THAT(status.message(), HasSubstr("event 3 SecureBoot = (empty)"));
}

// The three EFI applications cos-85 boots (shim, grub, kernel), from its log.
const std::vector<std::string> kCos85Applications = {
    "dba8d69ffb244496ac8ab2950695d3da539d6ac5ec660fc6b4bdde245284cf23",
    "f7bad83f87940312e4642530a9a6242e88529dc37a497d7d4e7c1c070566d542",
    "6f6afb3caed004e727200a0c310731bd8ab4cd391b2d95cedf67d08e1e8e5e7e"};

// All of cos-85's applications listed: accepted; one missing: denied naming
// it; another image's list (cos-93): denied at its first application.
TEST(EventRules, EfiApplicationAllowList) {
  const RealBoot boot = Load("COS85AmdSev");
  EventRules rules;
  for (const std::string& hex : kCos85Applications)
    rules.allowed_efi_applications.push_back(Hex(hex));
  EXPECT_THAT(Evaluate(RulesPolicy(rules), boot), IsOk());

  rules.allowed_efi_applications.pop_back();
  absl::Status status = Evaluate(RulesPolicy(rules), boot);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kEfiApplicationNotAllowed) << status;
  EXPECT_THAT(status.message(), HasSubstr("event 41 sha256 " + kCos85Applications[2]));

  rules.allowed_efi_applications.push_back(Hex(kCos85Applications[2]));
  status = Evaluate(RulesPolicy(rules), Load("COS93AmdSev"));
  EXPECT_EQ(GetDenialReason(status), DenialReason::kEfiApplicationNotAllowed) << status;
  EXPECT_THAT(status.message(), HasSubstr("event 22 sha256 27cce48e"));
}

// gdc-host's firmware logs "DMA Protection Disabled" in PCR 7; forbidding it
// denies that boot and no other.
TEST(EventRules, ForbiddenEfiAction) {
  const BootPolicy policy = RulesPolicy(Actions({"DMA Protection Disabled"}));
  absl::Status status = Evaluate(policy, Load("GdcHost"));
  EXPECT_EQ(GetDenialReason(status), DenialReason::kEfiActionForbidden) << status;
  EXPECT_THAT(status.message(), HasSubstr("event 18 pcr 7 \"DMA Protection Disabled\""));
  EXPECT_THAT(Evaluate(policy, Load("COS85AmdSev")), IsOk());
}

// Rules judge only a log that replayed to the quote: cos-85's log against
// cos-93's quote is a replay mismatch, not a Secure Boot verdict, and a
// SecureBoot byte changed to 0x01 in a disabled log breaks its digest first.
TEST(EventRules, OnlyAReplayedLogIsJudged) {
  RealBoot mixed = Load("COS85AmdSev");
  mixed.quote = Load("COS93AmdSev").quote;
  EXPECT_EQ(GetDenialReason(Evaluate(RulesPolicy(SecureBootRule()), mixed)),
            DenialReason::kEventLogPcrMismatch);

  RealBoot forged = Load("Ubuntu2104NoSecureBootGCE");
  for (Event& event : forged.log.events) {
    if (event.number == 3) event.data.back() = 0x01;
  }
  EXPECT_EQ(GetDenialReason(Evaluate(RulesPolicy(SecureBootRule()), forged)),
            DenialReason::kEventDigestMismatch);
}

// debian-10's SHA-1-format log says SecureBoot = 1 but proves nothing about a
// sha256 quote; under a sha1 policy the same log is proven and passes.
TEST(EventRules, RulesNeedTheBankReplayed) {
  RealBoot sha256 = Load("Debian10GCE", TPM2_ALG_SHA1);
  sha256.quote.selection[0].hash = TPM2_ALG_SHA256;
  sha256.quote.quoted_values = {{TPM2_ALG_SHA256, {}}};
  for (uint32_t pcr = 0; pcr <= 7; ++pcr) {
    sha256.quote.quoted_values[TPM2_ALG_SHA256][pcr] = tpm::Bytes(32, 0);
  }
  EXPECT_EQ(GetDenialReason(Evaluate(RulesPolicy(SecureBootRule()), sha256)),
            DenialReason::kEventLogPcrMismatch);
  EXPECT_THAT(
      Evaluate(RulesPolicy(SecureBootRule(), TPM2_ALG_SHA1), Load("Debian10GCE", TPM2_ALG_SHA1)),
      IsOk());
  // Application digests are sha256; a sha1-only log cannot satisfy them.
  EventRules apps;
  apps.allowed_efi_applications.push_back(Hex(kCos85Applications[0]));
  EXPECT_EQ(GetDenialReason(
                Evaluate(RulesPolicy(apps, TPM2_ALG_SHA1), Load("Debian10GCE", TPM2_ALG_SHA1))),
            DenialReason::kEventLogPcrMismatch);
}

// Rules that could not be proven, or are malformed, make the policy invalid.
TEST(EventRules, InvalidRulesRejected) {
  BootPolicy no_log = RulesPolicy(SecureBootRule());
  no_log.require_event_log = false;
  EXPECT_EQ(ValidateBootPolicy(no_log).code(), absl::StatusCode::kInvalidArgument);
  BootPolicy no_pcr7 = RulesPolicy(SecureBootRule());
  no_pcr7.event_log_pcrs = {0, 4};
  EXPECT_EQ(ValidateBootPolicy(no_pcr7).code(), absl::StatusCode::kInvalidArgument);
  BootPolicy no_pcr4 = RulesPolicy(Apps({tpm::Bytes(32, 1)}));
  no_pcr4.event_log_pcrs = {7};
  EXPECT_EQ(ValidateBootPolicy(no_pcr4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateBootPolicy(RulesPolicy(Apps({tpm::Bytes(20, 1)}))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateBootPolicy(RulesPolicy(Actions({""}))).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hosn::attest
