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

void StartNode(Node& node) {
  HOSN_ASSERT_OK_AND_ASSIGN(node.swtpm, SwtpmProcess::Start(node.state.path()));
  HOSN_ASSERT_OK_AND_ASSIGN(node.device, TpmDevice::Open(node.swtpm->tcti()));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ek, node.device->EndorsementKeyPublic());
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak, node.device->AttestationKeyPublic());
  HOSN_ASSERT_OK_AND_ASSIGN(node.ek, tpm::UnmarshalPublic(ek));
  HOSN_ASSERT_OK_AND_ASSIGN(node.ak, tpm::UnmarshalPublic(ak));
}

// The TPM that holds the EK and the AK recovers exactly the credential.
TEST(MakeCredential, SameTpmActivates) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node));
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
TEST(MakeCredential, AkFromAnotherTpmRefused) {
  Node a;
  Node b;
  ASSERT_NO_FATAL_FAILURE(StartNode(a));
  ASSERT_NO_FATAL_FAILURE(StartNode(b));
  const SecretBytes credential = RandomCredential();

  HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge foreign_ak, MakeCredential(a.ek, b.ak, credential));
  EXPECT_THAT(a.device->ActivateCredential(foreign_ak.credential_blob, foreign_ak.encrypted_secret),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")));
  EXPECT_THAT(b.device->ActivateCredential(foreign_ak.credential_blob, foreign_ak.encrypted_secret),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")));
}

// A flipped bit anywhere in the blob fails the TPM's integrity check.
TEST(MakeCredential, TamperedBlobRefused) {
  Node node;
  ASSERT_NO_FATAL_FAILURE(StartNode(node));
  HOSN_ASSERT_OK_AND_ASSIGN(CredentialChallenge challenge,
                            MakeCredential(node.ek, node.ak, RandomCredential()));
  challenge.credential_blob[challenge.credential_blob.size() - 1] ^= 0x01;
  EXPECT_THAT(
      node.device->ActivateCredential(challenge.credential_blob, challenge.encrypted_secret),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")));
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
