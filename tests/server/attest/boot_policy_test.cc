// Boot policy: cases T4 and T6 of shared/cases, rolling reference sets, the
// event-log requirement, and the whole verifier pipeline on a real quote.
#include "server/attest/boot_policy.h"

#include <string>
#include <vector>

#include "common/base/hex.h"
#include "common/tpm/marshal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/denial.h"
#include "tests/server/attest/swtpm.h"
#include "tests/server/attest/test_data.h"
#include "tests/server/attest/test_quotes.h"
#include "tests/testing/status_matchers.h"

namespace hosn::attest {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

const std::vector<uint32_t> kPcr0To7 = {0, 1, 2, 3, 4, 5, 6, 7};

// A verified quote over `selection` with every PCR filled with `fill`, as
// VerifyQuote would return it.
VerifiedQuote QuoteOf(const tpm::PcrSelection& selection, uint8_t fill) {
  VerifiedQuote quote;
  quote.selection = selection;
  quote.quoted_values = testing::FilledPcrValues(selection, fill);
  quote.signature_scheme = TPM2_ALG_RSASSA;
  quote.signature_hash = TPM2_ALG_SHA256;
  return quote;
}

BootPolicy GoldenPolicy(uint8_t fill) {
  BootPolicy policy;
  policy.node_class = "gpu-a";
  policy.required_pcrs = kPcr0To7;
  PcrReferenceSet set{.name = "golden", .pcrs = {}};
  for (uint32_t pcr : kPcr0To7) set.pcrs[pcr] = tpm::Bytes(32, fill);
  policy.reference_sets.push_back(set);
  return policy;
}

// T4: the golden quote passes and names its reference set.
TEST(BootPolicy, T4GoldenValuesPass) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      PolicyMatch match, EvaluateBootPolicy(GoldenPolicy(0x11),
                                            QuoteOf({{TPM2_ALG_SHA256, kPcr0To7}}, 0x11), nullptr));
  EXPECT_EQ(match.reference_set, "golden");
}

// T4: PCR7 differing from the golden value is "pcr 7 mismatch".
TEST(BootPolicy, T4Pcr7MismatchDenied) {
  VerifiedQuote quote = QuoteOf({{TPM2_ALG_SHA256, kPcr0To7}}, 0x11);
  quote.quoted_values[TPM2_ALG_SHA256][7][31] ^= 1;
  absl::StatusOr<PolicyMatch> result = EvaluateBootPolicy(GoldenPolicy(0x11), quote, nullptr);
  EXPECT_EQ(GetDenialReason(result.status()), DenialReason::kPcrMismatch);
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kPermissionDenied, "pcr 7 mismatch"));
}

// T4: a quote over only {0..6} when {0..7} is required is "pcr not quoted".
TEST(BootPolicy, T4MissingPcr7Denied) {
  absl::StatusOr<PolicyMatch> result = EvaluateBootPolicy(
      GoldenPolicy(0x11), QuoteOf({{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6}}}, 0x11), nullptr);
  EXPECT_EQ(GetDenialReason(result.status()), DenialReason::kPcrNotQuoted);
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kPermissionDenied, "pcr 7 not quoted"));
}

// T6: a SHA-1 bank in the quote is refused with its own reason by default.
TEST(BootPolicy, T6Sha1BankNotAllowed) {
  absl::StatusOr<PolicyMatch> result = EvaluateBootPolicy(
      GoldenPolicy(0x11), QuoteOf({{TPM2_ALG_SHA1, kPcr0To7}, {TPM2_ALG_SHA256, kPcr0To7}}, 0x11),
      nullptr);
  EXPECT_EQ(GetDenialReason(result.status()), DenialReason::kSha1BankNotAllowed);
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kPermissionDenied, "sha1 bank not allowed"));
}

// A quote that does not cover the policy's bank is refused.
TEST(BootPolicy, OtherBankOnlyDenied) {
  absl::StatusOr<PolicyMatch> result =
      EvaluateBootPolicy(GoldenPolicy(0x11), QuoteOf({{TPM2_ALG_SHA384, kPcr0To7}}, 0x11), nullptr);
  EXPECT_EQ(GetDenialReason(result.status()), DenialReason::kBankNotAllowed);
}

// Two reference sets at once (rolling upgrade): either boot passes, a third does not.
TEST(BootPolicy, RollingUpgradeAcceptsEitherSet) {
  BootPolicy policy = GoldenPolicy(0x11);
  PcrReferenceSet next = policy.reference_sets[0];
  next.name = "next";
  next.pcrs[4] = tpm::Bytes(32, 0x22);
  policy.reference_sets.push_back(next);

  VerifiedQuote old_boot = QuoteOf({{TPM2_ALG_SHA256, kPcr0To7}}, 0x11);
  VerifiedQuote new_boot = old_boot;
  new_boot.quoted_values[TPM2_ALG_SHA256][4] = tpm::Bytes(32, 0x22);
  VerifiedQuote other = old_boot;
  other.quoted_values[TPM2_ALG_SHA256][4] = tpm::Bytes(32, 0x33);

  HOSN_ASSERT_OK_AND_ASSIGN(PolicyMatch a, EvaluateBootPolicy(policy, old_boot, nullptr));
  HOSN_ASSERT_OK_AND_ASSIGN(PolicyMatch b, EvaluateBootPolicy(policy, new_boot, nullptr));
  EXPECT_EQ(a.reference_set, "golden");
  EXPECT_EQ(b.reference_set, "next");
  EXPECT_THAT(EvaluateBootPolicy(policy, other, nullptr),
              StatusIs(absl::StatusCode::kPermissionDenied, "pcr 4 mismatch"));
}

// A policy that cannot be applied is an InvalidArgument, not a denial.
TEST(BootPolicy, InvalidPoliciesRejected) {
  BootPolicy sha1 = GoldenPolicy(0x11);
  sha1.bank = TPM2_ALG_SHA1;
  EXPECT_THAT(ValidateBootPolicy(sha1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sha1")));
  BootPolicy short_value = GoldenPolicy(0x11);
  short_value.reference_sets[0].pcrs[3].resize(20);
  EXPECT_THAT(ValidateBootPolicy(short_value),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wrong length")));
  BootPolicy unrequired = GoldenPolicy(0x11);
  unrequired.reference_sets[0].pcrs[9] = tpm::Bytes(32, 0);
  EXPECT_FALSE(ValidateBootPolicy(unrequired).ok());
  BootPolicy unquoted_log = GoldenPolicy(0x11);
  unquoted_log.require_event_log = true;
  unquoted_log.event_log_pcrs = {0, 14};
  EXPECT_THAT(ValidateBootPolicy(unquoted_log),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pcr 14")));
  BootPolicy empty_set = GoldenPolicy(0x11);
  empty_set.reference_sets.front().pcrs.clear();
  EXPECT_THAT(ValidateBootPolicy(empty_set),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names no pcr")));
  EXPECT_THAT(ValidateBootPolicy(GoldenPolicy(0x11)), IsOk());
}

// A required event log that is absent is "event log required".
TEST(BootPolicy, EventLogRequired) {
  BootPolicy policy = GoldenPolicy(0x11);
  policy.require_event_log = true;
  absl::StatusOr<PolicyMatch> result =
      EvaluateBootPolicy(policy, QuoteOf({{TPM2_ALG_SHA256, kPcr0To7}}, 0x11), nullptr);
  EXPECT_EQ(GetDenialReason(result.status()), DenialReason::kEventLogRequired);
}

// The whole pipeline on the real GCE quote (nonce 90 09, sha256 bank): the AK,
// the quote, PCR0-9 as golden values and the event log all pass; a log from
// another boot is "event log pcr mismatch".
TEST(BootPolicy, RealGceQuoteWithEventLog) {
  const std::string base = "tpm/go-tpm-tools/attestations/gce-cos-85-nonce9009";
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak_bytes,
                            testing::ReadSharedBytes(base + ".ak_pub.tpmt_public"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes attest,
                            testing::ReadSharedBytes(base + ".quote1.sha256.tpms_attest"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes sig,
                            testing::ReadSharedBytes(base + ".quote1.sha256.tpmt_signature"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes log_bytes,
                            testing::ReadSharedBytes(base + ".binary_bios_measurements"));
  HOSN_ASSERT_OK_AND_ASSIGN(google::protobuf::Struct expected,
                            testing::ReadSharedJson(base + ".expected.json"));
  tpm::PcrValues sent;
  HOSN_ASSERT_OK_AND_ASSIGN(sent[TPM2_ALG_SHA256], testing::PcrBankFromJson(expected.fields()
                                                                                .at("quotes")
                                                                                .list_value()
                                                                                .values(1)
                                                                                .struct_value()
                                                                                .fields()
                                                                                .at("pcrs")
                                                                                .struct_value()));

  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(ak_bytes));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote quote,
                            VerifyQuote(*ak, attest, sig, tpm::Bytes{0x90, 0x09}, sent));
  BootPolicy policy;
  policy.node_class = "gce-cos";
  policy.required_pcrs = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  policy.event_log_pcrs = policy.required_pcrs;
  policy.require_event_log = true;
  PcrReferenceSet golden{.name = "cos-85", .pcrs = {}};
  for (uint32_t pcr : policy.required_pcrs) golden.pcrs[pcr] = sent[TPM2_ALG_SHA256][pcr];
  policy.reference_sets.push_back(golden);

  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(log_bytes));
  HOSN_ASSERT_OK_AND_ASSIGN(PolicyMatch match, EvaluateBootPolicy(policy, quote, &log));
  EXPECT_EQ(match.reference_set, "cos-85");

  HOSN_ASSERT_OK_AND_ASSIGN(
      tpm::Bytes other_bytes,
      testing::ReadSharedBytes("tpm/go-tpm-tools/eventlogs/cos-85-amd-sev.bin"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog other, ParseEventLog(other_bytes));
  EXPECT_EQ(GetDenialReason(EvaluateBootPolicy(policy, quote, &other).status()),
            DenialReason::kEventLogPcrMismatch);
}

// T4 on a real swtpm: golden values taken from a good boot; after PCR7 is
// extended the next quote verifies as a quote but the policy says "pcr 7 mismatch".
TEST(BootPolicy, T4SwtpmChangedPcr7Denied) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto tpm, testing::Swtpm::Start());
  HOSN_ASSERT_OK_AND_ASSIGN(auto swtpm_ak, tpm->CreateAk("ak", "rsa", "rsassa"));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(swtpm_ak.tpmt_public));
  const tpm::Bytes nonce(32, 0x44);
  const char* selection = "sha256:0,1,2,3,4,5,6,7";

  HOSN_ASSERT_OK_AND_ASSIGN(auto good, tpm->MakeQuote(swtpm_ak, selection, nonce));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote good_quote,
                            VerifyQuote(*ak, good.attest, good.signature, nonce, good.pcrs.values));
  BootPolicy policy;
  policy.required_pcrs = kPcr0To7;
  PcrReferenceSet golden{.name = "good", .pcrs = {}};
  for (uint32_t pcr : kPcr0To7) golden.pcrs[pcr] = good.pcrs.values[TPM2_ALG_SHA256][pcr];
  policy.reference_sets.push_back(golden);
  EXPECT_THAT(EvaluateBootPolicy(policy, good_quote, nullptr), IsOk());

  HOSN_ASSERT_OK(tpm->Extend(7, "sha256", tpm::Bytes(32, 0xee)));
  HOSN_ASSERT_OK_AND_ASSIGN(auto bad, tpm->MakeQuote(swtpm_ak, selection, nonce));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote bad_quote,
                            VerifyQuote(*ak, bad.attest, bad.signature, nonce, bad.pcrs.values));
  EXPECT_THAT(EvaluateBootPolicy(policy, bad_quote, nullptr),
              StatusIs(absl::StatusCode::kPermissionDenied, "pcr 7 mismatch"));
  // Sending the old, golden values beside the new quote does not help.
  EXPECT_EQ(GetDenialReason(
                VerifyQuote(*ak, bad.attest, bad.signature, nonce, good.pcrs.values).status()),
            DenialReason::kPcrDigestMismatch);
}

}  // namespace
}  // namespace hosn::attest
