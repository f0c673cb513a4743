// The combined verifier on a real swtpm: a quote bound to a broker challenge
// and an ephemeral key passes; the same quote replayed for another key or
// another challenge does not (T3).
#include "server/attest/attestation.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/challenge.h"
#include "server/attest/denial.h"
#include "tests/server/attest/swtpm.h"
#include "tests/server/attest/test_data.h"
#include "tests/testing/status_matchers.h"

namespace hosn::attest {
namespace {

// DER SubjectPublicKeyInfo of a fresh P-256 key, as the agent would send.
tpm::Bytes EphemeralSpki() {
  tpm::UniqueEvpPkey key(EVP_EC_gen("P-256"));
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key.get(), &der);
  tpm::Bytes out(der, der + (len > 0 ? len : 0));
  OPENSSL_free(der);
  return out;
}

BootPolicy PolicyFor(const tpm::PcrValues& golden) {
  BootPolicy policy;
  policy.node_class = "test";
  policy.required_pcrs = {0, 1, 2, 3, 4, 5, 6, 7};
  PcrReferenceSet set{.name = "swtpm-fresh", .pcrs = {}};
  for (uint32_t pcr : policy.required_pcrs) set.pcrs[pcr] = golden.at(TPM2_ALG_SHA256).at(pcr);
  policy.reference_sets.push_back(set);
  return policy;
}

// A quote over Challenge::QualifyingData(ephemeral key) passes quote and
// policy; the same evidence checked for another key or challenge is denied.
TEST(VerifyAttestation, BoundQuotePassesAndReplayFails) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto tpm, testing::Swtpm::Start());
  HOSN_ASSERT_OK_AND_ASSIGN(auto swtpm_ak, tpm->CreateAk("ak", "ecc", "ecdsa"));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(swtpm_ak.tpmt_public));

  HOSN_ASSERT_OK_AND_ASSIGN(Challenge challenge, Challenge::Generate());
  const tpm::Bytes spki = EphemeralSpki();
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes qualifying, challenge.QualifyingData(spki));
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote,
                            tpm->MakeQuote(swtpm_ak, "sha256:0,1,2,3,4,5,6,7", qualifying));
  const BootPolicy policy = PolicyFor(quote.pcrs.values);
  AttestationEvidence evidence{.attest = quote.attest,
                               .signature = quote.signature,
                               .pcr_values = quote.pcrs.values,
                               .event_log = std::nullopt};

  HOSN_ASSERT_OK_AND_ASSIGN(AttestationResult result,
                            VerifyAttestation(*ak, evidence, qualifying, policy));
  EXPECT_EQ(result.match.reference_set, "swtpm-fresh");
  EXPECT_EQ(result.quote.signature_scheme, TPM2_ALG_ECDSA);

  // Replayed for another ephemeral key: the binding differs.
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes other_key, challenge.QualifyingData(EphemeralSpki()));
  EXPECT_EQ(GetDenialReason(VerifyAttestation(*ak, evidence, other_key, policy).status()),
            DenialReason::kNonceMismatch);
  // Replayed against a new challenge with the same key.
  HOSN_ASSERT_OK_AND_ASSIGN(Challenge fresh, Challenge::Generate());
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes fresh_binding, fresh.QualifyingData(spki));
  EXPECT_EQ(GetDenialReason(VerifyAttestation(*ak, evidence, fresh_binding, policy).status()),
            DenialReason::kNonceMismatch);
  // A policy requiring an event log refuses evidence without one.
  BootPolicy with_log = policy;
  with_log.require_event_log = true;
  EXPECT_EQ(GetDenialReason(VerifyAttestation(*ak, evidence, qualifying, with_log).status()),
            DenialReason::kEventLogRequired);
}

// The real GCE evidence with its event log passes a policy built from it; a
// corrupted log is named as malformed.
TEST(VerifyAttestation, RealGceEvidenceWithLog) {
  const std::string base = "tpm/go-tpm-tools/attestations/gce-cos-85-nonce9009";
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak_bytes,
                            testing::ReadSharedBytes(base + ".ak_pub.tpmt_public"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes attest,
                            testing::ReadSharedBytes(base + ".quote1.sha256.tpms_attest"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes sig,
                            testing::ReadSharedBytes(base + ".quote1.sha256.tpmt_signature"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes log,
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
  BootPolicy policy = PolicyFor(sent);
  policy.require_event_log = true;
  policy.event_log_pcrs = {0, 1, 2, 3, 4, 5, 6, 7};
  const tpm::Bytes nonce = {0x90, 0x09};

  AttestationEvidence evidence{
      .attest = attest, .signature = sig, .pcr_values = sent, .event_log = log};
  EXPECT_THAT(VerifyAttestation(*ak, evidence, nonce, policy), ::hosn::testing::IsOk());

  tpm::Bytes truncated(log.begin(), log.end() - 3);
  evidence.event_log = truncated;
  EXPECT_EQ(GetDenialReason(VerifyAttestation(*ak, evidence, nonce, policy).status()),
            DenialReason::kMalformedEventLog);
}

}  // namespace
}  // namespace hosn::attest
