#include "server/enroll/make_credential.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <tss2/tss2_mu.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/marshal.h"

namespace hosn::enroll {
namespace {

using tpm::Bytes;

struct EvpKdfDeleter {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct EvpKdfCtxDeleter {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};
struct EvpPkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct EvpCipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct BignumDeleter {
  void operator()(BIGNUM* p) const { BN_free(p); }
};

absl::Status OpenSslError(std::string_view what) {
  return absl::InternalError(absl::StrCat("openssl: ", std::string(what)));
}

void AppendU16(Bytes& out, size_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// Runs one OpenSSL KDF ("SSKDF" or "KBKDF") into a secret buffer.
absl::StatusOr<SecretBytes> DeriveKey(const char* kdf_name, OSSL_PARAM* params, size_t length) {
  std::unique_ptr<EVP_KDF, EvpKdfDeleter> kdf(EVP_KDF_fetch(nullptr, kdf_name, nullptr));
  if (kdf == nullptr) return OpenSslError(absl::StrCat("no kdf ", kdf_name));
  std::unique_ptr<EVP_KDF_CTX, EvpKdfCtxDeleter> ctx(EVP_KDF_CTX_new(kdf.get()));
  SecretBytes out(length);
  if (ctx == nullptr || EVP_KDF_derive(ctx.get(), RevealSecret(out).data(), length, params) != 1) {
    return OpenSslError(absl::StrCat(kdf_name, " derive"));
  }
  return out;
}

// TPM KDFa (SP 800-108 counter mode, HMAC): HMAC(key, i || label || 0x00 ||
// context || bits). OpenSSL's KBKDF writes the 0x00 separator and the length
// itself, so the label is passed without its terminator.
absl::StatusOr<SecretBytes> KdfA(const SecretBytes& key, std::string label, const Bytes& context,
                                 size_t length) {
  Bytes key_copy(RevealSecret(key).begin(), RevealSecret(key).end());
  Bytes context_copy = context;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, const_cast<char*>("counter"), 0),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, const_cast<char*>("HMAC"), 0),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key_copy.data(), key_copy.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, label.data(), label.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, context_copy.data(),
                                        context_copy.size()),
      OSSL_PARAM_construct_end()};
  auto out = DeriveKey("KBKDF", params, length);
  OPENSSL_cleanse(key_copy.data(), key_copy.size());
  return out;
}

// TPM KDFe (SP 800-56A concatenation KDF): H(counter || Z || label\0 ||
// partyU || partyV), which is OpenSSL's SSKDF with that fixed info.
absl::StatusOr<SecretBytes> KdfE(const SecretBytes& z, const Bytes& party_u, const Bytes& party_v,
                                 size_t length) {
  Bytes info = {'I', 'D', 'E', 'N', 'T', 'I', 'T', 'Y', 0};
  info.insert(info.end(), party_u.begin(), party_u.end());
  info.insert(info.end(), party_v.begin(), party_v.end());
  Bytes z_copy(RevealSecret(z).begin(), RevealSecret(z).end());
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z_copy.data(), z_copy.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  auto out = DeriveKey("SSKDF", params, length);
  OPENSSL_cleanse(z_copy.data(), z_copy.size());
  return out;
}

absl::StatusOr<Bytes> PublicCoordinate(EVP_PKEY* key, const char* param, size_t size) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) return OpenSslError("ec public coordinate");
  std::unique_ptr<BIGNUM, BignumDeleter> bn(raw);
  Bytes out(size);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(size)) != static_cast<int>(size)) {
    return OpenSslError("ec coordinate size");
  }
  return out;
}

}  // namespace

absl::StatusOr<Bytes> ObjectName(const TPMT_PUBLIC& public_area) {
  if (public_area.nameAlg != TPM2_ALG_SHA256 && public_area.nameAlg != TPM2_ALG_SHA384) {
    return absl::InvalidArgumentError("object name: unsupported nameAlg");
  }
  HOSN_ASSIGN_OR_RETURN(Bytes marshalled, tpm::MarshalPublic(public_area));
  HOSN_ASSIGN_OR_RETURN(Bytes digest, tpm::HashBytes(public_area.nameAlg, marshalled));
  Bytes name;
  AppendU16(name, public_area.nameAlg);
  name.insert(name.end(), digest.begin(), digest.end());
  return name;
}

absl::StatusOr<CredentialChallenge> MakeCredential(const TPMT_PUBLIC& ek, const TPMT_PUBLIC& ak,
                                                   const SecretBytes& credential) {
  // 1. Check what we were given.
  if (credential.empty() || credential.size() > 32) {
    return absl::InvalidArgumentError("credential must be 1 to 32 bytes");
  }
  const TPMA_OBJECT needed = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  if ((ek.objectAttributes & needed) != needed) {
    return absl::InvalidArgumentError("ek is not a restricted decryption key");
  }
  if (ek.type != TPM2_ALG_ECC) return absl::UnimplementedError("only ECC EKs are supported");
  if (ek.nameAlg != TPM2_ALG_SHA256) return absl::UnimplementedError("ek nameAlg must be sha256");
  const TPMT_SYM_DEF_OBJECT& sym = ek.parameters.eccDetail.symmetric;
  if (sym.algorithm != TPM2_ALG_AES || sym.mode.aes != TPM2_ALG_CFB ||
      (sym.keyBits.aes != 128 && sym.keyBits.aes != 256)) {
    return absl::UnimplementedError("ek symmetric definition must be AES-CFB");
  }
  const size_t coordinate_size = ek.unique.ecc.x.size;
  HOSN_ASSIGN_OR_RETURN(tpm::UniqueEvpPkey ek_key, tpm::PublicKeyFromTpm(ek));
  HOSN_ASSIGN_OR_RETURN(Bytes ak_name, ObjectName(ak));

  // 2. Ephemeral key on the EK's curve, and the ECDH shared x-coordinate Z.
  std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter> gen(
      EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key.get(), nullptr));
  EVP_PKEY* raw_ephemeral = nullptr;
  if (gen == nullptr || EVP_PKEY_keygen_init(gen.get()) != 1 ||
      EVP_PKEY_keygen(gen.get(), &raw_ephemeral) != 1) {
    return OpenSslError("ephemeral ec key");
  }
  tpm::UniqueEvpPkey ephemeral(raw_ephemeral);
  std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter> dh(
      EVP_PKEY_CTX_new_from_pkey(nullptr, ephemeral.get(), nullptr));
  size_t z_length = 0;
  if (dh == nullptr || EVP_PKEY_derive_init(dh.get()) != 1 ||
      EVP_PKEY_derive_set_peer(dh.get(), ek_key.get()) != 1 ||
      EVP_PKEY_derive(dh.get(), nullptr, &z_length) != 1) {
    return OpenSslError("ecdh");
  }
  SecretBytes z(z_length);
  if (EVP_PKEY_derive(dh.get(), RevealSecret(z).data(), &z_length) != 1) {
    return OpenSslError("ecdh");
  }
  HOSN_ASSIGN_OR_RETURN(
      Bytes ephemeral_x,
      PublicCoordinate(ephemeral.get(), OSSL_PKEY_PARAM_EC_PUB_X, coordinate_size));
  HOSN_ASSIGN_OR_RETURN(
      Bytes ephemeral_y,
      PublicCoordinate(ephemeral.get(), OSSL_PKEY_PARAM_EC_PUB_Y, coordinate_size));
  const Bytes ek_x(ek.unique.ecc.x.buffer, ek.unique.ecc.x.buffer + ek.unique.ecc.x.size);

  // 3. seed = KDFe(Z); symmetric and HMAC keys from the seed with KDFa.
  HOSN_ASSIGN_OR_RETURN(SecretBytes seed, KdfE(z, ephemeral_x, ek_x, 32));
  HOSN_ASSIGN_OR_RETURN(SecretBytes sym_key, KdfA(seed, "STORAGE", ak_name, sym.keyBits.aes / 8));
  HOSN_ASSIGN_OR_RETURN(SecretBytes hmac_key, KdfA(seed, "INTEGRITY", {}, 32));

  // 4. encIdentity = AES-CFB(sym_key, iv = 0, TPM2B_DIGEST(credential)).
  Bytes plain;
  AppendU16(plain, credential.size());
  plain.insert(plain.end(), RevealSecret(credential).begin(), RevealSecret(credential).end());
  Bytes enc_identity(plain.size());
  std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxDeleter> cipher(EVP_CIPHER_CTX_new());
  const uint8_t iv[16] = {};
  int out_length = 0;
  const EVP_CIPHER* mode = sym.keyBits.aes == 128 ? EVP_aes_128_cfb128() : EVP_aes_256_cfb128();
  const bool encrypted =
      cipher != nullptr &&
      EVP_EncryptInit_ex(cipher.get(), mode, nullptr, RevealSecret(sym_key).data(), iv) == 1 &&
      EVP_EncryptUpdate(cipher.get(), enc_identity.data(), &out_length, plain.data(),
                        static_cast<int>(plain.size())) == 1;
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!encrypted || static_cast<size_t>(out_length) != enc_identity.size()) {
    return OpenSslError("aes-cfb");
  }

  // 5. outerHMAC = HMAC(hmac_key, encIdentity || name(AK)).
  Bytes hmac_input = enc_identity;
  hmac_input.insert(hmac_input.end(), ak_name.begin(), ak_name.end());
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  if (HMAC(EVP_sha256(), RevealSecret(hmac_key).data(), static_cast<int>(hmac_key.size()),
           hmac_input.data(), hmac_input.size(), mac, &mac_length) == nullptr) {
    return OpenSslError("hmac");
  }

  // 6. Marshal: TPM2B_ID_OBJECT(TPM2B_DIGEST(hmac) || encIdentity) and
  // TPM2B_ENCRYPTED_SECRET(TPMS_ECC_POINT(ephemeral public key)).
  Bytes id_object;
  AppendU16(id_object, 2 + mac_length + enc_identity.size());
  AppendU16(id_object, mac_length);
  id_object.insert(id_object.end(), mac, mac + mac_length);
  id_object.insert(id_object.end(), enc_identity.begin(), enc_identity.end());

  Bytes point;
  AppendU16(point, ephemeral_x.size());
  point.insert(point.end(), ephemeral_x.begin(), ephemeral_x.end());
  AppendU16(point, ephemeral_y.size());
  point.insert(point.end(), ephemeral_y.begin(), ephemeral_y.end());
  Bytes secret;
  AppendU16(secret, point.size());
  secret.insert(secret.end(), point.begin(), point.end());

  return CredentialChallenge{std::move(id_object), std::move(secret)};
}

}  // namespace hosn::enroll
