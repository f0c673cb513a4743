#include "common/tpm/quote_check.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tpm/marshal.h"
#include "common/tpm/tpm_types.h"

namespace hosn::tpm {
namespace {

constexpr char kQuoteFaultUrl[] = "type.hosn.dev/tpm.QuoteFault";

std::string_view FaultLabel(QuoteFault fault) {
  switch (fault) {
    case QuoteFault::kNoSignature:
      return "no signature";
    case QuoteFault::kMalformedSignature:
      return "malformed signature";
    case QuoteFault::kSignatureSchemeMismatch:
      return "signature scheme mismatch";
    case QuoteFault::kBadSignature:
      return "bad signature";
    case QuoteFault::kMalformedAttest:
      return "malformed attest";
    case QuoteFault::kBadMagic:
      return "bad magic";
    case QuoteFault::kNotAQuote:
      return "not a quote";
    case QuoteFault::kTrailingBytes:
      return "trailing bytes";
  }
  return "quote refused";
}

absl::Status Refused(QuoteFault fault, std::string_view message) {
  absl::Status status = absl::InvalidArgumentError(std::string(message));
  status.SetPayload(kQuoteFaultUrl, absl::Cord(std::to_string(static_cast<int>(fault))));
  return status;
}

absl::Status Refused(QuoteFault fault) { return Refused(fault, FaultLabel(fault)); }

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};
struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};

const char* OpenSslDigestName(TPM2_ALG_ID hash) {
  switch (hash) {
    case TPM2_ALG_SHA256:
      return "SHA256";
    case TPM2_ALG_SHA384:
      return "SHA384";
    case TPM2_ALG_SHA512:
      return "SHA512";
    default:
      return nullptr;
  }
}

// The key's own signing scheme (TPM2_ALG_NULL if it lets the caller choose).
TPMT_SIG_SCHEME KeyScheme(const TPMT_PUBLIC& pub) {
  TPMT_SIG_SCHEME scheme = {};
  if (pub.type == TPM2_ALG_RSA) {
    scheme.scheme = pub.parameters.rsaDetail.scheme.scheme;
    scheme.details.any.hashAlg = pub.parameters.rsaDetail.scheme.details.anySig.hashAlg;
  } else {
    scheme.scheme = pub.parameters.eccDetail.scheme.scheme;
    scheme.details.any.hashAlg = pub.parameters.eccDetail.scheme.details.anySig.hashAlg;
  }
  return scheme;
}

// The DER form OpenSSL verifies, from the TPM's (r, s).
absl::StatusOr<std::string> EcdsaDer(const TPMS_SIGNATURE_ECDSA& sig) {
  std::unique_ptr<BIGNUM, BnDeleter> r(
      BN_bin2bn(sig.signatureR.buffer, sig.signatureR.size, nullptr));
  std::unique_ptr<BIGNUM, BnDeleter> s(
      BN_bin2bn(sig.signatureS.buffer, sig.signatureS.size, nullptr));
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ecdsa(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || ecdsa == nullptr ||
      ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) {
    return absl::InternalError("cannot build ecdsa signature");
  }
  (void)r.release();  // now owned by `ecdsa`
  (void)s.release();
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(ecdsa.get(), &der);
  if (len <= 0) return absl::InternalError("cannot encode ecdsa signature");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::optional<QuoteFault> QuoteFaultOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  absl::optional<absl::Cord> payload = status.GetPayload(kQuoteFaultUrl);
  if (!payload.has_value()) return std::nullopt;
  int value = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &value) || value < 0 ||
      value > static_cast<int>(QuoteFault::kTrailingBytes)) {
    return std::nullopt;
  }
  return static_cast<QuoteFault>(value);
}

absl::StatusOr<SignatureInfo> CheckQuoteSignature(const AkPublicKey& ak,
                                                  std::span<const uint8_t> attest,
                                                  std::span<const uint8_t> signature) {
  // 1. Parse; an absent signature is its own reason.
  if (signature.empty()) return Refused(QuoteFault::kNoSignature);
  UnmarshalResult<TPMT_SIGNATURE> parsed = TryUnmarshalSignature(signature);
  if (parsed.error != UnmarshalError::kNone) {
    return Refused(QuoteFault::kMalformedSignature);
  }
  const TPMT_SIGNATURE& sig = parsed.value;
  if (sig.sigAlg == TPM2_ALG_NULL) return Refused(QuoteFault::kNoSignature);

  // 2. The scheme must fit the key. The hash field sits at the same place in
  // every signature arm, but read it from the arm that matches sigAlg.
  const TPMT_PUBLIC& pub = ak.public_area();
  SignatureInfo info{.scheme = sig.sigAlg, .hash = TPM2_ALG_NULL};
  switch (sig.sigAlg) {
    case TPM2_ALG_RSASSA:
      info.hash = sig.signature.rsassa.hash;
      break;
    case TPM2_ALG_RSAPSS:
      info.hash = sig.signature.rsapss.hash;
      break;
    case TPM2_ALG_ECDSA:
      info.hash = sig.signature.ecdsa.hash;
      break;
    default:
      return Refused(QuoteFault::kSignatureSchemeMismatch, "signature scheme not supported");
  }
  const bool rsa_sig = sig.sigAlg == TPM2_ALG_RSASSA || sig.sigAlg == TPM2_ALG_RSAPSS;
  if ((pub.type == TPM2_ALG_RSA) != rsa_sig) {
    return Refused(QuoteFault::kSignatureSchemeMismatch,
                   "signature scheme mismatch: signature type does not fit the ak");
  }
  const TPMT_SIG_SCHEME key_scheme = KeyScheme(pub);
  if (key_scheme.scheme != TPM2_ALG_NULL &&
      (key_scheme.scheme != info.scheme || key_scheme.details.any.hashAlg != info.hash)) {
    return Refused(QuoteFault::kSignatureSchemeMismatch,
                   "signature scheme mismatch: ak fixes another scheme");
  }
  const char* md_name = OpenSslDigestName(info.hash);
  if (md_name == nullptr) {
    return Refused(
        QuoteFault::kSignatureSchemeMismatch,
        absl::StrCat("signature scheme mismatch: hash ", HashAlgName(info.hash), " not allowed"));
  }

  // 3. Verify over the exact bytes received.
  std::string der;
  std::span<const uint8_t> sig_bytes;
  if (sig.sigAlg == TPM2_ALG_ECDSA) {
    HOSN_ASSIGN_OR_RETURN(der, EcdsaDer(sig.signature.ecdsa));
    sig_bytes = {reinterpret_cast<const uint8_t*>(der.data()), der.size()};
  } else {
    const TPM2B_PUBLIC_KEY_RSA& rsa = sig.signature.rsassa.sig;  // same layout for rsapss
    sig_bytes = {rsa.buffer, rsa.size};
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (ctx == nullptr || EVP_DigestVerifyInit_ex(ctx.get(), &pctx, md_name, nullptr, nullptr,
                                                ak.pkey(), nullptr) != 1) {
    return absl::InternalError("cannot start signature verification");
  }
  if (sig.sigAlg == TPM2_ALG_RSASSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return absl::InternalError("cannot set rsa padding");
  }
  if (sig.sigAlg == TPM2_ALG_RSAPSS &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)) {
    return absl::InternalError("cannot set rsa-pss padding");
  }
  if (EVP_DigestVerify(ctx.get(), sig_bytes.data(), sig_bytes.size(), attest.data(),
                       attest.size()) != 1) {
    return Refused(QuoteFault::kBadSignature);
  }
  return info;
}

absl::StatusOr<TPMS_ATTEST> ParseQuoteAttest(std::span<const uint8_t> attest) {
  // Magic and type first, with tss2-mu's primitives, so each has its reason
  // even when the rest would not parse as a quote.
  UINT32 magic = 0;
  UINT16 type = 0;
  size_t offset = 0;
  if (Tss2_MU_UINT32_Unmarshal(attest.data(), attest.size(), &offset, &magic) != TSS2_RC_SUCCESS ||
      Tss2_MU_UINT16_Unmarshal(attest.data(), attest.size(), &offset, &type) != TSS2_RC_SUCCESS) {
    return Refused(QuoteFault::kMalformedAttest);
  }
  if (magic != TPM2_GENERATED_VALUE) return Refused(QuoteFault::kBadMagic);
  if (type != TPM2_ST_ATTEST_QUOTE) return Refused(QuoteFault::kNotAQuote);

  UnmarshalResult<TPMS_ATTEST> parsed = TryUnmarshalAttest(attest);
  switch (parsed.error) {
    case UnmarshalError::kNone:
      return parsed.value;
    case UnmarshalError::kMalformed:
      return Refused(QuoteFault::kMalformedAttest);
    case UnmarshalError::kTrailingBytes:
      break;
  }
  return Refused(QuoteFault::kTrailingBytes);
}

}  // namespace hosn::tpm
