#include "tests/server/attest/test_quotes.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <memory>

#include "absl/status/status.h"
#include "common/base/status_macros.h"
#include "common/tpm/marshal.h"

namespace hosn::attest::testing {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

const char* MdName(TPM2_ALG_ID hash) {
  switch (hash) {
    case TPM2_ALG_SHA1:
      return "SHA1";
    case TPM2_ALG_SHA384:
      return "SHA384";
    case TPM2_ALG_SHA512:
      return "SHA512";
    default:
      return "SHA256";
  }
}

void CopyBn(const BIGNUM* bn, size_t width, uint8_t* out, UINT16* size) {
  BN_bn2binpad(bn, out, static_cast<int>(width));
  *size = static_cast<UINT16>(width);
}

}  // namespace

absl::StatusOr<TestAk> MakeTestAk(TPM2_ALG_ID scheme, TPMA_OBJECT attributes) {
  TestAk ak;
  TPMT_PUBLIC& pub = ak.public_area;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = attributes;
  if (scheme == TPM2_ALG_ECDSA) {
    ak.key.reset(EVP_EC_gen("P-256"));
    if (ak.key == nullptr) return absl::InternalError("ec keygen failed");
    uint8_t point[65];
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(ak.key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                        &len) != 1 ||
        len != 65) {
      return absl::InternalError("cannot read ec point");
    }
    pub.type = TPM2_ALG_ECC;
    pub.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    pub.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    pub.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    pub.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    std::copy(point + 1, point + 33, pub.unique.ecc.x.buffer);
    pub.unique.ecc.x.size = 32;
    std::copy(point + 33, point + 65, pub.unique.ecc.y.buffer);
    pub.unique.ecc.y.size = 32;
  } else {
    ak.key.reset(EVP_RSA_gen(2048));
    if (ak.key == nullptr) return absl::InternalError("rsa keygen failed");
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(ak.key.get(), OSSL_PKEY_PARAM_RSA_N, &raw) != 1) {
      return absl::InternalError("cannot read rsa modulus");
    }
    std::unique_ptr<BIGNUM, BnDeleter> n(raw);
    pub.type = TPM2_ALG_RSA;
    pub.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    pub.parameters.rsaDetail.scheme.scheme = scheme;
    pub.parameters.rsaDetail.scheme.details.anySig.hashAlg = TPM2_ALG_SHA256;
    pub.parameters.rsaDetail.keyBits = 2048;
    pub.parameters.rsaDetail.exponent = 0;
    CopyBn(n.get(), 256, pub.unique.rsa.buffer, &pub.unique.rsa.size);
  }
  HOSN_ASSIGN_OR_RETURN(ak.marshalled, tpm::MarshalPublic(pub));
  return ak;
}

TPMS_ATTEST MakeQuoteAttest(std::span<const uint8_t> extra_data,
                            const TPML_PCR_SELECTION& selection,
                            std::span<const uint8_t> pcr_digest) {
  TPMS_ATTEST attest = {};
  attest.magic = TPM2_GENERATED_VALUE;
  attest.type = TPM2_ST_ATTEST_QUOTE;
  attest.qualifiedSigner.size = 34;
  attest.qualifiedSigner.name[1] = 0x0b;  // a sha256 name, contents irrelevant
  attest.extraData.size = static_cast<UINT16>(extra_data.size());
  std::copy(extra_data.begin(), extra_data.end(), attest.extraData.buffer);
  attest.clockInfo.clock = 123456;
  attest.clockInfo.safe = 1;
  attest.firmwareVersion = 0x2023;
  attest.attested.quote.pcrSelect = selection;
  attest.attested.quote.pcrDigest.size = static_cast<UINT16>(pcr_digest.size());
  std::copy(pcr_digest.begin(), pcr_digest.end(), attest.attested.quote.pcrDigest.buffer);
  return attest;
}

absl::StatusOr<tpm::Bytes> SignAttest(const TestAk& ak, std::span<const uint8_t> message,
                                      TPM2_ALG_ID scheme, TPM2_ALG_ID hash) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit_ex(ctx.get(), &pctx, MdName(hash), nullptr, nullptr, ak.key.get(),
                            nullptr) != 1) {
    return absl::InternalError("sign init failed");
  }
  if (scheme == TPM2_ALG_RSAPSS &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
    return absl::InternalError("pss setup failed");
  }
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1) {
    return absl::InternalError("sign failed");
  }
  tpm::Bytes raw(len);
  if (EVP_DigestSign(ctx.get(), raw.data(), &len, message.data(), message.size()) != 1) {
    return absl::InternalError("sign failed");
  }
  raw.resize(len);

  TPMT_SIGNATURE sig = {};
  sig.sigAlg = scheme;
  if (scheme == TPM2_ALG_ECDSA) {
    const uint8_t* p = raw.data();
    std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ecdsa(
        d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(raw.size())));
    if (ecdsa == nullptr) return absl::InternalError("bad ecdsa der");
    sig.signature.ecdsa.hash = hash;
    CopyBn(ECDSA_SIG_get0_r(ecdsa.get()), 32, sig.signature.ecdsa.signatureR.buffer,
           &sig.signature.ecdsa.signatureR.size);
    CopyBn(ECDSA_SIG_get0_s(ecdsa.get()), 32, sig.signature.ecdsa.signatureS.buffer,
           &sig.signature.ecdsa.signatureS.size);
  } else {
    // An RSA signature on an EC key (or the reverse) is built here on purpose
    // by tests; the layout is the same for RSASSA and RSAPSS.
    sig.signature.rsassa.hash = hash;
    sig.signature.rsassa.sig.size = static_cast<UINT16>(std::min<size_t>(raw.size(), 512));
    std::copy(raw.begin(), raw.begin() + sig.signature.rsassa.sig.size,
              sig.signature.rsassa.sig.buffer);
  }
  return tpm::MarshalSignature(sig);
}

tpm::PcrValues FilledPcrValues(const tpm::PcrSelection& selection, uint8_t fill) {
  tpm::PcrValues values;
  for (const tpm::PcrBankSelection& bank : selection) {
    for (uint32_t pcr : bank.pcrs) {
      values[bank.hash][pcr] = tpm::Bytes(tpm::HashDigestSize(bank.hash), fill);
    }
  }
  return values;
}

}  // namespace hosn::attest::testing
