#include "server/hsm/key_store.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::Unhex;
using ::hosn::hsm::testing::UnhexSecret;
using ::hosn::testing::IsOk;
using ::hosn::testing::SoftHsmToken;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

// Verifies `signature` over `message` with the DER SubjectPublicKeyInfo,
// using OpenSSL only.
bool OpenSslVerify(const std::string& spki, std::string_view algorithm, std::string_view message,
                   const std::string& signature) {
  const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())), EVP_PKEY_free);
  if (key == nullptr) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const EVP_MD* md = nullptr;
  if (algorithm == "ecdsa-p256-sha256" || algorithm == "rsa-pss-sha256" ||
      algorithm == "rsa-pkcs1-sha256") {
    md = EVP_sha256();
  } else if (algorithm == "ecdsa-p384-sha384") {
    md = EVP_sha384();
  }
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.get()) != 1) return false;
  if (algorithm == "rsa-pss-sha256") {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-keystore"));
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(OptionsFor(*token_)));
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<KeyStore> store_;
};

// A generated KEK is a sensitive, non-extractable AES token key.
TEST_F(KeyStoreTest, GeneratedKekIsSensitiveAndNotExtractable) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("kek-a", "\x01"));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo info, store_->FindKey(kek));
  EXPECT_EQ(info.label, "kek-a");
  EXPECT_EQ(info.id, "\x01");
  EXPECT_TRUE(info.token);
  EXPECT_TRUE(info.sensitive);
  EXPECT_FALSE(info.extractable);
}

// A second KEK with the same label and id is refused.
TEST_F(KeyStoreTest, GenerateKekRefusesDuplicate) {
  HOSN_ASSERT_OK(store_->GenerateKek("kek-a", "\x01").status());
  EXPECT_THAT(store_->GenerateKek("kek-a", "\x01"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("kek-a")));
}

// A KEK can wrap and unwrap but not encrypt: the DEK check value through a
// KEK-only key pair shows the DEK round-trips and the wrapped form differs.
TEST_F(KeyStoreTest, WrappedDekUnwrapsToSameKey) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("kek", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(WrappedKey wrapped, store_->GenerateWrappedDek(kek));
  EXPECT_EQ(wrapped.algorithm, "aes-kwp");
  EXPECT_EQ(wrapped.wrapped.size(), 40u);  // 32-byte key + 8-byte RFC 5649 block
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv1, store_->DekCheckValue(kek, wrapped));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv2, store_->DekCheckValue(kek, wrapped));
  EXPECT_EQ(kcv1.size(), 16u);
  EXPECT_EQ(kcv1, kcv2);
  HOSN_ASSERT_OK_AND_ASSIGN(WrappedKey other, store_->GenerateWrappedDek(kek));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv3, store_->DekCheckValue(kek, other));
  EXPECT_NE(kcv1, kcv3);
}

// Rewrap moves a known DEK from one KEK to another inside the HSM.
TEST_F(KeyStoreTest, RewrapKeepsKnownDek) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef old_kek,
                            store_->ImportSecretKeyForTesting("kek-old", "1", KeyType::kAes,
                                                              UnhexSecret(testing::kP4Kek)));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef new_kek, store_->GenerateKek("kek-new", "2"));
  const WrappedKey wrapped{"aes-kwp", KeyType::kAes, Unhex(testing::kP4Rfc5649)};
  HOSN_ASSERT_OK_AND_ASSIGN(WrappedKey rewrapped, store_->Rewrap(old_kek, wrapped, new_kek));
  EXPECT_NE(rewrapped.wrapped, wrapped.wrapped);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(new_kek, rewrapped));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string expected,
                            ExpectedCheckValue(UnhexSecret(testing::kP4Dek), KeyType::kAes));
  EXPECT_EQ(kcv, expected);
  // The old KEK no longer opens the new blob.
  EXPECT_THAT(store_->DekCheckValue(old_kek, rewrapped),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
}

// The unwrapped DEK can be wrapped again under the same KEK, giving the
// same RFC 5649 blob (the wrap is deterministic).
TEST_F(KeyStoreTest, UnwrappedDekWrapsBackToSameBlob) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      KeyRef kek,
      store_->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(testing::kP4Kek)));
  const WrappedKey wrapped{"aes-kwp", KeyType::kAes, Unhex(testing::kP4Rfc5649)};
  int calls = 0;
  HOSN_ASSERT_OK(store_->WithUnwrappedDek(kek, wrapped, [&](const UnwrappedDek& dek) {
    ++calls;
    absl::StatusOr<WrappedKey> again = dek.WrapUnder(kek);
    EXPECT_THAT(again, IsOk());
    if (again.ok()) {
      EXPECT_EQ(again->wrapped, wrapped.wrapped);
    }
    return absl::OkStatus();
  }));
  EXPECT_EQ(calls, 1);
}

// Signing keys of every supported kind sign, and OpenSSL verifies the
// signature with the exported SubjectPublicKeyInfo.
TEST_F(KeyStoreTest, SignaturesVerifyWithOpenSsl) {
  struct Case {
    const char* key_algorithm;
    const char* signature_algorithm;
  };
  const Case cases[] = {
      {"ec-p256", "ecdsa-p256-sha256"}, {"ec-p384", "ecdsa-p384-sha384"},
      {"rsa-3072", "rsa-pss-sha256"},   {"rsa-3072", "rsa-pkcs1-sha256"},
      {"ed25519", "ed25519"},
  };
  int index = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.signature_algorithm);
    const std::string label = std::string("sig-") + std::to_string(index++);
    HOSN_ASSERT_OK_AND_ASSIGN(SigningKey key,
                              store_->GenerateSigningKey(c.key_algorithm, label, label));
    HOSN_ASSERT_OK_AND_ASSIGN(std::string exported, store_->ExportPublicKey(key.private_key));
    EXPECT_EQ(exported, key.public_key_der);
    const std::string message = "model manifest sha256:" + label;
    HOSN_ASSERT_OK_AND_ASSIGN(std::string signature,
                              store_->Sign(key.private_key, c.signature_algorithm, message));
    EXPECT_TRUE(OpenSslVerify(key.public_key_der, c.signature_algorithm, message, signature));
    EXPECT_FALSE(
        OpenSslVerify(key.public_key_der, c.signature_algorithm, message + "x", signature));
  }
}

// ECDSA: the raw form is r||s of twice the field size; the DER form of the
// same signature verifies.
TEST_F(KeyStoreTest, EcdsaRawSignatureHasFieldSizeHalves) {
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey key, store_->GenerateSigningKey("ec-p256", "ec", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string raw, store_->Sign(key.private_key, "ecdsa-p256-sha256",
                                                          "hello", SignatureFormat::kPkcs11Raw));
  EXPECT_EQ(raw.size(), 64u);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string der,
                            store_->Sign(key.private_key, "ecdsa-p256-sha256", "hello"));
  EXPECT_EQ(der[0], 0x30);
  EXPECT_TRUE(OpenSslVerify(key.public_key_der, "ecdsa-p256-sha256", "hello", der));
}

// The per-session copies made for signing and unwrapping never show up in
// lookups: the key stays unambiguous.
TEST_F(KeyStoreTest, SessionCopiesDoNotMatchLookups) {
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey key, store_->GenerateSigningKey("ec-p256", "ec", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("kek", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(WrappedKey wrapped, store_->GenerateWrappedDek(kek));
  for (int i = 0; i < 3; ++i) {
    HOSN_ASSERT_OK(store_->Sign(key.private_key, "ecdsa-p256-sha256", "m").status());
    HOSN_ASSERT_OK(store_->DekCheckValue(kek, wrapped).status());
  }
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo info, store_->FindKey(key.private_key));
  EXPECT_TRUE(info.token);
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo kek_info, store_->FindKey(kek));
  EXPECT_TRUE(kek_info.token);
}

// A key of one type refuses an algorithm of another.
TEST_F(KeyStoreTest, SignRefusesMismatchedKeyType) {
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey key, store_->GenerateSigningKey("ec-p256", "ec", "1"));
  EXPECT_THAT(store_->Sign(key.private_key, "rsa-pss-sha256", "hello"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not fit")));
  EXPECT_THAT(store_->Sign(key.private_key, "md5-rsa", "hello"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown")));
}

// An EC key used with the other curve's algorithm is refused, and no
// signature comes back.
TEST_F(KeyStoreTest, SignRefusesWrongCurve) {
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey p384, store_->GenerateSigningKey("ec-p384", "p384", "1"));
  EXPECT_THAT(store_->Sign(p384.private_key, "ecdsa-p256-sha256", "hello"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another curve")));
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey p256, store_->GenerateSigningKey("ec-p256", "p256", "1"));
  EXPECT_THAT(store_->Sign(p256.private_key, "ecdsa-p384-sha384", "hello"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another curve")));
  HOSN_EXPECT_OK(store_->Sign(p256.private_key, "ecdsa-p256-sha256", "hello"));
}

// Concurrent creations of one KEK label and id make exactly one key.
TEST_F(KeyStoreTest, ConcurrentGenerateKekCreatesOne) {
  std::atomic<int> created{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto kek = store_->GenerateKek("race", "\x07");
      if (kek.ok()) {
        ++created;
      } else if (kek.status().code() == absl::StatusCode::kAlreadyExists) {
        ++refused;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), 3);
  HOSN_EXPECT_OK(store_->FindKey(KeyRef::Kek("race", "\x07")));
}

// The private half of a generated signing key cannot be extracted.
TEST_F(KeyStoreTest, SigningKeyIsNotExtractable) {
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey key, store_->GenerateSigningKey("ec-p384", "ec", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo info, store_->FindKey(key.private_key));
  EXPECT_TRUE(info.sensitive);
  EXPECT_FALSE(info.extractable);
}

// Looking up a label that does not exist is NotFound.
TEST_F(KeyStoreTest, FindMissingKeyIsNotFound) {
  EXPECT_THAT(store_->FindKey(KeyRef::Kek("nope", "1")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

// DestroyKey removes the key; later lookups fail.
TEST_F(KeyStoreTest, DestroyKeyRemovesIt) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("kek", "1"));
  HOSN_ASSERT_OK(store_->DestroyKey(kek));
  EXPECT_THAT(store_->FindKey(kek), StatusIs(absl::StatusCode::kNotFound, HasSubstr("kek")));
}

// The token can be selected by serial alone, and a wrong label fails.
TEST(KeyStoreCreate, SelectsTokenBySerial) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto token, SoftHsmToken::Create("hosn-serial"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string other_serial, token->AddToken("hosn-other"));
  KeyStoreOptions options = OptionsFor(*token);
  options.uri = "pkcs11:serial=" + token->serial();
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, KeyStore::Create(options));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store->GenerateKek("kek", "1"));
  store.reset();

  // The key went to the token with that serial, not the other one.
  options.uri = "pkcs11:serial=" + other_serial;
  HOSN_ASSERT_OK_AND_ASSIGN(store, KeyStore::Create(options));
  EXPECT_THAT(store->FindKey(kek), StatusIs(absl::StatusCode::kNotFound, HasSubstr("kek")));
  store.reset();

  options.uri = "pkcs11:token=no-such-token";
  EXPECT_THAT(KeyStore::Create(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-token")));
}

// Create refuses PINs that are not file or credential references, and a
// wrong PIN fails without echoing it.
TEST(KeyStoreCreate, RefusesInlineAndWrongPins) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto token, SoftHsmToken::Create("hosn-pin"));
  KeyStoreOptions options = OptionsFor(*token);
  options.pin_reference = SoftHsmToken::kUserPin;
  EXPECT_THAT(KeyStore::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("secret reference")));

  ::hosn::testing::ScopedTempDir dir;
  const std::string wrong = dir.Join("wrong.pin");
  HOSN_ASSERT_OK(WriteFileAtomically(wrong, "not-the-pin", 0600));
  options.pin_reference = "file:" + wrong;
  absl::StatusOr<std::unique_ptr<KeyStore>> store = KeyStore::Create(options);
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("CKR_PIN_INCORRECT")));
  EXPECT_THAT(std::string(store.status().message()), ::testing::Not(HasSubstr("not-the-pin")));
}

// The PIN may come from a systemd credential.
TEST(KeyStoreCreate, ReadsPinFromCredential) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto token, SoftHsmToken::Create("hosn-cred"));
  ::hosn::testing::ScopedTempDir credentials;
  HOSN_ASSERT_OK(WriteFileAtomically(credentials.Join("hsm-pin"), SoftHsmToken::kUserPin, 0600));
  ::setenv("CREDENTIALS_DIRECTORY", credentials.path().c_str(), 1);
  KeyStoreOptions options = OptionsFor(*token);
  options.pin_reference = "credential:hsm-pin";
  absl::StatusOr<std::unique_ptr<KeyStore>> store = KeyStore::Create(options);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  EXPECT_THAT(store, IsOk());
}

// The metrics snapshot counts operations by kind and result.
TEST_F(KeyStoreTest, MetricsCountOperations) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("kek", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(WrappedKey wrapped, store_->GenerateWrappedDek(kek));
  HOSN_ASSERT_OK(store_->DekCheckValue(kek, wrapped).status());
  EXPECT_FALSE(store_->FindKey(KeyRef::Kek("missing")).ok());
  PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.size, 4);
  EXPECT_EQ(metrics.in_use, 0);
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kGenerate)].ok, 2u);
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kUnwrap)].ok, 1u);
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kFind)].failed, 1u);
  uint64_t bucketed = 0;
  for (uint64_t count : metrics.ops[static_cast<size_t>(OpKind::kGenerate)].latency_buckets) {
    bucketed += count;
  }
  EXPECT_EQ(bucketed, 2u);
}

}  // namespace
}  // namespace hosn::hsm
