#include "server/attest/quote_verifier.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tpm/marshal.h"
#include "server/attest/challenge.h"
#include "server/attest/denial.h"

namespace hosn::attest {
namespace {

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

absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> AcceptAk(const TPMT_PUBLIC& public_area) {
  absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> ak = tpm::AkPublicKey::Create(public_area);
  if (!ak.ok()) {
    return Denied(DenialReason::kAkNotAcceptable,
                  absl::StrCat("ak not acceptable: ", ak.status().message()));
  }
  return ak;
}

absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> AcceptAk(std::span<const uint8_t> tpmt_public) {
  absl::StatusOr<TPMT_PUBLIC> parsed = tpm::UnmarshalPublic(tpmt_public);
  if (!parsed.ok()) {
    return Denied(DenialReason::kAkNotAcceptable, "ak not acceptable: malformed public area");
  }
  return AcceptAk(*parsed);
}

absl::StatusOr<SignatureInfo> VerifyQuoteSignature(const tpm::AkPublicKey& ak,
                                                   std::span<const uint8_t> attest,
                                                   std::span<const uint8_t> signature) {
  // 1. Parse; an absent signature is its own reason.
  if (signature.empty()) return Denied(DenialReason::kNoSignature);
  tpm::UnmarshalResult<TPMT_SIGNATURE> parsed = tpm::TryUnmarshalSignature(signature);
  if (parsed.error != tpm::UnmarshalError::kNone) {
    return Denied(DenialReason::kMalformedSignature);
  }
  const TPMT_SIGNATURE& sig = parsed.value;
  if (sig.sigAlg == TPM2_ALG_NULL) return Denied(DenialReason::kNoSignature);

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
      return Denied(DenialReason::kSignatureSchemeMismatch, "signature scheme not supported");
  }
  const bool rsa_sig = sig.sigAlg == TPM2_ALG_RSASSA || sig.sigAlg == TPM2_ALG_RSAPSS;
  if ((pub.type == TPM2_ALG_RSA) != rsa_sig) {
    return Denied(DenialReason::kSignatureSchemeMismatch,
                  "signature scheme mismatch: signature type does not fit the ak");
  }
  const TPMT_SIG_SCHEME key_scheme = KeyScheme(pub);
  if (key_scheme.scheme != TPM2_ALG_NULL &&
      (key_scheme.scheme != info.scheme || key_scheme.details.any.hashAlg != info.hash)) {
    return Denied(DenialReason::kSignatureSchemeMismatch,
                  "signature scheme mismatch: ak fixes another scheme");
  }
  const char* md_name = OpenSslDigestName(info.hash);
  if (md_name == nullptr) {
    return Denied(DenialReason::kSignatureSchemeMismatch,
                  absl::StrCat("signature scheme mismatch: hash ", tpm::HashAlgName(info.hash),
                               " not allowed"));
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
    return Denied(DenialReason::kBadSignature);
  }
  return info;
}

absl::StatusOr<TPMS_ATTEST> ParseQuote(std::span<const uint8_t> attest) {
  // Magic and type first, with tss2-mu's primitives, so each has its reason
  // even when the rest would not parse as a quote.
  UINT32 magic = 0;
  UINT16 type = 0;
  size_t offset = 0;
  if (Tss2_MU_UINT32_Unmarshal(attest.data(), attest.size(), &offset, &magic) != TSS2_RC_SUCCESS ||
      Tss2_MU_UINT16_Unmarshal(attest.data(), attest.size(), &offset, &type) != TSS2_RC_SUCCESS) {
    return Denied(DenialReason::kMalformedAttest);
  }
  if (magic != TPM2_GENERATED_VALUE) return Denied(DenialReason::kBadMagic);
  if (type != TPM2_ST_ATTEST_QUOTE) return Denied(DenialReason::kNotAQuote);

  tpm::UnmarshalResult<TPMS_ATTEST> parsed = tpm::TryUnmarshalAttest(attest);
  switch (parsed.error) {
    case tpm::UnmarshalError::kNone:
      return parsed.value;
    case tpm::UnmarshalError::kMalformed:
      return Denied(DenialReason::kMalformedAttest);
    case tpm::UnmarshalError::kTrailingBytes:
      break;
  }
  return Denied(DenialReason::kTrailingBytes);
}

absl::StatusOr<tpm::PcrValues> CheckPcrDigest(const TPMS_ATTEST& quote, TPM2_ALG_ID digest_alg,
                                              const tpm::PcrValues& sent) {
  // A signed selection naming a bank this project cannot hash is still the
  // node's evidence, so it is a denial, not an internal error.
  absl::StatusOr<tpm::PcrSelection> parsed =
      tpm::PcrSelectionFromTpm(quote.attested.quote.pcrSelect);
  if (!parsed.ok()) {
    return Denied(DenialReason::kMalformedAttest,
                  absl::StrCat("malformed attest: ", parsed.status().message()));
  }
  const tpm::PcrSelection& selection = *parsed;

  // Collect exactly the selected values; anything else sent is ignored.
  tpm::PcrValues quoted;
  for (const tpm::PcrBankSelection& bank : selection) {
    auto sent_bank = sent.find(bank.hash);
    for (uint32_t pcr : bank.pcrs) {
      const std::string name = absl::StrCat(tpm::HashAlgName(bank.hash), ":", pcr);
      if (sent_bank == sent.end() || !sent_bank->second.contains(pcr)) {
        return Denied(DenialReason::kPcrValueMissing, absl::StrCat("pcr value missing: ", name));
      }
      const tpm::Bytes& value = sent_bank->second.at(pcr);
      if (value.size() != tpm::HashDigestSize(bank.hash)) {
        return Denied(DenialReason::kPcrValueMissing,
                      absl::StrCat("pcr value missing: ", name, " has the wrong length"));
      }
      quoted[bank.hash][pcr] = value;
    }
  }

  HOSN_ASSIGN_OR_RETURN(tpm::Bytes digest, tpm::ComputePcrDigest(digest_alg, selection, quoted));
  const TPM2B_DIGEST& expected = quote.attested.quote.pcrDigest;
  // Public values: an ordinary comparison is fine here.
  if (digest.size() != expected.size ||
      !std::equal(digest.begin(), digest.end(), expected.buffer)) {
    return Denied(DenialReason::kPcrDigestMismatch);
  }
  return quoted;
}

absl::StatusOr<VerifiedQuote> VerifyQuote(const tpm::AkPublicKey& ak,
                                          std::span<const uint8_t> attest,
                                          std::span<const uint8_t> signature,
                                          std::span<const uint8_t> expected_extra_data,
                                          const tpm::PcrValues& pcr_values) {
  // Steps 1-3: the signature, before anything in the body is trusted.
  HOSN_ASSIGN_OR_RETURN(SignatureInfo sig, VerifyQuoteSignature(ak, attest, signature));

  // Step 4: a quote, whole.
  HOSN_ASSIGN_OR_RETURN(TPMS_ATTEST quote, ParseQuote(attest));

  // Step 5: bound to this challenge and ephemeral key.
  if (!ExtraDataMatches({quote.extraData.buffer, quote.extraData.size}, expected_extra_data)) {
    return Denied(DenialReason::kNonceMismatch);
  }

  // Step 6: the PCR values sent are the ones the TPM quoted.
  HOSN_ASSIGN_OR_RETURN(tpm::PcrValues quoted, CheckPcrDigest(quote, sig.hash, pcr_values));

  VerifiedQuote out;
  HOSN_ASSIGN_OR_RETURN(out.selection, tpm::PcrSelectionFromTpm(quote.attested.quote.pcrSelect));
  // (Cannot fail here: CheckPcrDigest already converted the same selection.)
  out.quoted_values = std::move(quoted);
  out.signature_scheme = sig.scheme;
  out.signature_hash = sig.hash;
  out.clock_info = quote.clockInfo;
  out.firmware_version = quote.firmwareVersion;
  return out;
}

}  // namespace hosn::attest
