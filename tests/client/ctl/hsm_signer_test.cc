#include "client/ctl/hsm_signer.h"

#include <string>

#include "common/bundle/signature.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::ctl {
namespace {

using bundle::testing::ReadFileOrDie;
using bundle::testing::WriteFileOrDie;
using ::hosn::testing::IsOk;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::SoftHsmToken;

constexpr char kManifest[] = "{\n \"format_version\": 1\n}\n";

// A certificate from the test CA for a public key that only the token holds
// the private half of (openssl x509 -force_pubkey).
std::string CertifyTokenKey(const bundle::testing::TestPki& pki, const std::string& dir,
                            const std::string& public_key_der) {
  WriteFileOrDie(dir + "/token.pub.der", public_key_der);
  EXPECT_EQ(bundle::testing::Run("openssl pkey -pubin -inform DER -in " + dir +
                                 "/token.pub.der -out " + dir + "/token.pub.pem 2>/dev/null"),
            0);
  EXPECT_EQ(
      bundle::testing::Run("openssl x509 -req -days 30 -in " + dir + "/signer.csr -CA " +
                           pki.ca_pem_path + " -CAkey " + pki.ca_key_path +
                           " -set_serial 3 -force_pubkey " + dir + "/token.pub.pem -extfile " +
                           dir + "/signer.ext -out " + dir + "/token.pem 2>/dev/null"),
      0);
  return ReadFileOrDie(dir + "/token.pem");
}

// A manifest signed through a real SoftHSM token verifies with our verifier
// and with openssl cms -verify.
TEST(HsmManifestSigner, SignsThroughSoftHsmToken) {
  auto token = SoftHsmToken::Create("bundle-signing");
  ASSERT_THAT(token, IsOk());
  hsm::KeyStoreOptions options;
  options.uri = (*token)->uri();
  options.module_path = SoftHsmToken::kModulePath;
  options.pin_reference = (*token)->pin_reference();
  options.pool_size = 1;
  auto store = hsm::KeyStore::Create(options);
  ASSERT_THAT(store, IsOk());
  auto key = (*store)->GenerateSigningKey("ec-p256", "bundle-signer", "\x01");
  ASSERT_THAT(key, IsOk());

  ScopedTempDir dir;
  auto pki = bundle::testing::MakeTestPki(dir.path());
  std::string cert = CertifyTokenKey(pki, dir.path(), key->public_key_der);
  auto signer = HsmManifestSigner::Create(store->get(), key->private_key, cert);
  ASSERT_THAT(signer, IsOk());
  auto signature = bundle::SignManifest(kManifest, **signer);
  ASSERT_THAT(signature, IsOk());
  EXPECT_THAT(bundle::VerifyManifestSignature(kManifest, *signature, {pki.ca_pem, std::nullopt}),
              IsOk());

  WriteFileOrDie(dir.Join("manifest.json"), kManifest);
  WriteFileOrDie(dir.Join("manifest.json.p7s"), *signature);
  EXPECT_EQ(bundle::testing::Run("openssl cms -verify -binary -inform DER -in " +
                                 dir.Join("manifest.json.p7s") + " -content " +
                                 dir.Join("manifest.json") + " -CAfile " + pki.ca_pem_path +
                                 " -out /dev/null 2>/dev/null"),
            0);
}

// A certificate for another key is refused before anything is signed.
TEST(HsmManifestSigner, RefusesCertificateForAnotherKey) {
  auto token = SoftHsmToken::Create("bundle-signing-2");
  ASSERT_THAT(token, IsOk());
  hsm::KeyStoreOptions options;
  options.uri = (*token)->uri();
  options.module_path = SoftHsmToken::kModulePath;
  options.pin_reference = (*token)->pin_reference();
  options.pool_size = 1;
  auto store = hsm::KeyStore::Create(options);
  ASSERT_THAT(store, IsOk());
  auto key = (*store)->GenerateSigningKey("ec-p256", "bundle-signer", "\x02");
  ASSERT_THAT(key, IsOk());
  ScopedTempDir dir;
  auto pki = bundle::testing::MakeTestPki(dir.path());
  auto signer = HsmManifestSigner::Create(store->get(), key->private_key, pki.signer_cert_pem);
  EXPECT_EQ(signer.status().code(), absl::StatusCode::kInvalidArgument);
}

// hosnctl bundle pack signs through a SoftHSM token (--hsm-uri) and the
// bundle then verifies with hosnctl and with openssl cms -verify.
TEST(HsmManifestSigner, HosnctlPacksWithTokenKey) {
  auto token = SoftHsmToken::Create("bundle-signing-3");
  ASSERT_THAT(token, IsOk());
  hsm::KeyStoreOptions options;
  options.uri = (*token)->uri();
  options.module_path = SoftHsmToken::kModulePath;
  options.pin_reference = (*token)->pin_reference();
  options.pool_size = 1;
  std::string public_key_der;
  {
    // The CLI opens the token itself; this store only makes the key.
    auto store = hsm::KeyStore::Create(options);
    ASSERT_THAT(store, IsOk());
    auto key = (*store)->GenerateSigningKey("ec-p256", "bundle-signer", "\x03");
    ASSERT_THAT(key, IsOk());
    public_key_der = key->public_key_der;
  }
  ScopedTempDir dir;
  auto pki = bundle::testing::MakeTestPki(dir.path());
  CertifyTokenKey(pki, dir.path(), public_key_der);
  WriteFileOrDie(dir.Join("dek.hex"), std::string(64, '7'));
  ASSERT_EQ(bundle::testing::Run("chmod 600 " + dir.Join("dek.hex")), 0);
  WriteFileOrDie(dir.Join("dek.wrapped"), bundle::testing::TestWrappedDek());
  ASSERT_EQ(bundle::testing::Run("mkdir -p " + dir.Join("model")), 0);
  WriteFileOrDie(dir.Join("model/config.json"), "{}");
  std::string hosnctl = ::hosn::testing::BinaryPath("client/ctl/hosnctl");
  std::string pack =
      hosnctl + " bundle pack --model " + dir.Join("model") + " --out " + dir.Join("bundle") +
      " --name m --version 1 --dek file:" + dir.Join("dek.hex") + " --wrapped-dek " +
      dir.Join("dek.wrapped") + " --kek-label kek --signer-cert " + dir.Join("token.pem") +
      " --hsm-uri '" + (*token)->uri() + "' --hsm-module " + SoftHsmToken::kModulePath +
      " --hsm-pin " + (*token)->pin_reference() + " --signer-label bundle-signer --signer-id 03 >" +
      dir.Join("pack.log") + " 2>&1";
  ASSERT_EQ(bundle::testing::Run(pack), 0) << ReadFileOrDie(dir.Join("pack.log"));
  EXPECT_EQ(bundle::testing::Run(hosnctl + " bundle verify --bundle " + dir.Join("bundle") +
                                 " --ca " + pki.ca_pem_path + " >/dev/null 2>&1"),
            0);
  EXPECT_EQ(bundle::testing::Run("openssl cms -verify -binary -inform DER -in " +
                                 dir.Join("bundle/manifest.json.p7s") + " -content " +
                                 dir.Join("bundle/manifest.json") + " -CAfile " + pki.ca_pem_path +
                                 " -out /dev/null 2>/dev/null"),
            0);
}

}  // namespace
}  // namespace hosn::ctl
