#include "server/attest/quote_verifier.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tpm/marshal.h"
#include "common/tpm/quote_check.h"
#include "server/attest/challenge.h"
#include "server/attest/denial.h"

namespace hosn::attest {
namespace {

// The denial for a fault of the shared quote checks (same message); other
// errors (OpenSSL failing) pass through.
absl::Status AsDenial(const absl::Status& status) {
  const std::optional<tpm::QuoteFault> fault = tpm::QuoteFaultOf(status);
  if (!fault.has_value()) return status;
  const std::string message(status.message());
  switch (*fault) {
    case tpm::QuoteFault::kNoSignature:
      return Denied(DenialReason::kNoSignature, message);
    case tpm::QuoteFault::kMalformedSignature:
      return Denied(DenialReason::kMalformedSignature, message);
    case tpm::QuoteFault::kSignatureSchemeMismatch:
      return Denied(DenialReason::kSignatureSchemeMismatch, message);
    case tpm::QuoteFault::kBadSignature:
      return Denied(DenialReason::kBadSignature, message);
    case tpm::QuoteFault::kMalformedAttest:
      return Denied(DenialReason::kMalformedAttest, message);
    case tpm::QuoteFault::kBadMagic:
      return Denied(DenialReason::kBadMagic, message);
    case tpm::QuoteFault::kNotAQuote:
      return Denied(DenialReason::kNotAQuote, message);
    case tpm::QuoteFault::kTrailingBytes:
      return Denied(DenialReason::kTrailingBytes, message);
  }
  return status;
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
  absl::StatusOr<SignatureInfo> info = tpm::CheckQuoteSignature(ak, attest, signature);
  if (!info.ok()) return AsDenial(info.status());
  return info;
}

absl::StatusOr<TPMS_ATTEST> ParseQuote(std::span<const uint8_t> attest) {
  absl::StatusOr<TPMS_ATTEST> quote = tpm::ParseQuoteAttest(attest);
  if (!quote.ok()) return AsDenial(quote.status());
  return quote;
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
