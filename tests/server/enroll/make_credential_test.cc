#include "server/enroll/make_credential.h"

#include <openssl/rand.h>

#include <memory>

#include "client/agent/tpm/tpm_device.h"
#include "common/tpm/marshal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/swtpm_process.h"
#include "tests/testing/test_paths.h"

namespace hosn::enroll {
namespace {

using ::hosn::agent::EkAlgorithm;
using ::hosn::agent::TpmDevice;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::hosn::testing::SwtpmProcess;
using ::testing::HasSubstr;

SecretBytes RandomCredential() {
  SecretBytes out(32);
  EXPECT_EQ(RAND_bytes(RevealSecret(out).data(), 32), 1);
  return out;
}

// One real swtpm with its device handle.
struct Node {
  ScopedTempDir state;
  std::unique_ptr<SwtpmProcess> swtpm;
  std::unique_ptr<TpmDevice> device;
  TPMT_PUBLIC ek{};
  TPMT_PUBLIC ak{};
};

void StartNode(Node& node, EkAlgorithm ek_algorithm = EkAlgorithm::kEccP256) {
  HOSN_ASSERT_OK_AND_ASSIGN(node.swtpm, SwtpmProcess::Start(node.state.path()));
  HOSN_ASSERT_OK_AND_ASSIGN(
      node.device,
      TpmDevice::Open(node.swtpm->tcti(), agent::AkAlgorithm::kEcdsaP256Sha256, ek_algorithm));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ek, node.device->EndorsementKeyPublic());
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak, node.device->AttestationKeyPublic());
  HOSN_ASSERT_OK_AND_ASSIGN(node.ek, tpm::UnmarshalPublic(ek));
  HOSN_ASSERT_OK_AND_ASSIGN(node.ak, tpm::UnmarshalPublic(ak));
}

// Every test below runs with the TCG L-2 ECC P-256 EK and the L-1 RSA 2048 EK.
class MakeCredentialTest : public ::testing::TestWithParam<EkAlgorithm> {};

INSTANTIATE_TEST_SUITE_P(EkTypes, MakeCredentialTest,
                         ::testing::Values(EkAlgorithm::kEccP256, EkAlgorithm::kRsa2048),
                         [](const ::testing::TestParamInfo<EkAlgorithm>& param) {
                           return param.param == EkAlgorithm::kRsa2048 ? "Rsa2048" : "EccP256";
                         });

// The TPM that holds the EK and the AK recovers exactly the credential.
TEST_P(MakeCredentialTest, SameTpmActivates) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node, GetParam()));
  EXPECT_EQ(node.ek.type, GetParam() == EkAlgorithm::kRsa2048 ? TPM2_ALG_RSA : TPM2_ALG_ECC);
  const SecretBytes credential = RandomCredential();
  HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge challenge,
                            MakeCredential(node.ek, node.ak, credential));
  HOSN_ASSERT_OK_AND_ASSIGN(
      SecretBytes recovered,
      node.device->ActivateCredential(challenge.credential_blob, challenge.encrypted_secret));
  EXPECT_TRUE(recovered == credential);
}

// An AK from another TPM cannot be enrolled under this node's EK: the
// challenge names node B's AK, node A's TPM refuses it, and node B cannot
// open a challenge made for node A's EK.
TEST_P(MakeCredentialTest, AkFromAnotherTpmRefused) {
  Node a;
  Node b;
  ASSERT_NO_FATAL_FAILURE(StartNode(a, GetParam()));
  ASSERT_NO_FATAL_FAILURE(StartNode(b, GetParam()));
  const SecretBytes credential = RandomCredential();

  HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge foreign_ak, MakeCredential(a.ek, b.ak, credential));
  EXPECT_THAT(a.device->ActivateCredential(foreign_ak.credential_blob, foreign_ak.encrypted_secret),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")));
  EXPECT_THAT(b.device->ActivateCredential(foreign_ak.credential_blob, foreign_ak.encrypted_secret),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")));
}

// A flipped bit in the blob fails the TPM's integrity check; one in the
// encrypted seed (the OAEP block or the ECC point) is refused as well.
TEST_P(MakeCredentialTest, TamperedBlobOrSecretRefused) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node, GetParam()));
  for (bool tamper_secret : {false, true}) {
    HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge challenge,
                              MakeCredential(node.ek, node.ak, RandomCredential()));
    tpm::Bytes& tampered = tamper_secret ? challenge.encrypted_secret : challenge.credential_blob;
    tampered[tampered.size() - 1] ^= 0x01;
    EXPECT_THAT(
        node.device->ActivateCredential(challenge.credential_blob, challenge.encrypted_secret),
        StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")))
        << (tamper_secret ? "secret" : "blob");
  }
}

// RSA: the secret is a TPM2B of one OAEP block of the modulus size, and a new
// seed is drawn for every challenge.
TEST(MakeCredential, RsaSecretIsOneOaepBlock) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node, EkAlgorithm::kRsa2048));
  ASSERT_EQ(node.ek.parameters.rsaDetail.keyBits, 2048);
  const SecretBytes credential = RandomCredential();
  HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge first,
                            MakeCredential(node.ek, node.ak, credential));
  HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge second,
                            MakeCredential(node.ek, node.ak, credential));
  ASSERT_EQ(first.encrypted_secret.size(), 2u + 256u);
  EXPECT_EQ(first.encrypted_secret[0], 0x01);
  EXPECT_EQ(first.encrypted_secret[1], 0x00);
  EXPECT_NE(first.encrypted_secret, second.encrypted_secret);
  EXPECT_NE(first.credential_blob, second.credential_blob);
}

// RSA EKs outside the supported set are named: a 1024-bit key, a non-AES
// symmetric definition.
TEST(MakeCredential, RsaEkOutsideProfileUnimplemented) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node, EkAlgorithm::kRsa2048));
  TPMT_PUBLIC ek = node.ek;
  ek.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
  EXPECT_THAT(MakeCredential(ek, node.ak, RandomCredential()),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("AES-CFB")));
  ek = node.ek;
  ek.parameters.rsaDetail.keyBits = 1024;
  EXPECT_THAT(MakeCredential(ek, node.ak, RandomCredential()),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("2048")));
}

// The EK must be a restricted decryption key; an AK in its place is refused.
TEST(MakeCredential, RejectsSigningKeyAsEk) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node));
  EXPECT_THAT(MakeCredential(node.ak, node.ak, RandomCredential()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("restricted decryption")));
  EXPECT_THAT(MakeCredential(node.ek, node.ak, SecretBytes(33)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 32")));
}

}  // namespace
}  // namespace hosn::enroll
