#include "common/tpm/ak_public.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hosn::tpm {
namespace {

struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};

// Turns OSSL_PARAMs into a public key of `type` ("RSA" or "EC").
absl::StatusOr<UniqueEvpPkey> FromParams(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
    return absl::InternalError("cannot build public key");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return absl::InvalidArgumentError("public area does not hold a valid key");
  }
  return UniqueEvpPkey(raw);
}

absl::StatusOr<UniqueEvpPkey> RsaKey(const TPMT_PUBLIC& pub) {
  const TPM2B_PUBLIC_KEY_RSA& modulus = pub.unique.rsa;
  const uint16_t bits = pub.parameters.rsaDetail.keyBits;
  if (modulus.size == 0 || modulus.size * 8u != bits || bits < 2048) {
    return absl::InvalidArgumentError("rsa public area has a bad modulus size");
  }
  // An exponent of 0 means the default, 2^16 + 1.
  const uint32_t exponent =
      pub.parameters.rsaDetail.exponent == 0 ? 65537 : pub.parameters.rsaDetail.exponent;
  std::unique_ptr<BIGNUM, BnDeleter> n(BN_bin2bn(modulus.buffer, modulus.size, nullptr));
  std::unique_ptr<BIGNUM, BnDeleter> e(BN_new());
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (n == nullptr || e == nullptr || bld == nullptr || BN_set_word(e.get(), exponent) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return absl::InternalError("cannot build rsa key");
  }
  return FromParams("RSA", bld.get());
}

absl::StatusOr<UniqueEvpPkey> EcKey(const TPMT_PUBLIC& pub) {
  const char* group = nullptr;
  size_t field_size = 0;
  switch (pub.parameters.eccDetail.curveID) {
    case TPM2_ECC_NIST_P256:
      group = "P-256";
      field_size = 32;
      break;
    case TPM2_ECC_NIST_P384:
      group = "P-384";
      field_size = 48;
      break;
    case TPM2_ECC_NIST_P521:
      group = "P-521";
      field_size = 66;
      break;
    default:
      return absl::InvalidArgumentError("unsupported ecc curve");
  }
  const TPM2B_ECC_PARAMETER& x = pub.unique.ecc.x;
  const TPM2B_ECC_PARAMETER& y = pub.unique.ecc.y;
  if (x.size > field_size || y.size > field_size) {
    return absl::InvalidArgumentError("ecc point coordinate too long");
  }
  // Uncompressed point: 0x04 || X || Y, each left-padded to the field size.
  std::vector<uint8_t> point(1 + 2 * field_size, 0);
  point[0] = 0x04;
  std::copy(x.buffer, x.buffer + x.size, point.begin() + 1 + (field_size - x.size));
  std::copy(y.buffer, y.buffer + y.size, point.begin() + 1 + field_size + (field_size - y.size));

  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return absl::InternalError("cannot build ec key");
  }
  return FromParams("EC", bld.get());
}

}  // namespace

absl::Status CheckAkAttributes(const TPMT_PUBLIC& public_area) {
  if (public_area.type != TPM2_ALG_RSA && public_area.type != TPM2_ALG_ECC) {
    return absl::InvalidArgumentError("ak is neither rsa nor ecc");
  }
  struct Required {
    TPMA_OBJECT bit;
    const char* name;
  };
  constexpr Required kRequired[] = {
      {TPMA_OBJECT_RESTRICTED, "restricted"},
      {TPMA_OBJECT_SIGN_ENCRYPT, "sign"},
      {TPMA_OBJECT_FIXEDTPM, "fixedTPM"},
      {TPMA_OBJECT_FIXEDPARENT, "fixedParent"},
  };
  for (const Required& required : kRequired) {
    if ((public_area.objectAttributes & required.bit) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("ak lacks attribute ", required.name));
    }
  }
  if ((public_area.objectAttributes & TPMA_OBJECT_DECRYPT) != 0) {
    return absl::FailedPreconditionError("ak is also a decryption key");
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueEvpPkey> PublicKeyFromTpm(const TPMT_PUBLIC& public_area) {
  switch (public_area.type) {
    case TPM2_ALG_RSA:
      return RsaKey(public_area);
    case TPM2_ALG_ECC:
      return EcKey(public_area);
    default:
      return absl::InvalidArgumentError("public area is neither rsa nor ecc");
  }
}

absl::StatusOr<std::unique_ptr<AkPublicKey>> AkPublicKey::Create(const TPMT_PUBLIC& public_area) {
  absl::Status attributes = CheckAkAttributes(public_area);
  if (!attributes.ok()) return attributes;
  absl::StatusOr<UniqueEvpPkey> pkey = PublicKeyFromTpm(public_area);
  if (!pkey.ok()) return pkey.status();
  return std::unique_ptr<AkPublicKey>(new AkPublicKey(public_area, std::move(*pkey)));
}

}  // namespace hosn::tpm
