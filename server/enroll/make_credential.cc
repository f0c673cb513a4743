#include "server/enroll/make_credential.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

#include <cstring>
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

// The seed both sides derive the credential keys from, and what the TPM needs
// to recover it: a marshalled TPM2B_ENCRYPTED_SECRET.
struct SharedSeed {
  SecretBytes seed;
  Bytes encrypted_secret;
};

absl::StatusOr<Bytes> MarshalEncryptedSecret(const TPM2B_ENCRYPTED_SECRET& secret) {
  Bytes out(sizeof(TPM2B_ENCRYPTED_SECRET));
  size_t offset = 0;
  if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&secret, out.data(), out.size(), &offset) !=
      TSS2_RC_SUCCESS) {
    return absl::InternalError("cannot marshal TPM2B_ENCRYPTED_SECRET");
  }
  out.resize(offset);
  return out;
}

// ECC EK: ECDH of a fresh key on the EK's curve with the EK; seed =
// KDFe(Z, "IDENTITY", ephemeral x, EK x); the secret is the ephemeral point.
absl::StatusOr<SharedSeed> EccSeed(const TPMT_PUBLIC& ek, EVP_PKEY* ek_key, size_t seed_size) {
  std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter> gen(
      EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key, nullptr));
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
      EVP_PKEY_derive_set_peer(dh.get(), ek_key) != 1 ||
      EVP_PKEY_derive(dh.get(), nullptr, &z_length) != 1) {
    return OpenSslError("ecdh");
  }
  SecretBytes z(z_length);
  if (EVP_PKEY_derive(dh.get(), RevealSecret(z).data(), &z_length) != 1) {
    return OpenSslError("ecdh");
  }
  const size_t coordinate_size = ek.unique.ecc.x.size;
  HOSN_ASSIGN_OR_RETURN(
      Bytes ephemeral_x,
      PublicCoordinate(ephemeral.get(), OSSL_PKEY_PARAM_EC_PUB_X, coordinate_size));
  HOSN_ASSIGN_OR_RETURN(
      Bytes ephemeral_y,
      PublicCoordinate(ephemeral.get(), OSSL_PKEY_PARAM_EC_PUB_Y, coordinate_size));
  const Bytes ek_x(ek.unique.ecc.x.buffer, ek.unique.ecc.x.buffer + ek.unique.ecc.x.size);
  HOSN_ASSIGN_OR_RETURN(SecretBytes seed, KdfE(z, ephemeral_x, ek_x, seed_size));

  TPMS_ECC_POINT point{};
  point.x.size = static_cast<UINT16>(coordinate_size);
  std::memcpy(point.x.buffer, ephemeral_x.data(), coordinate_size);
  point.y.size = static_cast<UINT16>(coordinate_size);
  std::memcpy(point.y.buffer, ephemeral_y.data(), coordinate_size);
  TPM2B_ENCRYPTED_SECRET secret{};
  size_t offset = 0;
  if (Tss2_MU_TPMS_ECC_POINT_Marshal(&point, secret.secret, sizeof(secret.secret), &offset) !=
      TSS2_RC_SUCCESS) {
    return absl::InternalError("cannot marshal TPMS_ECC_POINT");
  }
  secret.size = static_cast<UINT16>(offset);
  HOSN_ASSIGN_OR_RETURN(Bytes encrypted_secret, MarshalEncryptedSecret(secret));
  return SharedSeed{std::move(seed), std::move(encrypted_secret)};
}

// RSA EK: a random seed, RSA-OAEP-encrypted to the EK with the nameAlg
// (SHA-256) as OAEP and MGF1 hash and the label "IDENTITY" with its NUL
// (TPM 2.0 Part 1, "Secret Sharing", RSA-OAEP; Part 3, ActivateCredential).
absl::StatusOr<SharedSeed> RsaSeed(EVP_PKEY* ek_key, size_t seed_size) {
  SecretBytes seed(seed_size);
  if (RAND_bytes(RevealSecret(seed).data(), static_cast<int>(seed_size)) != 1) {
    return OpenSslError("random seed");
  }
  std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key, nullptr));
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
    return OpenSslError("rsa-oaep setup");
  }
  // set0 takes ownership of the label on success only.
  static constexpr char kLabel[] = "IDENTITY";  // sizeof includes the NUL
  void* label = OPENSSL_memdup(kLabel, sizeof(kLabel));
  if (label == nullptr) return OpenSslError("rsa-oaep label");
  if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof(kLabel)) != 1) {
    OPENSSL_free(label);
    return OpenSslError("rsa-oaep label");
  }
  TPM2B_ENCRYPTED_SECRET secret{};
  size_t length = sizeof(secret.secret);
  if (EVP_PKEY_encrypt(ctx.get(), secret.secret, &length, RevealSecret(seed).data(), seed.size()) !=
      1) {
    return OpenSslError("rsa-oaep encrypt");
  }
  secret.size = static_cast<UINT16>(length);
  HOSN_ASSIGN_OR_RETURN(Bytes encrypted_secret, MarshalEncryptedSecret(secret));
  return SharedSeed{std::move(seed), std::move(encrypted_secret)};
}

// The credential blob, the same for every EK type: symmetric and HMAC keys
// from the seed with KDFa, encIdentity = AES-CFB(TPM2B_DIGEST(credential)),
// outerHMAC = HMAC(encIdentity || name(AK)), marshalled as TPM2B_ID_OBJECT.
absl::StatusOr<Bytes> SealCredential(const SecretBytes& seed, uint16_t aes_bits,
                                     const Bytes& ak_name, const SecretBytes& credential) {
  HOSN_ASSIGN_OR_RETURN(SecretBytes sym_key, KdfA(seed, "STORAGE", ak_name, aes_bits / 8));
  HOSN_ASSIGN_OR_RETURN(SecretBytes hmac_key, KdfA(seed, "INTEGRITY", {}, SHA256_DIGEST_LENGTH));

  // encIdentity = AES-CFB(sym_key, iv = 0, TPM2B_DIGEST(credential)).
  TPM2B_DIGEST identity{};
  identity.size = static_cast<UINT16>(credential.size());
  std::memcpy(identity.buffer, RevealSecret(credential).data(), credential.size());
  Bytes plain(sizeof(TPM2B_DIGEST));
  size_t plain_length = 0;
  const bool marshalled = Tss2_MU_TPM2B_DIGEST_Marshal(&identity, plain.data(), plain.size(),
                                                       &plain_length) == TSS2_RC_SUCCESS;
  OPENSSL_cleanse(identity.buffer, sizeof(identity.buffer));
  if (!marshalled) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return absl::InternalError("cannot marshal credential");
  }
  Bytes enc_identity(plain_length);
  std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxDeleter> cipher(EVP_CIPHER_CTX_new());
  const uint8_t iv[16] = {};
  int out_length = 0;
  const EVP_CIPHER* mode = aes_bits == 128 ? EVP_aes_128_cfb128() : EVP_aes_256_cfb128();
  const bool encrypted =
      cipher != nullptr &&
      EVP_EncryptInit_ex(cipher.get(), mode, nullptr, RevealSecret(sym_key).data(), iv) == 1 &&
      EVP_EncryptUpdate(cipher.get(), enc_identity.data(), &out_length, plain.data(),
                        static_cast<int>(plain_length)) == 1;
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!encrypted || static_cast<size_t>(out_length) != enc_identity.size()) {
    return OpenSslError("aes-cfb");
  }

  // outerHMAC = HMAC(hmac_key, encIdentity || name(AK)).
  Bytes hmac_input = enc_identity;
  hmac_input.insert(hmac_input.end(), ak_name.begin(), ak_name.end());
  TPM2B_DIGEST mac{};
  unsigned int mac_length = 0;
  if (HMAC(EVP_sha256(), RevealSecret(hmac_key).data(), static_cast<int>(hmac_key.size()),
           hmac_input.data(), hmac_input.size(), mac.buffer, &mac_length) == nullptr) {
    return OpenSslError("hmac");
  }
  mac.size = static_cast<UINT16>(mac_length);

  // TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) || encIdentity).
  TPM2B_ID_OBJECT id_object{};
  size_t offset = 0;
  if (Tss2_MU_TPM2B_DIGEST_Marshal(&mac, id_object.credential, sizeof(id_object.credential),
                                   &offset) != TSS2_RC_SUCCESS ||
      offset + enc_identity.size() > sizeof(id_object.credential)) {
    return absl::InternalError("cannot marshal TPM2B_ID_OBJECT");
  }
  std::memcpy(id_object.credential + offset, enc_identity.data(), enc_identity.size());
  id_object.size = static_cast<UINT16>(offset + enc_identity.size());
  Bytes out(sizeof(TPM2B_ID_OBJECT));
  offset = 0;
  if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&id_object, out.data(), out.size(), &offset) !=
      TSS2_RC_SUCCESS) {
    return absl::InternalError("cannot marshal TPM2B_ID_OBJECT");
  }
  out.resize(offset);
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
  if (ek.type != TPM2_ALG_ECC && ek.type != TPM2_ALG_RSA) {
    return absl::UnimplementedError("ek type must be rsa or ecc");
  }
  if (ek.nameAlg != TPM2_ALG_SHA256) return absl::UnimplementedError("ek nameAlg must be sha256");
  const TPMT_SYM_DEF_OBJECT& sym = ek.type == TPM2_ALG_RSA ? ek.parameters.rsaDetail.symmetric
                                                           : ek.parameters.eccDetail.symmetric;
  if (sym.algorithm != TPM2_ALG_AES || sym.mode.aes != TPM2_ALG_CFB ||
      (sym.keyBits.aes != 128 && sym.keyBits.aes != 256)) {
    return absl::UnimplementedError("ek symmetric definition must be AES-CFB");
  }
  if (ek.type == TPM2_ALG_RSA && ek.parameters.rsaDetail.keyBits != 2048 &&
      ek.parameters.rsaDetail.keyBits != 3072 && ek.parameters.rsaDetail.keyBits != 4096) {
    return absl::UnimplementedError("rsa ek must have 2048, 3072 or 4096 bits");
  }
  HOSN_ASSIGN_OR_RETURN(tpm::UniqueEvpPkey ek_key, tpm::PublicKeyFromTpm(ek));
  HOSN_ASSIGN_OR_RETURN(Bytes ak_name, ObjectName(ak));

  // 2. The seed, of the nameAlg's digest size, and its encryption to the EK.
  HOSN_ASSIGN_OR_RETURN(SharedSeed seed, ek.type == TPM2_ALG_RSA
                                             ? RsaSeed(ek_key.get(), SHA256_DIGEST_LENGTH)
                                             : EccSeed(ek, ek_key.get(), SHA256_DIGEST_LENGTH));

  // 3. The credential blob, bound to the AK's name.
  HOSN_ASSIGN_OR_RETURN(Bytes id_object,
                        SealCredential(seed.seed, sym.keyBits.aes, ak_name, credential));
  return CredentialChallenge{std::move(id_object), std::move(seed.encrypted_secret)};
}

}  // namespace hosn::enroll
