// Verification of a TPM 2.0 quote against an enrolled attestation key.
//
// VerifyQuote runs every check, in this order, and stops at the first
// failure with a PermissionDenied status carrying a DenialReason (denial.h):
//   1. the signature parses (tss2-mu, no trailing bytes) and is not NULL;
//   2. its scheme fits the AK: RSASSA or RSAPSS for RSA, ECDSA for ECC, and
//      the AK's own scheme and hash if it fixes one; SHA-1 is refused;
//   3. it verifies (OpenSSL) over the exact attest bytes received;
//   4. the attest bytes have magic TPM_GENERATED_VALUE, type
//      TPM_ST_ATTEST_QUOTE, parse with tss2-mu and leave no trailing byte;
//   5. extraData equals the expected qualifyingData (exact length, constant
//      time, never empty);
//   6. the PCR values sent beside the quote, hashed with the signature's hash
//      in selection order, equal pcrDigest.
// The signature is checked before the body is interpreted, so only bytes the
// AK signed reach the structure parser. Steps 1-4 are common/tpm/quote_check.h
// (shared with offline verifiers); this layer names their denial reasons. The steps are also
// exposed one by one for tests, fuzzing and the benchmark. Stateless and thread-safe; AK objects
// may be shared between threads.
#ifndef HOSN_SERVER_ATTEST_QUOTE_VERIFIER_H_
#define HOSN_SERVER_ATTEST_QUOTE_VERIFIER_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/quote_check.h"
#include "common/tpm/tpm_types.h"

namespace hosn::attest {

// What a verified quote vouches for.
struct VerifiedQuote {
  tpm::PcrSelection selection;
  // Exactly the selected PCRs, with the values that hashed to pcrDigest.
  tpm::PcrValues quoted_values;
  TPM2_ALG_ID signature_scheme = TPM2_ALG_NULL;
  TPM2_ALG_ID signature_hash = TPM2_ALG_NULL;
  TPMS_CLOCK_INFO clock_info = {};
  uint64_t firmware_version = 0;
};

// Parses an AK public area (marshalled TPMT_PUBLIC) and applies the AK
// acceptance rule. Denied(kAkNotAcceptable) if it does not parse, lacks
// restricted/sign/fixedTPM/fixedParent, or is not a usable RSA/ECC key.
absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> AcceptAk(std::span<const uint8_t> tpmt_public);
// Same for a public area already parsed.
absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> AcceptAk(const TPMT_PUBLIC& public_area);

// Steps 1-3 (tpm::CheckQuoteSignature, its faults as denials). Returns the
// signature's scheme and hash algorithm.
using SignatureInfo = tpm::SignatureInfo;
absl::StatusOr<SignatureInfo> VerifyQuoteSignature(const tpm::AkPublicKey& ak,
                                                   std::span<const uint8_t> attest,
                                                   std::span<const uint8_t> signature);

// Step 4: magic, type, strict parse (tpm::ParseQuoteAttest, its faults as
// denials). Never looks at the signature.
absl::StatusOr<TPMS_ATTEST> ParseQuote(std::span<const uint8_t> attest);

// Step 6: recomputes pcrDigest of `quote` from `sent` with `digest_alg` and
// returns the selected values. Denied(kPcrValueMissing) if a selected value
// was not sent or has the wrong length, Denied(kPcrDigestMismatch) if the
// digest differs, Denied(kMalformedAttest) if the selection names an unknown
// bank or an oversized bitmap.
absl::StatusOr<tpm::PcrValues> CheckPcrDigest(const TPMS_ATTEST& quote, TPM2_ALG_ID digest_alg,
                                              const tpm::PcrValues& sent);

// All steps. `expected_extra_data` is the qualifyingData the quote must carry
// (normally Challenge::QualifyingData). Internal only if OpenSSL fails.
absl::StatusOr<VerifiedQuote> VerifyQuote(const tpm::AkPublicKey& ak,
                                          std::span<const uint8_t> attest,
                                          std::span<const uint8_t> signature,
                                          std::span<const uint8_t> expected_extra_data,
                                          const tpm::PcrValues& pcr_values);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_QUOTE_VERIFIER_H_
