#include "client/agent/release/dek_opener.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace hosn::agent {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct KdfDeleter {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct KdfCtxDeleter {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

bool IsP256(EVP_PKEY* key) {
  char group[32] = {};
  size_t length = 0;
  return EVP_PKEY_id(key) == EVP_PKEY_EC &&
         EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        &length) == 1 &&
         std::string_view(group, length) == "prime256v1";
}

}  // namespace

absl::StatusOr<ReleaseKdf> ReleaseKdfFromName(std::string_view name) {
  if (name == "null") return ReleaseKdf::kNull;
  if (name == "x963-sha256") return ReleaseKdf::kX963Sha256;
  return absl::InvalidArgumentError(absl::StrCat("unknown release kdf: ", std::string(name)));
}

absl::StatusOr<SecretBytes> DeriveReleaseWrappingKey(EVP_PKEY* own_private, EVP_PKEY* peer_public,
                                                     ReleaseKdf kdf, std::string_view shared_info) {
  if (peer_public == nullptr || !IsP256(peer_public)) {
    return absl::InvalidArgumentError("release public key is not a P-256 key");
  }
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_pkey(nullptr, own_private, nullptr));
  size_t z_length = 0;
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer_public) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &z_length) != 1 || z_length != 32) {
    return absl::InvalidArgumentError("ecdh with the release public key failed");
  }
  SecretBytes z(z_length);
  if (EVP_PKEY_derive(ctx.get(), RevealSecret(z).data(), &z_length) != 1) {
    return absl::InternalError("openssl: ecdh");
  }
  if (kdf == ReleaseKdf::kNull) return z;

  std::unique_ptr<EVP_KDF, KdfDeleter> x963(EVP_KDF_fetch(nullptr, "X963KDF", nullptr));
  std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter> kctx(x963 ? EVP_KDF_CTX_new(x963.get()) : nullptr);
  std::string info(shared_info);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, RevealSecret(z).data(), z.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes key(32);
  if (kctx == nullptr || EVP_KDF_derive(kctx.get(), RevealSecret(key).data(), 32, params) != 1) {
    return absl::InternalError("openssl: x963 kdf");
  }
  return key;
}

absl::StatusOr<std::unique_ptr<EphemeralKey>> EphemeralKey::Generate() {
  UniquePkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) return absl::InternalError("openssl: ephemeral key generation");
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key.get(), &der);
  if (length <= 0) return absl::InternalError("openssl: ephemeral public key encoding");
  std::string public_der(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return std::unique_ptr<EphemeralKey>(new EphemeralKey(key.release(), std::move(public_der)));
}

EphemeralKey::~EphemeralKey() { EVP_PKEY_free(key_); }

absl::StatusOr<SecretBytes> EphemeralKey::OpenWrappedDek(std::string_view releaser_public_key_der,
                                                         std::string_view wrapped_dek,
                                                         ReleaseKdf kdf,
                                                         std::string_view shared_info) const {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(releaser_public_key_der.data());
  UniquePkey peer(d2i_PUBKEY(nullptr, &p, static_cast<long>(releaser_public_key_der.size())));
  if (peer == nullptr ||
      p != reinterpret_cast<const unsigned char*>(releaser_public_key_der.data()) +
               releaser_public_key_der.size()) {
    return absl::InvalidArgumentError("malformed release public key");
  }
  HOSN_ASSIGN_OR_RETURN(SecretBytes wrapping_key,
                        DeriveReleaseWrappingKey(key_, peer.get(), kdf, shared_info));

  // RFC 5649 output is at least 16 bytes and a multiple of 8.
  if (wrapped_dek.size() < 16 || wrapped_dek.size() % 8 != 0 || wrapped_dek.size() > 4096) {
    return absl::DataLossError("wrapped dek failed its integrity check");
  }
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter> ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return absl::InternalError("openssl: cipher context");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  SecretBytes dek(wrapped_dek.size());
  int out_length = 0;
  int final_length = 0;
  const bool ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_wrap_pad(), nullptr,
                         RevealSecret(wrapping_key).data(), nullptr) == 1 &&
      EVP_DecryptUpdate(ctx.get(), RevealSecret(dek).data(), &out_length,
                        reinterpret_cast<const unsigned char*>(wrapped_dek.data()),
                        static_cast<int>(wrapped_dek.size())) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), RevealSecret(dek).data() + out_length, &final_length) == 1;
  if (!ok || out_length <= 0) {
    return absl::DataLossError("wrapped dek failed its integrity check");
  }
  // Copy out exactly the DEK; the larger buffer is wiped when it goes.
  return SecretBytes::CopyOf(
      RevealSecret(dek).first(static_cast<size_t>(out_length + final_length)));
}

}  // namespace hosn::agent
