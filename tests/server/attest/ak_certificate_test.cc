// AK certificates: the real GCE AK certificates chain to the Google EK root
// and certify exactly their AK.
#include "server/attest/ak_certificate.h"

#include <string>
#include <vector>

#include "common/tpm/marshal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/denial.h"
#include "tests/server/attest/test_data.h"
#include "tests/testing/status_matchers.h"

namespace hosn::attest {
namespace {

using ::hosn::testing::IsOk;
using ::testing::HasSubstr;

std::string ReadText(const std::string& relative) {
  absl::StatusOr<tpm::Bytes> bytes = testing::ReadSharedBytes(relative);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : std::string();
}

constexpr char kCa[] = "tpm/go-tpm-tools/ca-certs/";

struct Inputs {
  tpm::Bytes cert;
  TPMT_PUBLIC ak = {};
  std::vector<std::string> roots;
  std::vector<std::string> intermediates;
};

Inputs Load(const std::string& attestation) {
  Inputs in;
  const std::string base = "tpm/go-tpm-tools/attestations/" + attestation;
  in.cert = *testing::ReadSharedBytes(base + ".ak_cert.der");
  in.ak = *tpm::UnmarshalPublic(*testing::ReadSharedBytes(base + ".ak_pub.tpmt_public"));
  in.roots = {ReadText(std::string(kCa) + "tpm_ek_root_1.cer")};
  in.intermediates = {ReadText(std::string(kCa) + "tpm_ek_intermediate_2.crt"),
                      ReadText(std::string(kCa) + "tpm_ek_intermediate_3.crt")};
  return in;
}

class GceAkCertificateTest : public ::testing::TestWithParam<std::string> {};

// The AK certificate chains to tpm_ek_root_1 through the intermediates and certifies the AK.
TEST_P(GceAkCertificateTest, ChainsToRootAndMatchesAk) {
  Inputs in = Load(GetParam());
  EXPECT_THAT(VerifyAkCertificate(in.cert, in.ak, in.roots, in.intermediates), IsOk());
}

// Without the intermediates, or under another root, the chain does not verify.
TEST_P(GceAkCertificateTest, WrongChainDenied) {
  Inputs in = Load(GetParam());
  absl::Status no_intermediates = VerifyAkCertificate(in.cert, in.ak, in.roots, {});
  EXPECT_EQ(GetDenialReason(no_intermediates), DenialReason::kAkCertificateInvalid);
  EXPECT_THAT(no_intermediates.message(), HasSubstr("issuer"));
  const std::vector<std::string> other_root = {
      ReadText(std::string(kCa) + "gcp_ek_ak_ca_root.crt")};
  EXPECT_EQ(GetDenialReason(VerifyAkCertificate(in.cert, in.ak, other_root, in.intermediates)),
            DenialReason::kAkCertificateInvalid);
}

// A certificate for another key, or a damaged one, is denied with its reason.
TEST_P(GceAkCertificateTest, MismatchAndDamageDenied) {
  Inputs in = Load(GetParam());
  TPMT_PUBLIC other = in.ak;
  other.unique.rsa.buffer[10] ^= 1;
  EXPECT_EQ(GetDenialReason(VerifyAkCertificate(in.cert, other, in.roots, in.intermediates)),
            DenialReason::kAkCertificateMismatch);
  tpm::Bytes damaged = in.cert;
  damaged[damaged.size() - 20] ^= 1;  // inside the signature
  EXPECT_EQ(GetDenialReason(VerifyAkCertificate(damaged, in.ak, in.roots, in.intermediates)),
            DenialReason::kAkCertificateInvalid);
  tpm::Bytes trailing = in.cert;
  trailing.push_back(0);
  EXPECT_EQ(GetDenialReason(VerifyAkCertificate(trailing, in.ak, in.roots, in.intermediates)),
            DenialReason::kAkCertificateInvalid);
  EXPECT_EQ(VerifyAkCertificate(in.cert, in.ak, {}, in.intermediates).code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Gce, GceAkCertificateTest,
                         ::testing::Values("gce-cos-85-no-nonce", "gce-cos-85-nonce9009"));

}  // namespace
}  // namespace hosn::attest
