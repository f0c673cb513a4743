// AK certificates: the real GCE AK certificates chain to the Google EK root
// and certify exactly their AK; revocation through CRLs of a CA made with the
// OpenSSL CLI, for the real GCE AK.
#include "server/attest/ak_certificate.h"

#include <openssl/pem.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "common/base/file_util.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/marshal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/denial.h"
#include "tests/server/attest/test_data.h"
#include "tests/testing/openssl_ca.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

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

// A root and an intermediate made with the OpenSSL CLI, and an AK
// certificate from the intermediate for the real GCE AK.
class AkCertificateCrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    in_ = Load("gce-cos-85-no-nonce");
    absl::StatusOr<tpm::UniqueEvpPkey> key = tpm::PublicKeyFromTpm(in_.ak);
    ASSERT_TRUE(key.ok()) << key.status();
    const std::string pub = dir_.Join("ak.pub.pem");
    FILE* f = std::fopen(pub.c_str(), "w");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(PEM_write_PUBKEY(f, key->get()), 1);
    std::fclose(f);
    HOSN_ASSERT_OK_AND_ASSIGN(root_, hosn::testing::OpensslTestCa::Create(dir_.path(), "root"));
    HOSN_ASSERT_OK_AND_ASSIGN(
        intermediate_, hosn::testing::OpensslTestCa::Create(dir_.path(), "intermediate", &*root_));
    HOSN_ASSERT_OK_AND_ASSIGN(leaf_pem_, intermediate_->Issue(pub, "ak", 30));
    HOSN_ASSERT_OK_AND_ASSIGN(std::string der, hosn::testing::ConvertCertificate(leaf_pem_, "DER"));
    const std::string text = Pem(der);
    leaf_.assign(text.begin(), text.end());
  }

  static std::string Pem(const std::string& path) {
    absl::StatusOr<std::string> text = ReadFile(path, 1 << 20);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? *text : std::string();
  }

  absl::Status Verify(const std::string& crls) {
    return VerifyAkCertificate(leaf_, in_.ak, {Pem(root_->certificate_path())},
                               {Pem(intermediate_->certificate_path())}, crls);
  }

  hosn::testing::ScopedTempDir dir_;
  Inputs in_;
  std::optional<hosn::testing::OpensslTestCa> root_;
  std::optional<hosn::testing::OpensslTestCa> intermediate_;
  std::string leaf_pem_;
  tpm::Bytes leaf_;
};

// Current CRLs of both CAs listing nothing: accepted.
TEST_F(AkCertificateCrlTest, UnrevokedAccepted) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::string root_crl, root_->Crl(3600));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string intermediate_crl, intermediate_->Crl(3600));
  EXPECT_THAT(Verify(root_crl + intermediate_crl), IsOk());
}

// The AK certificate revoked by its CA is refused; without CRLs it would pass.
TEST_F(AkCertificateCrlTest, RevokedLeafRefused) {
  HOSN_ASSERT_OK(intermediate_->Revoke(leaf_pem_));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string root_crl, root_->Crl(3600));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string intermediate_crl, intermediate_->Crl(3600));
  absl::Status status = Verify(root_crl + intermediate_crl);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kAkCertificateRevoked) << status;
  EXPECT_THAT(status.message(), HasSubstr("depth 0, issuer /CN=intermediate"));
  EXPECT_THAT(Verify(""), IsOk());
}

// A revoked intermediate revokes the AK certificates below it.
TEST_F(AkCertificateCrlTest, RevokedIntermediateRefused) {
  HOSN_ASSERT_OK(root_->Revoke(intermediate_->certificate_path()));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string root_crl, root_->Crl(3600));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string intermediate_crl, intermediate_->Crl(3600));
  absl::Status status = Verify(root_crl + intermediate_crl);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kAkCertificateRevoked) << status;
  EXPECT_THAT(status.message(), HasSubstr("depth 1, issuer /CN=root"));
}

// A CRL past its nextUpdate is refused as "crl expired", even listing nothing.
TEST_F(AkCertificateCrlTest, ExpiredCrlRefused) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::string root_crl, root_->Crl(3600));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string intermediate_crl, intermediate_->Crl(1));
  sleep(2);
  absl::Status status = Verify(root_crl + intermediate_crl);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kCrlExpired) << status;
  EXPECT_THAT(status.message(), HasSubstr("crl expired: ak certificate chain depth 0"));
}

// With CRLs configured, a CA of the chain without one fails closed; a bundle
// that does not parse is a configuration error.
TEST_F(AkCertificateCrlTest, MissingOrBadCrlRefused) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::string intermediate_crl, intermediate_->Crl(3600));
  absl::Status status = Verify(intermediate_crl);
  EXPECT_EQ(GetDenialReason(status), DenialReason::kAkCertificateInvalid) << status;
  EXPECT_THAT(status.message(), HasSubstr("unable to get certificate CRL"));
  EXPECT_EQ(Verify("not a crl").code(), absl::StatusCode::kInvalidArgument);
  std::string damaged = intermediate_crl;
  damaged[damaged.size() / 2] = '!';
  EXPECT_EQ(Verify(damaged).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Gce, GceAkCertificateTest,
                         ::testing::Values("gce-cos-85-no-nonce", "gce-cos-85-nonce9009"));

}  // namespace
}  // namespace hosn::attest
