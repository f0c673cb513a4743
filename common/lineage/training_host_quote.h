// Offline check of a lineage statement's training-host quote
// (predicate.trainingHostQuote, docs/lineage.md section 6): the TPM quote is
// a real quote (magic, type, strict tss2-mu parse), signed by the AK public
// area carried beside it, which must be an acceptable AK and, if the
// verifier pins one, exactly that AK; and its qualifyingData binds it to
// this run's output model:
//
//   qualifyingData = SHA-256( "hosn lineage training host quote v1" || 0x00
//                             || output manifest SHA-256 (32 raw bytes) )
//
// The label separates this hash from the release binding
// (common/tpm/qualifying_data.h); the digest has a fixed length, so the
// encoding is injective. What the quote proves is only that a TPM holding
// that AK quoted its PCRs after the output's manifest existed; which PCR
// values are acceptable is the reader's policy (the result gives the
// selection and pcrDigest). Stateless and thread-safe.
#ifndef HOSN_COMMON_LINEAGE_TRAINING_HOST_QUOTE_H_
#define HOSN_COMMON_LINEAGE_TRAINING_HOST_QUOTE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/tpm/quote_check.h"
#include "common/tpm/tpm_types.h"
#include "hosn/keyd/v1/lineage.pb.h"

namespace hosn::lineage {

inline constexpr std::string_view kTrainingHostQuoteLabel = "hosn lineage training host quote v1";

// The qualifyingData for an output whose manifest has SHA-256
// `output_manifest_sha256` (64 lowercase hex digits). InvalidArgument for
// another form; Internal if hashing fails.
absl::StatusOr<tpm::Bytes> TrainingHostQualifyingData(std::string_view output_manifest_sha256);

struct VerifiedTrainingHostQuote {
  // True if the AK equals the one the verifier pinned; false: any AK that
  // signed it was taken (the quote then proves no particular host).
  bool ak_pinned = false;
  // Lowercase hex SHA-256 of the AK's marshalled TPMT_PUBLIC (to compare
  // with an enrolled AK by fingerprint).
  std::string ak_sha256;
  tpm::SignatureInfo signature;
  std::string pcr_selection;  // "sha256:0,1,2,...", tpm::PcrSelectionToString
  std::string pcr_digest;     // lowercase hex
};

// Checks `statement`'s training-host quote. `pinned_ak` is the AK public the
// verifier trusts, as TPM2B_PUBLIC or bare TPMT_PUBLIC, or nullopt.
// FailedPrecondition, message starting with the named error:
//   quote_missing           the statement has no quote (only asked when one is required)
//   quote_ak_unacceptable   akPublic does not parse or is not a restricted, fixed signing key
//   quote_ak_mismatch       akPublic is not the pinned AK
//   quote_signature_invalid the signature does not parse, fit the AK or verify
//   quote_malformed         the attest bytes are not a quote (magic, type, structure)
//   quote_nonce_mismatch    extraData is not this output's qualifyingData
// InvalidArgument if `pinned_ak` does not parse; Internal if OpenSSL fails.
absl::StatusOr<VerifiedTrainingHostQuote> VerifyTrainingHostQuote(
    const hosn::keyd::v1::LineageStatement& statement, const std::optional<std::string>& pinned_ak);

}  // namespace hosn::lineage

#endif  // HOSN_COMMON_LINEAGE_TRAINING_HOST_QUOTE_H_
