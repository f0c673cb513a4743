// The release operation (scheme ecdh-p256-kwp, docs/release-wrap.md) and the
// challenge MAC, each against a fresh SoftHSM token. The node's side is the
// real client code (hosn::agent::EphemeralKey); known answers are the P4 DEK
// and OpenSSL's HMAC.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include <iostream>
#include <memory>
#include <string>

#include "client/agent/release/dek_opener.h"
#include "common/base/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::agent::EphemeralKey;
using ::hosn::agent::ReleaseKdf;
using ::hosn::hsm::testing::FaultModule;
using ::hosn::hsm::testing::Hex;
using ::hosn::hsm::testing::kP4Dek;
using ::hosn::hsm::testing::kP4Kek;
using ::hosn::hsm::testing::kP4Rfc5649;
using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::RawTokenSession;
using ::hosn::hsm::testing::Unhex;
using ::hosn::hsm::testing::UnhexSecret;
using ::hosn::testing::SoftHsmToken;
using ::hosn::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Reveal(const SecretBytes& secret) {
  std::span<const uint8_t> bytes = RevealSecret(secret);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// DER SPKI of a fresh OpenSSL key of `type` ("EC" with a curve, "ED25519",
// "RSA").
std::string ForeignSpki(const char* type, const char* parameter) {
  EVP_PKEY* key = parameter == nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, type)
                  : std::string(type) == "RSA"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, static_cast<size_t>(2048))
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, type, parameter);
  unsigned char* der = nullptr;
  const int length = key == nullptr ? -1 : i2d_PUBKEY(key, &der);
  EVP_PKEY_free(key);
  if (length <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

// A token with the P4 KEK and a release key, a node key, and the KeyStore
// opened through `module_path`. No session copies of keys: then every
// session object on the token is one a release made, and a count of zero
// means all were destroyed.
class ReleaseTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(SoftHsmToken::kModulePath); }

  void Open(const std::string& module_path) {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-release"));
    KeyStoreOptions options = OptionsFor(*token_, module_path);
    options.copy_keys_to_session_objects = false;
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(options));
    HOSN_ASSERT_OK_AND_ASSIGN(
        kek_, store_->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek)));
    HOSN_ASSERT_OK_AND_ASSIGN(release_key_, store_->GenerateReleaseKey("hosn-release", "r1"));
    HOSN_ASSERT_OK_AND_ASSIGN(release_spki_, store_->ExportPublicKey(release_key_));
    HOSN_ASSERT_OK_AND_ASSIGN(node_, EphemeralKey::Generate());
    raw_ = std::make_unique<RawTokenSession>(*token_);
  }

  absl::StatusOr<std::string> Release(std::string_view peer_spki, std::string_view kdf = "null",
                                      std::string_view shared_info = "") {
    return store_->WrapDekToPeer(kek_, blob_, release_key_, peer_spki, kdf, shared_info);
  }

  // A release to `node_` works and opens to the P4 DEK on the node.
  void ExpectReleaseWorks() {
    HOSN_ASSERT_OK_AND_ASSIGN(std::string wrapped, Release(node_->public_key_der()));
    HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes dek,
                              node_->OpenWrappedDek(release_spki_, wrapped, ReleaseKdf::kNull, ""));
    EXPECT_EQ(Hex(Reveal(dek)), kP4Dek);
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<KeyStore> store_;
  std::unique_ptr<RawTokenSession> raw_;
  KeyRef kek_;
  KeyRef release_key_;
  std::string release_spki_;
  std::unique_ptr<EphemeralKey> node_;
  const WrappedKey blob_{"aes-kwp", KeyType::kAes, Unhex(kP4Rfc5649)};
};

// The node opens what the HSM released, and gets the P4 DEK; the HSM never
// handed the daemon anything it could open.
TEST_F(ReleaseTest, RoundTripGivesTheKnownDek) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::string wrapped, Release(node_->public_key_der()));
  EXPECT_EQ(wrapped.size(), 40u);  // RFC 5649 of 32 bytes
  EXPECT_EQ(wrapped.find(Unhex(kP4Dek)), std::string::npos);
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes dek,
                            node_->OpenWrappedDek(release_spki_, wrapped, ReleaseKdf::kNull, ""));
  EXPECT_EQ(Hex(Reveal(dek)), kP4Dek);
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
  const PoolMetrics metrics = store_->Metrics();
  const OpMetrics& wraps = metrics.ops[static_cast<size_t>(OpKind::kWrap)];
  EXPECT_EQ(wraps.ok, 1u);
  EXPECT_EQ(wraps.failed, 0u);
}

// The release key is derive-only, sensitive and not extractable; its public
// half exports as a P-256 SPKI the node accepts.
TEST_F(ReleaseTest, ReleaseKeyIsDeriveOnly) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo info, store_->FindKey(release_key_));
  EXPECT_TRUE(info.sensitive);
  EXPECT_FALSE(info.extractable);
  EXPECT_TRUE(info.token);
  EXPECT_FALSE(store_->Sign(release_key_, "ecdsa-p256-sha256", "message").ok());
  EXPECT_THAT(store_->GenerateReleaseKey("hosn-release", "r1"),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  const auto* p = reinterpret_cast<const unsigned char*>(release_spki_.data());
  EVP_PKEY* key = d2i_PUBKEY(nullptr, &p, static_cast<long>(release_spki_.size()));
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 256);
  EVP_PKEY_free(key);
}

// A DEK released to one node does not open on another: RFC 5649's check
// fails on the node, closed.
TEST_F(ReleaseTest, WrongPeerKeyFailsTheNodesIntegrityCheck) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<EphemeralKey> other, EphemeralKey::Generate());
  HOSN_ASSERT_OK_AND_ASSIGN(std::string wrapped, Release(other->public_key_der()));
  EXPECT_THAT(node_->OpenWrappedDek(release_spki_, wrapped, ReleaseKdf::kNull, ""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
  // Nor with another releaser's public key.
  HOSN_ASSERT_OK_AND_ASSIGN(std::string to_node, Release(node_->public_key_der()));
  EXPECT_THAT(node_->OpenWrappedDek(other->public_key_der(), to_node, ReleaseKdf::kNull, ""),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

// Anything but one DER P-256 SPKI is refused before the HSM does any work.
TEST_F(ReleaseTest, MalformedOrForeignSpkiRefused) {
  const std::string good = node_->public_key_der();
  const std::string p384 = ForeignSpki("EC", "P-384");
  const std::string ed25519 = ForeignSpki("ED25519", nullptr);
  const std::string rsa = ForeignSpki("RSA", "2048");
  ASSERT_FALSE(p384.empty());
  ASSERT_FALSE(ed25519.empty());
  ASSERT_FALSE(rsa.empty());
  std::string not_on_curve = good;
  not_on_curve[not_on_curve.size() - 1] ^= 0x01;
  for (const std::string& spki :
       {std::string(), std::string("garbage"), good.substr(0, good.size() - 1), good + '\0',
        good.substr(26), p384, ed25519, rsa, not_on_curve}) {
    SCOPED_TRACE(Hex(spki));
    EXPECT_THAT(Release(spki), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  }
  EXPECT_THAT(Release(good, "sha1-kdf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kdf")));
  const PoolMetrics metrics = store_->Metrics();
  const OpMetrics& wraps = metrics.ops[static_cast<size_t>(OpKind::kWrap)];
  EXPECT_EQ(wraps.ok + wraps.failed, 0u);  // never reached the pool
}

// An SPKI with the point in compressed form is a valid P-256 key too: it
// takes the general decoder instead of the fast path, and the node still
// opens the DEK.
TEST_F(ReleaseTest, CompressedPointSpkiAccepted) {
  const std::string& der = node_->public_key_der();
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* key = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  ASSERT_NE(key, nullptr);
  ASSERT_EQ(EVP_PKEY_set_utf8_string_param(key, "point-format", "compressed"), 1);
  unsigned char* out = nullptr;
  const int length = i2d_PUBKEY(key, &out);
  EVP_PKEY_free(key);
  ASSERT_GT(length, 0);
  const std::string compressed(reinterpret_cast<char*>(out), static_cast<size_t>(length));
  OPENSSL_free(out);
  ASSERT_LT(compressed.size(), der.size());
  HOSN_ASSERT_OK_AND_ASSIGN(std::string wrapped, Release(compressed));
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes dek,
                            node_->OpenWrappedDek(release_spki_, wrapped, ReleaseKdf::kNull, ""));
  EXPECT_EQ(Hex(Reveal(dek)), kP4Dek);
}

// SoftHSM 2.6 refuses CKD_SHA256_KDF: the error names it. A module that
// accepts it must give what the node derives with the X9.63 KDF.
TEST_F(ReleaseTest, X963KdfWorksOrIsNamedAsMissing) {
  const std::string info = "qualifying-data";
  absl::StatusOr<std::string> wrapped = Release(node_->public_key_der(), "x963-sha256", info);
  if (wrapped.ok()) {
    HOSN_ASSERT_OK_AND_ASSIGN(
        SecretBytes dek,
        node_->OpenWrappedDek(release_spki_, *wrapped, ReleaseKdf::kX963Sha256, info));
    EXPECT_EQ(Hex(Reveal(dek)), kP4Dek);
  } else {
    std::cout << "x963-sha256 on this module: " << wrapped.status() << "\n";
    EXPECT_THAT(wrapped, StatusIs(absl::StatusCode::kUnimplemented,
                                  AllOf(HasSubstr("capability"), HasSubstr("CKD_SHA256_KDF"))));
  }
  // Either way nothing is left behind: the DEK unwrapped before the derive
  // was destroyed.
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
}

// After every failure that happens inside the HSM operation, no session
// object is left, and the session was not simply closed (which would hide
// a leak): it went back to the pool.
TEST_F(ReleaseTest, SessionObjectsGoneAfterEveryFailure) {
  const std::string peer = node_->public_key_der();
  WrappedKey bad_blob = blob_;
  bad_blob.wrapped[5] ^= 0x40;
  EXPECT_THAT(store_->WrapDekToPeer(kek_, bad_blob, release_key_, peer, "null", ""),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
  // Unwrap succeeds, then the release key does not resolve.
  EXPECT_THAT(store_->WrapDekToPeer(kek_, blob_, KeyRef::ReleaseKey("missing"), peer, "null", ""),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
  // Unwrap succeeds, then the "release key" is the KEK.
  EXPECT_THAT(store_->WrapDekToPeer(kek_, blob_, kek_, peer, "null", ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
  // Unwrap succeeds, the derive is refused (SoftHSM) or works.
  (void)Release(peer, "x963-sha256", "info");
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
  HOSN_ASSERT_OK(Release(peer).status());
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.sessions_replaced, 0u);
  const OpMetrics& wraps = metrics.ops[static_cast<size_t>(OpKind::kWrap)];
  EXPECT_EQ(wraps.ok + wraps.failed, 5u);
  EXPECT_GE(wraps.failed, 3u);
}

// A DEK generated in the HSM goes to a node through UnwrappedDek::WrapToPeer;
// the node's copy has the HSM's check value.
TEST_F(ReleaseTest, FreshDekWrapsToPeer) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("model-kek", "m1"));
  HOSN_ASSERT_OK_AND_ASSIGN(WrappedKey fresh, store_->GenerateWrappedDek(kek));
  std::string wrapped;
  HOSN_ASSERT_OK(store_->WithUnwrappedDek(kek, fresh, [&](const UnwrappedDek& dek) {
    HOSN_ASSIGN_OR_RETURN(wrapped,
                          dek.WrapToPeer(release_key_, node_->public_key_der(), "null", ""));
    return absl::OkStatus();
  }));
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes opened,
                            node_->OpenWrappedDek(release_spki_, wrapped, ReleaseKdf::kNull, ""));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string expected, ExpectedCheckValue(opened, KeyType::kAes));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string in_hsm, store_->DekCheckValue(kek, fresh));
  EXPECT_EQ(Hex(in_hsm), Hex(expected));
  EXPECT_THAT(
      store_->WithUnwrappedDek(kek, fresh,
                               [&](const UnwrappedDek& dek) {
                                 return dek.WrapToPeer(release_key_, "junk", "null", "").status();
                               }),
      StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
}

// Faults injected mid-release by the wrapping PKCS#11 module: a failing
// C_DeriveKey or C_WrapKey still destroys every key the release made (the
// module counts C_DestroyObject, not the session closing), and an HSM restart
// in the middle is recovered and retried.
class ReleaseFaultTest : public ReleaseTest {
 protected:
  void SetUp() override { Open(FaultModule::Path()); }
  absl::StatusOr<std::string> Release() { return ReleaseTest::Release(node_->public_key_der()); }

  FaultModule faults_;
};

TEST_F(ReleaseFaultTest, FailingWrapKeyStillDestroysBothKeys) {
  ASSERT_TRUE(faults_.Configure("fn=C_WrapKey,count=1,rv=CKR_GENERAL_ERROR"));
  EXPECT_THAT(Release(), StatusIs(absl::StatusCode::kInternal, HasSubstr("C_WrapKey")));
  EXPECT_EQ(faults_.Fired(), 1);
  EXPECT_EQ(faults_.LiveKeys(), 0);  // the DEK and the derived key
  EXPECT_EQ(store_->Metrics().sessions_replaced, 1u);
  ExpectReleaseWorks();
  EXPECT_EQ(faults_.LiveKeys(), 0);
}

TEST_F(ReleaseFaultTest, FailingDeriveKeyStillDestroysTheDek) {
  ASSERT_TRUE(faults_.Configure("fn=C_DeriveKey,count=1,rv=CKR_GENERAL_ERROR"));
  EXPECT_THAT(Release(), StatusIs(absl::StatusCode::kInternal, HasSubstr("C_DeriveKey")));
  EXPECT_EQ(faults_.Fired(), 1);
  EXPECT_EQ(faults_.LiveKeys(), 0);
  ExpectReleaseWorks();
  EXPECT_EQ(faults_.LiveKeys(), 0);
}

TEST_F(ReleaseFaultTest, FailingWrapToPeerInsideWithUnwrappedDek) {
  ASSERT_TRUE(faults_.Configure("fn=C_WrapKey,count=1,rv=CKR_FUNCTION_FAILED"));
  EXPECT_THAT(
      store_->WithUnwrappedDek(
          kek_, blob_,
          [&](const UnwrappedDek& dek) {
            return dek.WrapToPeer(release_key_, node_->public_key_der(), "null", "").status();
          }),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("C_WrapKey")));
  EXPECT_EQ(faults_.Fired(), 1);
  EXPECT_EQ(faults_.LiveKeys(), 0);
}

// The HSM restarts between the unwrap and the derive: the pool recovers, the
// release runs again on a fresh session and the node gets the P4 DEK; the
// first attempt's DEK died with its session.
TEST_F(ReleaseFaultTest, HsmRestartMidReleaseIsRetried) {
  ASSERT_TRUE(faults_.Configure("fn=C_DeriveKey,count=1,rv=CKR_DEVICE_REMOVED,kill=1"));
  ExpectReleaseWorks();
  EXPECT_EQ(faults_.Fired(), 1);
  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.recoveries, 1u);
  const OpMetrics& wraps = metrics.ops[static_cast<size_t>(OpKind::kWrap)];
  EXPECT_EQ(wraps.ok, 1u);
  EXPECT_EQ(wraps.retried, 1u);
  raw_ = std::make_unique<RawTokenSession>(*token_);  // the old one died with the restart
  EXPECT_EQ(raw_->CountSessionObjects(), 0u);
}

class MacTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-mac"));
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(OptionsFor(*token_)));
  }
  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<KeyStore> store_;
};

std::string OpenSslHmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<char*>(out), length);
}

// HMAC-SHA256 in the HSM equals OpenSSL's over the same imported key, for
// empty, short and multi-block data; VerifyMac accepts it.
TEST_F(MacTest, KnownAnswerAgainstOpenSsl) {
  const std::string key_hex = "0f1e2d3c4b5a69788796a5b4c3d2e1f000112233445566778899aabbccddeeff";
  HOSN_ASSERT_OK_AND_ASSIGN(
      KeyRef key,
      store_->ImportSecretKeyForTesting("mac", "1", KeyType::kGenericSecret, UnhexSecret(key_hex)));
  for (const std::string& data :
       {std::string(), std::string("nonce:0123456789abcdef"), std::string(1000, 'x')}) {
    SCOPED_TRACE(data.size());
    HOSN_ASSERT_OK_AND_ASSIGN(std::string mac, store_->Mac(key, data));
    EXPECT_EQ(Hex(mac), Hex(OpenSslHmac(Unhex(key_hex), data)));
    HOSN_EXPECT_OK(store_->VerifyMac(key, data, mac));
  }
  const PoolMetrics metrics = store_->Metrics();
  const OpMetrics& signs = metrics.ops[static_cast<size_t>(OpKind::kSign)];
  EXPECT_EQ(signs.ok, 6u);
}

// Any change to the MAC or the data is "mac mismatch", and nothing more.
TEST_F(MacTest, VerifyMacMismatch) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef key, store_->GenerateMacKey("hosn-challenge-mac", "c1"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string mac, store_->Mac(key, "challenge"));
  ASSERT_EQ(mac.size(), 32u);
  HOSN_EXPECT_OK(store_->VerifyMac(key, "challenge", mac));
  std::string flipped = mac;
  flipped[31] ^= 0x01;
  for (const auto& [data, candidate] :
       std::vector<std::pair<std::string, std::string>>{{"challenge", flipped},
                                                        {"challengE", mac},
                                                        {"challenge", mac.substr(0, 31)},
                                                        {"challenge", mac + "x"},
                                                        {"challenge", ""}}) {
    absl::Status status = store_->VerifyMac(key, data, candidate);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
    EXPECT_EQ(status.message(), "mac mismatch");
  }
  // The session that saw a mismatch is still good.
  HOSN_EXPECT_OK(store_->VerifyMac(key, "challenge", mac));
}

// The generated MAC key is sensitive, not extractable, unique by label and
// id, and only usable as a MAC key.
TEST_F(MacTest, GeneratedMacKeyAttributes) {
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef key, store_->GenerateMacKey("hosn-challenge-mac", "c1"));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyInfo info, store_->FindKey(key));
  EXPECT_TRUE(info.sensitive);
  EXPECT_FALSE(info.extractable);
  EXPECT_EQ(info.key_type, KeyType::kGenericSecret);
  EXPECT_THAT(store_->GenerateMacKey("hosn-challenge-mac", "c1"),
              StatusIs(absl::StatusCode::kAlreadyExists, ::testing::_));
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef kek, store_->GenerateKek("kek", "k"));
  EXPECT_THAT(store_->Mac(kek, "x"), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  // Two different keys give different MACs.
  HOSN_ASSERT_OK_AND_ASSIGN(KeyRef other, store_->GenerateMacKey("other-mac", "c2"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string a, store_->Mac(key, "x"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string b, store_->Mac(other, "x"));
  EXPECT_NE(a, b);
  EXPECT_THAT(store_->VerifyMac(other, "x", a),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
}

}  // namespace
}  // namespace hosn::hsm
