#include "server/hsm/openssl_util.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <memory>

#include "common/base/status_macros.h"
#include "server/hsm/key_store.h"

namespace hosn::hsm {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;

// Strips the DER OCTET STRING around CKA_EC_POINT if present.
std::string UnwrapOctetString(std::string_view point, size_t bare_size_hint) {
  if (point.size() == bare_size_hint) return std::string(point);
  if (point.size() >= 2 && point[0] == 0x04) {
    size_t header = 2;
    size_t length = static_cast<unsigned char>(point[1]);
    if (length == 0x81 && point.size() >= 3) {
      length = static_cast<unsigned char>(point[2]);
      header = 3;
    }
    if (header + length == point.size()) return std::string(point.substr(header));
  }
  return std::string(point);
}

absl::StatusOr<std::string> ToSpki(EVP_PKEY* key) {
  const int length = i2d_PUBKEY(key, nullptr);
  if (length <= 0) return absl::InternalError("i2d_PUBKEY failed");
  std::string der(static_cast<size_t>(length), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key, &out) != length) return absl::InternalError("i2d_PUBKEY failed");
  return der;
}

absl::StatusOr<std::string> FromData(const char* type, OSSL_PARAM_BLD* builder) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(builder));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return absl::InvalidArgumentError("public key attributes do not form a valid key");
  }
  EvpPkeyPtr key(raw);
  return ToSpki(key.get());
}

}  // namespace

absl::StatusOr<std::string> EcSpki(std::string_view ec_params, std::string_view ec_point) {
  const char* group = nullptr;
  size_t point_size = 0;
  if (ec_params == kOidP256) {
    group = SN_X9_62_prime256v1;
    point_size = 65;
  } else if (ec_params == kOidP384) {
    group = SN_secp384r1;
    point_size = 97;
  } else {
    return absl::InvalidArgumentError("unsupported ec curve");
  }
  const std::string point = UnwrapOctetString(ec_point, point_size);
  ParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (builder == nullptr ||
      !OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size())) {
    return absl::InternalError("OSSL_PARAM_BLD failed");
  }
  return FromData("EC", builder.get());
}

namespace {

// DER of SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } up to the BIT
// STRING of a 65-byte uncompressed point: what OpenSSL, Go and Java write.
constexpr std::string_view kP256SpkiPrefix = std::string_view(
    "\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d"
    "\x03\x01\x07\x03\x42\x00",
    26);

// Whether `point` (uncompressed) is on P-256. EC_POINT_oct2point refuses
// points off the curve; P-256 has cofactor 1, so that is the whole check.
bool OnP256(std::string_view point) {
  static const EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  std::unique_ptr<EC_POINT, Deleter<EC_POINT, EC_POINT_free>> p(EC_POINT_new(group));
  return group != nullptr && p != nullptr &&
         EC_POINT_oct2point(group, p.get(), reinterpret_cast<const unsigned char*>(point.data()),
                            point.size(), nullptr) == 1;
}

}  // namespace

absl::StatusOr<std::string> P256PointFromSpki(std::string_view spki) {
  if (spki.empty() || spki.size() > 1024) return absl::InvalidArgumentError("malformed peer spki");
  // Fast path for the canonical encoding (the general decoder below costs
  // about 170 us per call with OpenSSL 3, as much as the HSM's own work).
  if (spki.size() == kP256SpkiPrefix.size() + 65 && spki.substr(0, 26) == kP256SpkiPrefix &&
      spki[26] == 0x04) {
    const std::string_view point = spki.substr(26);
    if (!OnP256(point)) return absl::InvalidArgumentError("peer key is not a P-256 key");
    return std::string(point);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  if (key == nullptr || p != reinterpret_cast<const unsigned char*>(spki.data()) + spki.size()) {
    return absl::InvalidArgumentError("malformed peer spki");
  }
  char group[32] = {};
  size_t group_length = 0;
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                     &group_length) != 1 ||
      std::string_view(group, group_length) != SN_X9_62_prime256v1) {
    return absl::InvalidArgumentError("peer key is not a P-256 key");
  }
  // Always the uncompressed form, whatever the SPKI used.
  if (EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                     OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1) {
    return absl::InternalError("openssl: point format");
  }
  std::string point(65, '\0');
  size_t point_length = 0;
  if (EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                      reinterpret_cast<unsigned char*>(point.data()), point.size(),
                                      &point_length) != 1 ||
      point_length != 65 || point[0] != 0x04) {
    return absl::InvalidArgumentError("peer key is not a P-256 key");
  }
  return point;
}

absl::StatusOr<std::string> Ed25519Spki(std::string_view ec_point) {
  const std::string point = UnwrapOctetString(ec_point, 32);
  if (point.size() != 32) return absl::InvalidArgumentError("bad ed25519 public key length");
  EvpPkeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(point.data()), 32));
  if (key == nullptr) return absl::InvalidArgumentError("bad ed25519 public key");
  return ToSpki(key.get());
}

absl::StatusOr<std::string> RsaSpki(std::string_view modulus, std::string_view exponent) {
  BnPtr n(BN_bin2bn(reinterpret_cast<const unsigned char*>(modulus.data()),
                    static_cast<int>(modulus.size()), nullptr));
  BnPtr e(BN_bin2bn(reinterpret_cast<const unsigned char*>(exponent.data()),
                    static_cast<int>(exponent.size()), nullptr));
  ParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (n == nullptr || e == nullptr || builder == nullptr ||
      !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get())) {
    return absl::InternalError("OSSL_PARAM_BLD failed");
  }
  return FromData("RSA", builder.get());
}

absl::StatusOr<std::string> ShaDigest(int bits, std::string_view data) {
  const EVP_MD* md = bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : nullptr;
  if (md == nullptr) return absl::InvalidArgumentError("digest must be sha-256 or sha-384");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, md, nullptr) != 1) {
    return absl::InternalError("digest failed");
  }
  return std::string(reinterpret_cast<char*>(digest), length);
}

absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return absl::InvalidArgumentError("ecdsa signature must be r||s of equal halves");
  }
  const size_t half = raw.size() / 2;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BnPtr r(BN_bin2bn(bytes, static_cast<int>(half), nullptr));
  BnPtr s(BN_bin2bn(bytes + half, static_cast<int>(half), nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || sig == nullptr) return absl::InternalError("out of memory");
  if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return absl::InternalError("ECDSA_SIG_set0 failed");
  }
  r.release();  // Owned by sig now.
  s.release();
  const int length = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (length <= 0) return absl::InternalError("i2d_ECDSA_SIG failed");
  std::string der(static_cast<size_t>(length), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_ECDSA_SIG(sig.get(), &out);
  return der;
}

absl::StatusOr<std::string> ExpectedCheckValue(const SecretBytes& key, KeyType key_type) {
  std::span<const uint8_t> bytes = RevealSecret(key);
  if (key_type == KeyType::kGenericSecret) {
    // SHA-256 of the key bytes, what C_DigestKey computes inside the HSM.
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
      return absl::InternalError("sha-256 failed");
    }
    return std::string(reinterpret_cast<char*>(digest), length);
  }
  if (key_type != KeyType::kAes) {
    return absl::InvalidArgumentError("check values exist for aes and generic secret keys only");
  }
  const EVP_CIPHER* cipher = nullptr;
  switch (bytes.size()) {
    case 16:
      cipher = EVP_aes_128_ecb();
      break;
    case 24:
      cipher = EVP_aes_192_ecb();
      break;
    case 32:
      cipher = EVP_aes_256_ecb();
      break;
    default:
      return absl::InvalidArgumentError("aes key must be 16, 24 or 32 bytes");
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  unsigned char zero[16] = {};
  unsigned char out[32];
  int length = 0;
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, bytes.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out, &length, zero, sizeof(zero)) != 1 || length != 16) {
    return absl::InternalError("aes-ecb failed");
  }
  return std::string(reinterpret_cast<char*>(out), 16);
}

}  // namespace hosn::hsm
