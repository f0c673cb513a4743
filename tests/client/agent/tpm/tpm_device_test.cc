#include "client/agent/tpm/tpm_device.h"

#include <openssl/rand.h>

#include <memory>
#include <string>

#include "common/tpm/qualifying_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/quote_verifier.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/swtpm_process.h"
#include "tests/testing/test_paths.h"

namespace hosn::agent {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::hosn::testing::SwtpmProcess;
using ::testing::HasSubstr;
using ::testing::Not;

tpm::Bytes RandomBytes(size_t n) {
  tpm::Bytes out(n);
  EXPECT_EQ(RAND_bytes(out.data(), static_cast<int>(n)), 1);
  return out;
}

class TpmDeviceTest : public ::testing::TestWithParam<AkAlgorithm> {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(swtpm_, SwtpmProcess::Start(state_.path()));
    HOSN_ASSERT_OK_AND_ASSIGN(device_, TpmDevice::Open(swtpm_->tcti(), GetParam()));
  }

  ScopedTempDir state_;
  std::unique_ptr<SwtpmProcess> swtpm_;
  std::unique_ptr<TpmDevice> device_;
};

// The AK has the attributes a verifier demands and the same public area on
// every call (it is re-derived from the endorsement seed, never stored).
TEST_P(TpmDeviceTest, AkIsRestrictedSigningAndStable) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak, device_->AttestationKeyPublic());
  HOSN_EXPECT_OK(attest::AcceptAk(ak));
  HOSN_ASSERT_OK_AND_ASSIGN(auto reopened, TpmDevice::Open(swtpm_->tcti(), GetParam()));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes again, reopened->AttestationKeyPublic());
  EXPECT_EQ(ak, again);
}

// The EK is a restricted decryption key, which a verifier must never accept
// as an AK.
TEST_P(TpmDeviceTest, EkIsNotAnAk) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ek, device_->EndorsementKeyPublic());
  EXPECT_THAT(attest::AcceptAk(ek), Not(IsOk()));
}

// A quote over sha256 PCR 0-7 bound to a fresh nonce and ephemeral key
// verifies with the AK, and the PCR values read beside it hash to pcrDigest.
TEST_P(TpmDeviceTest, QuoteVerifies) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak_public, device_->AttestationKeyPublic());
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, attest::AcceptAk(ak_public));
  const tpm::Bytes nonce = RandomBytes(32);
  const tpm::Bytes spki = RandomBytes(91);  // stands in for the node's ephemeral key
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes qualifying, tpm::ComputeQualifyingData(nonce, spki));

  const tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7}}};
  HOSN_ASSERT_OK_AND_ASSIGN(TpmQuote quote, device_->Quote(selection, qualifying));
  EXPECT_EQ(quote.pcr_values.at(TPM2_ALG_SHA256).size(), 8u);
  HOSN_ASSERT_OK_AND_ASSIGN(
      attest::VerifiedQuote verified,
      attest::VerifyQuote(*ak, quote.attest, quote.signature, qualifying, quote.pcr_values));
  EXPECT_EQ(verified.selection, selection);

  // The same quote checked against another nonce's binding is refused.
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes other, tpm::ComputeQualifyingData(RandomBytes(32), spki));
  EXPECT_THAT(attest::VerifyQuote(*ak, quote.attest, quote.signature, other, quote.pcr_values),
              Not(IsOk()));
}

// T7: qualifyingData longer than 32 bytes is refused before the TPM is asked.
TEST_P(TpmDeviceTest, OversizedNonceRefused) {
  const tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0}}};
  EXPECT_THAT(device_->Quote(selection, RandomBytes(64)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nonce too large")));
  HOSN_EXPECT_OK(device_->Quote(selection, RandomBytes(32)));
}

// ActivateCredential rejects a blob that was not made for this TPM.
TEST_P(TpmDeviceTest, ActivateCredentialRejectsGarbage) {
  EXPECT_THAT(device_->ActivateCredential(RandomBytes(10), RandomBytes(10)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, TpmDeviceTest,
                         ::testing::Values(AkAlgorithm::kEcdsaP256Sha256,
                                           AkAlgorithm::kRsassa2048Sha256));

}  // namespace
}  // namespace hosn::agent
