#include "client/agent/release/dek_opener.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace hosn::agent {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

std::string PublicDer(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

UniquePkey ParsePublic(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return UniquePkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
}

// Plays the HSM's part with OpenSSL: ECDH with the release key, the KDF, and
// RFC 5649 wrapping of `dek`.
std::string HsmWrap(EVP_PKEY* release_key, const std::string& node_public_der,
                    const SecretBytes& dek, ReleaseKdf kdf, std::string_view info) {
  UniquePkey node_public = ParsePublic(node_public_der);
  auto key = DeriveReleaseWrappingKey(release_key, node_public.get(), kdf, info);
  EXPECT_TRUE(key.ok());
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  std::string out(dek.size() + 16, '\0');
  int length = 0;
  int final_length = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_wrap_pad(), nullptr,
                               RevealSecret(*key).data(), nullptr),
            1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
                              RevealSecret(dek).data(), static_cast<int>(dek.size())),
            1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + length,
                                &final_length),
            1);
  out.resize(static_cast<size_t>(length + final_length));
  return out;
}

SecretBytes RandomDek() {
  SecretBytes dek(32);
  EXPECT_EQ(RAND_bytes(RevealSecret(dek).data(), 32), 1);
  return dek;
}

class DekOpenerTest : public ::testing::TestWithParam<ReleaseKdf> {
 protected:
  UniquePkey release_key_{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
  const std::string info_ = std::string(32, '\x5a');
};

// The node opens exactly the DEK the releaser wrapped to its ephemeral key.
TEST_P(DekOpenerTest, RoundTrip) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto node, EphemeralKey::Generate());
  const SecretBytes dek = RandomDek();
  const std::string wrapped =
      HsmWrap(release_key_.get(), node->public_key_der(), dek, GetParam(), info_);
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes opened, node->OpenWrappedDek(PublicDer(release_key_.get()),
                                                                     wrapped, GetParam(), info_));
  EXPECT_TRUE(opened == dek);
}

// A blob wrapped to another node's key, a flipped bit, or the wrong releaser
// key all fail the integrity check and yield nothing.
TEST_P(DekOpenerTest, WrongKeyOrTamperFails) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto node, EphemeralKey::Generate());
  HOSN_ASSERT_OK_AND_ASSIGN(auto other, EphemeralKey::Generate());
  const SecretBytes dek = RandomDek();
  const std::string releaser = PublicDer(release_key_.get());
  const std::string for_other =
      HsmWrap(release_key_.get(), other->public_key_der(), dek, GetParam(), info_);
  EXPECT_THAT(node->OpenWrappedDek(releaser, for_other, GetParam(), info_),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));

  std::string tampered =
      HsmWrap(release_key_.get(), node->public_key_der(), dek, GetParam(), info_);
  tampered[5] ^= 0x01;
  EXPECT_THAT(node->OpenWrappedDek(releaser, tampered, GetParam(), info_),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));

  UniquePkey impostor(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  const std::string good =
      HsmWrap(release_key_.get(), node->public_key_der(), dek, GetParam(), info_);
  EXPECT_THAT(node->OpenWrappedDek(PublicDer(impostor.get()), good, GetParam(), info_),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
  EXPECT_THAT(node->OpenWrappedDek(releaser, good.substr(0, 12), GetParam(), info_),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
}

INSTANTIATE_TEST_SUITE_P(Kdfs, DekOpenerTest,
                         ::testing::Values(ReleaseKdf::kNull, ReleaseKdf::kX963Sha256));

// With the X9.63 KDF the shared info is bound: another qualifyingData gives
// another wrapping key.
TEST(DekOpener, X963BindsSharedInfo) {
  UniquePkey release_key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  HOSN_ASSERT_OK_AND_ASSIGN(auto node, EphemeralKey::Generate());
  const SecretBytes dek = RandomDek();
  const std::string wrapped =
      HsmWrap(release_key.get(), node->public_key_der(), dek, ReleaseKdf::kX963Sha256, "info-a");
  EXPECT_THAT(node->OpenWrappedDek(PublicDer(release_key.get()), wrapped, ReleaseKdf::kX963Sha256,
                                   "info-b"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));
}

// Only P-256 release keys and well-formed DER are accepted.
TEST(DekOpener, RejectsBadReleaserKey) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto node, EphemeralKey::Generate());
  UniquePkey p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  EXPECT_THAT(
      node->OpenWrappedDek(PublicDer(p384.get()), std::string(40, 'x'), ReleaseKdf::kNull, ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("P-256")));
  EXPECT_THAT(node->OpenWrappedDek("garbage", std::string(40, 'x'), ReleaseKdf::kNull, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  EXPECT_THAT(ReleaseKdfFromName("sha1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown release kdf")));
}

}  // namespace
}  // namespace hosn::agent
