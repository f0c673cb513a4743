// The PKCS#11 cases P2-P7 of ../shared/cases/README.md, each against a real
// SoftHSM token, most through the fault-injecting module. P1 (locking under
// concurrent use) is in concurrency_test.cc so that it also runs under TSan.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::hsm::testing::FaultModule;
using ::hosn::hsm::testing::Hex;
using ::hosn::hsm::testing::kP4Dek;
using ::hosn::hsm::testing::kP4Kek;
using ::hosn::hsm::testing::kP4Rfc3394;
using ::hosn::hsm::testing::kP4Rfc5649;
using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::Unhex;
using ::hosn::hsm::testing::UnhexSecret;
using ::hosn::testing::SoftHsmToken;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

const WrappedKey& P4Blob() {
  static const WrappedKey* blob = new WrappedKey{"aes-kwp", KeyType::kAes, Unhex(kP4Rfc5649)};
  return *blob;
}

std::string P4CheckValue() {
  absl::StatusOr<std::string> kcv = ExpectedCheckValue(UnhexSecret(kP4Dek), KeyType::kAes);
  return kcv.ok() ? *kcv : "";
}

class CasesTest : public ::testing::Test {
 protected:
  void SetUp() override { HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-cases")); }

  absl::StatusOr<std::unique_ptr<KeyStore>> Open(bool through_fault_module) {
    return KeyStore::Create(OptionsFor(*token_, through_fault_module
                                                    ? FaultModule::Path()
                                                    : std::string(SoftHsmToken::kModulePath)));
  }

  std::unique_ptr<SoftHsmToken> token_;
  FaultModule faults_;
};

// P2: after CKR_DEVICE_REMOVED and then CKR_SESSION_HANDLE_INVALID kill
// every session, the pool re-initialises, logs in, finds the KEK again and
// every later DEK equals the KAT; callers see no failure.
TEST_F(CasesTest, P2StaleHandlesAfterHsmRestart) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, Open(true));
  // A decoy KEK created first, so a stale handle could point at it.
  HOSN_ASSERT_OK(store->GenerateKek("decoy", "0").status());
  HOSN_ASSERT_OK_AND_ASSIGN(
      KeyRef kek, store->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek)));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string first, store->DekCheckValue(kek, P4Blob()));
  EXPECT_EQ(Hex(first), Hex(P4CheckValue()));

  ASSERT_TRUE(
      faults_.Configure("fn=C_UnwrapKey,count=1,rv=CKR_DEVICE_REMOVED,kill=1;"
                        "fn=C_UnwrapKey,skip=5,count=1,rv=CKR_SESSION_HANDLE_INVALID,kill=1"));
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE(i);
    HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store->DekCheckValue(kek, P4Blob()));
    EXPECT_EQ(Hex(kcv), Hex(P4CheckValue()));
  }
  EXPECT_EQ(faults_.Fired(), 2);
  const PoolMetrics metrics = store->Metrics();
  EXPECT_EQ(metrics.recoveries, 2u);
  EXPECT_EQ(metrics.recovery_failures, 0u);
  const OpMetrics& unwraps = metrics.ops[static_cast<size_t>(OpKind::kUnwrap)];
  EXPECT_EQ(unwraps.ok, 21u);
  EXPECT_EQ(unwraps.failed, 0u);
  EXPECT_EQ(unwraps.retried, 2u);
}

// P3: two KEKs share a label: label alone is "ambiguous key: 2 matches";
// label plus CKA_ID gives the KAT DEK; a key pair with the same label is
// never counted because class and key type are pinned.
TEST_F(CasesTest, P3DuplicateLabels) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, Open(false));
  HOSN_ASSERT_OK(store->GenerateKek("kek-model-a", "first").status());
  HOSN_ASSERT_OK(
      store->ImportSecretKeyForTesting("kek-model-a", "second", KeyType::kAes, UnhexSecret(kP4Kek))
          .status());
  HOSN_ASSERT_OK(store->GenerateSigningKey("rsa-3072", "kek-model-a", "second").status());

  EXPECT_THAT(
      store->FindKey(KeyRef::Kek("kek-model-a")),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ambiguous key: 2 matches")));
  EXPECT_THAT(
      store->DekCheckValue(KeyRef::Kek("kek-model-a"), P4Blob()),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ambiguous key: 2 matches")));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv,
                            store->DekCheckValue(KeyRef::Kek("kek-model-a", "second"), P4Blob()));
  EXPECT_EQ(Hex(kcv), Hex(P4CheckValue()));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo rsa, store->FindKey({KeyClass::kPrivateKey, KeyType::kRsa,
                                                         "kek-model-a", std::nullopt}));
  EXPECT_EQ(rsa.id, "second");
}

// P4: only the RFC 5649 blob unwraps under "aes-kwp"; the RFC 3394 blob of
// the same DEK fails integrity and the callback never sees a key. The
// mechanism number is configuration: mapping "aes-kwp" to the PKCS#11 3.0
// number, which SoftHSM 2.6 does not know, fails as a capability error.
TEST_F(CasesTest, P4KwpMechanismNumberIsConfiguration) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, Open(false));
  HOSN_ASSERT_OK_AND_ASSIGN(
      KeyRef kek, store->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek)));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store->DekCheckValue(kek, P4Blob()));
  EXPECT_EQ(Hex(kcv), Hex(P4CheckValue()));

  bool called = false;
  const WrappedKey rfc3394{"aes-kwp", KeyType::kAes, Unhex(kP4Rfc3394)};
  EXPECT_THAT(store->WithUnwrappedDek(kek, rfc3394,
                                      [&](const UnwrappedDek&) {
                                        called = true;
                                        return absl::OkStatus();
                                      }),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
  EXPECT_FALSE(called);

  // Under the RFC 3394 name the RFC 3394 blob is the valid one.
  const WrappedKey as_kw{"aes-kw", KeyType::kAes, Unhex(kP4Rfc3394)};
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kw_kcv, store->DekCheckValue(kek, as_kw));
  EXPECT_EQ(Hex(kw_kcv), Hex(P4CheckValue()));
  store.reset();

  KeyStoreOptions options = OptionsFor(*token_);
  options.mechanism_overrides = {{"aes-kwp", 0x210B}};
  HOSN_ASSERT_OK_AND_ASSIGN(store, KeyStore::Create(options));
  EXPECT_THAT(store->DekCheckValue(kek, P4Blob()),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("CKR_MECHANISM_INVALID")));
  EXPECT_THAT(store->CheckCapability("aes-kwp"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("capability")));

  options.mechanism_overrides = {{"aes-kwp-typo", 0x210B}};
  EXPECT_THAT(KeyStore::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aes-kwp-typo")));
}

// P5: SoftHSM lists RSA-OAEP but refuses SHA-256 parameters; the capability
// check says so clearly and never falls back to SHA-1.
TEST_F(CasesTest, P5RsaOaepSha256IsACapabilityError) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, Open(false));
  EXPECT_THAT(store->CheckCapability("rsa-oaep-sha256"),
              StatusIs(absl::StatusCode::kUnimplemented,
                       ::testing::AllOf(HasSubstr("rsa-oaep-sha256"),
                                        HasSubstr("CKR_ARGUMENTS_BAD"), HasSubstr("no fallback"))));
  // Asking again gives the remembered answer.
  EXPECT_THAT(store->CheckCapability("rsa-oaep-sha256"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("CKR_ARGUMENTS_BAD")));
  HOSN_EXPECT_OK(store->CheckCapability("aes-kwp"));
  HOSN_EXPECT_OK(store->CheckCapability("ecdsa-p256-sha256"));
  HOSN_EXPECT_OK(store->CheckCapability("ed25519"));
}

// P6: attributes reported with CK_UNAVAILABLE_INFORMATION are absent: the
// key is refused as unusable, nothing is allocated from the length.
TEST_F(CasesTest, P6UnavailableAttributeLengths) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, Open(true));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store->GenerateKek("kek", "1"));
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey signer, store->GenerateSigningKey("ec-p256", "ec", "1"));

  ASSERT_TRUE(faults_.Configure("fn=C_GetAttributeValue,attr=0x100,count=-1"));  // CKA_KEY_TYPE
  EXPECT_THAT(store->FindKey(kek), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("key unusable: CKA_KEY_TYPE unavailable")));
  ASSERT_TRUE(faults_.Configure("fn=C_GetAttributeValue,attr=0x3,count=-1"));  // CKA_LABEL
  EXPECT_THAT(store->FindKey(kek), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("key unusable: CKA_LABEL unavailable")));
  ASSERT_TRUE(faults_.Configure("fn=C_GetAttributeValue,attr=0x181,count=-1"));  // CKA_EC_POINT
  EXPECT_THAT(store->ExportPublicKey(signer.private_key),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("key unusable: CKA_EC_POINT unavailable")));
  EXPECT_GT(faults_.Fired(), 0);

  // Once the module answers properly again, the same keys work.
  ASSERT_TRUE(faults_.Configure(""));
  HOSN_EXPECT_OK(store->FindKey(kek).status());
  HOSN_ASSERT_OK_AND_ASSIGN(std::string spki, store->ExportPublicKey(signer.private_key));
  EXPECT_EQ(spki, signer.public_key_der);
}

// P7: failed lookups, failed unwraps and signs that fail in C_SignUpdate
// leave no operation active: 100 good unwraps afterwards all succeed.
TEST_F(CasesTest, P7FailedOperationDoesNotPoisonSessions) {
  KeyStoreOptions options = OptionsFor(*token_, FaultModule::Path());
  options.pool_size = 4;
  HOSN_ASSERT_OK_AND_ASSIGN(auto store, KeyStore::Create(options));
  HOSN_ASSERT_OK_AND_ASSIGN(
      KeyRef kek, store->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek)));
  HOSN_ASSERT_OK_AND_ASSIGN(SigningKey rsa, store->GenerateSigningKey("rsa-3072", "rsa", "1"));

  for (int i = 0; i < 10; ++i) {
    EXPECT_THAT(store->FindKey(KeyRef::Kek("missing-label")),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing-label")));
  }
  const WrappedKey seven_bytes{"aes-kwp", KeyType::kAes, "\x01\x02\x03\x04\x05\x06\x07"};
  for (int i = 0; i < 10; ++i) {
    EXPECT_THAT(store->DekCheckValue(kek, seven_bytes),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
  }
  ASSERT_TRUE(faults_.Configure("fn=C_SignUpdate,count=10,rv=CKR_FUNCTION_FAILED"));
  for (int i = 0; i < 10; ++i) {
    EXPECT_THAT(
        store->Sign(rsa.private_key, "rsa-pkcs1-sha256", "manifest"),
        StatusIs(absl::StatusCode::kInternal, HasSubstr("C_SignUpdate: CKR_FUNCTION_FAILED")));
  }
  EXPECT_EQ(faults_.Fired(), 10);
  // Lookups that fail in the middle of a search end it too.
  ASSERT_TRUE(faults_.Configure("fn=C_FindObjects,count=4,rv=CKR_FUNCTION_FAILED"));
  for (int i = 0; i < 4; ++i) {
    EXPECT_THAT(store->FindKey(kek),
                StatusIs(absl::StatusCode::kInternal, HasSubstr("C_FindObjects")));
  }
  ASSERT_TRUE(faults_.Configure(""));

  for (int i = 0; i < 100; ++i) {
    SCOPED_TRACE(i);
    HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store->DekCheckValue(kek, P4Blob()));
    ASSERT_EQ(Hex(kcv), Hex(P4CheckValue()));
  }
  HOSN_EXPECT_OK(store->Sign(rsa.private_key, "rsa-pkcs1-sha256", "manifest").status());
  EXPECT_GE(store->Metrics().sessions_replaced, 14u);
}

}  // namespace
}  // namespace hosn::hsm
