#include "common/bundle/signature.h"

#include <ctime>
#include <string>

#include "common/bundle/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::bundle {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kContent[] = "{\n \"format_version\": 1\n}\n";

std::unique_ptr<OpenSslKeySigner> SignerFor(const testing::TestPki& pki) {
  auto signer =
      OpenSslKeySigner::Create(SecretBytes::CopyOf(pki.signer_key_pem), pki.signer_cert_pem);
  EXPECT_THAT(signer, IsOk());
  return signer.ok() ? std::move(*signer) : nullptr;
}

// A detached signature of ours verifies with our verifier (EC and RSA keys).
TEST(ManifestSignature, SignsAndVerifies) {
  for (const char* algorithm : {"EC", "RSA"}) {
    ScopedTempDir dir;
    auto pki = testing::MakeTestPki(dir.path(), testing::kSignerExtensions, algorithm);
    auto signer = SignerFor(pki);
    ASSERT_NE(signer, nullptr);
    auto signature = SignManifest(kContent, *signer);
    ASSERT_THAT(signature, IsOk());
    auto subject = VerifyManifestSignature(kContent, *signature, {pki.ca_pem, std::nullopt});
    ASSERT_THAT(subject, IsOk());
    EXPECT_THAT(*subject, HasSubstr("Hosn Test Bundle Signer"));
  }
}

// openssl cms -verify accepts our detached signature over the exact bytes.
TEST(ManifestSignature, OpenSslCliVerifiesOurs) {
  ScopedTempDir dir;
  auto pki = testing::MakeTestPki(dir.path());
  auto signer = SignerFor(pki);
  ASSERT_NE(signer, nullptr);
  auto signature = SignManifest(kContent, *signer);
  ASSERT_THAT(signature, IsOk());
  testing::WriteFileOrDie(dir.Join("manifest.json"), kContent);
  testing::WriteFileOrDie(dir.Join("manifest.json.p7s"), *signature);
  std::string verify = "openssl cms -verify -binary -inform DER -in " +
                       dir.Join("manifest.json.p7s") + " -content " + dir.Join("manifest.json") +
                       " -CAfile " + pki.ca_pem_path + " -out /dev/null 2>/dev/null";
  EXPECT_EQ(testing::Run(verify), 0);
  // The same command refuses other content.
  testing::WriteFileOrDie(dir.Join("manifest.json"), std::string(kContent) + " ");
  EXPECT_NE(testing::Run(verify), 0);
}

// Our verifier accepts a detached signature made by openssl cms -sign -binary.
TEST(ManifestSignature, VerifiesOpenSslCliSignature) {
  ScopedTempDir dir;
  auto pki = testing::MakeTestPki(dir.path());
  testing::WriteFileOrDie(dir.Join("manifest.json"), kContent);
  ASSERT_EQ(testing::Run("openssl cms -sign -binary -outform DER -in " + dir.Join("manifest.json") +
                         " -signer " + pki.signer_cert_path + " -inkey " + pki.signer_key_path +
                         " -md sha256 -out " + dir.Join("manifest.json.p7s") + " 2>/dev/null"),
            0);
  std::string signature = testing::ReadFileOrDie(dir.Join("manifest.json.p7s"));
  EXPECT_THAT(VerifyManifestSignature(kContent, signature, {pki.ca_pem, std::nullopt}), IsOk());
  EXPECT_THAT(
      VerifyManifestSignature(std::string(kContent) + "x", signature, {pki.ca_pem, std::nullopt}),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("signature_invalid")));
}

// A signer that chains to another CA, or is used outside its validity, is
// untrusted.
TEST(ManifestSignature, RefusesUntrustedOrExpiredSigner) {
  ScopedTempDir dir, other_dir;
  auto pki = testing::MakeTestPki(dir.path());
  auto other = testing::MakeTestPki(other_dir.path());
  auto signer = SignerFor(pki);
  ASSERT_NE(signer, nullptr);
  auto signature = SignManifest(kContent, *signer);
  ASSERT_THAT(signature, IsOk());
  EXPECT_THAT(VerifyManifestSignature(kContent, *signature, {other.ca_pem, std::nullopt}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("signer_untrusted")));
  int64_t in_sixty_days = static_cast<int64_t>(std::time(nullptr)) + 60 * 86400;
  EXPECT_THAT(VerifyManifestSignature(kContent, *signature, {pki.ca_pem, in_sixty_days}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("signer_untrusted")));
}

// A signer certificate without digitalSignature or codeSigning is refused.
TEST(ManifestSignature, RefusesWrongKeyUsage) {
  for (const char* ext : {"keyUsage=critical,keyEncipherment\nextendedKeyUsage=codeSigning\n",
                          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                          "keyUsage=critical,digitalSignature\n"}) {
    ScopedTempDir dir;
    auto pki = testing::MakeTestPki(dir.path(), ext);
    auto signer = SignerFor(pki);
    ASSERT_NE(signer, nullptr);
    auto signature = SignManifest(kContent, *signer);
    ASSERT_THAT(signature, IsOk());
    EXPECT_THAT(VerifyManifestSignature(kContent, *signature, {pki.ca_pem, std::nullopt}),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("signer_key_usage")))
        << ext;
  }
}

// Garbage, a flipped signature bit, and an empty trust bundle are refused
// with their names.
TEST(ManifestSignature, RefusesMalformedInput) {
  ScopedTempDir dir;
  auto pki = testing::MakeTestPki(dir.path());
  auto signer = SignerFor(pki);
  ASSERT_NE(signer, nullptr);
  auto signature = SignManifest(kContent, *signer);
  ASSERT_THAT(signature, IsOk());
  EXPECT_THAT(VerifyManifestSignature(kContent, "garbage", {pki.ca_pem, std::nullopt}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("signature_malformed")));
  std::string flipped = *signature;
  flipped[flipped.size() - 3] ^= 0x01;
  EXPECT_FALSE(VerifyManifestSignature(kContent, flipped, {pki.ca_pem, std::nullopt}).ok());
  EXPECT_THAT(VerifyManifestSignature(kContent, *signature, {"", std::nullopt}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trust_bundle_invalid")));
}

// Raw r||s and DER ECDSA encodings convert both ways.
TEST(EcdsaEncoding, ConvertsRawAndDer) {
  std::string raw(64, '\0');
  raw[31] = 5;
  raw[63] = 7;
  auto der = EcdsaRawToDer(raw);
  ASSERT_THAT(der, IsOk());
  auto back = EcdsaDerToRaw(*der, 32);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(*back, raw);
  EXPECT_FALSE(EcdsaRawToDer("odd").ok());
  EXPECT_FALSE(EcdsaDerToRaw("not der", 32).ok());
}

}  // namespace
}  // namespace hosn::bundle
