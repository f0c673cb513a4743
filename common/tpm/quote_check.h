// The pure checks of a TPM 2.0 quote that need no policy: the signature by a
// given attestation key over the exact attest bytes, and the TPMS_ATTEST's
// magic, type and strict tss2-mu parse. Shared by the daemon's quote verifier
// (server/attest, which maps each fault to a DenialReason) and by offline
// verifiers such as `hosnctl lineage verify`.
//
// Every refusal is InvalidArgument with a short message ("bad signature",
// "signature scheme mismatch: ak fixes another scheme") and carries a
// QuoteFault that QuoteFaultOf reads back; Internal only if OpenSSL fails.
// The signature is meant to be checked before the body is interpreted, so
// only bytes the AK signed reach the structure parser. Stateless and
// thread-safe.
#ifndef HOSN_COMMON_TPM_QUOTE_CHECK_H_
#define HOSN_COMMON_TPM_QUOTE_CHECK_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tpm/ak_public.h"

namespace hosn::tpm {

enum class QuoteFault {
  kNoSignature,              // "no signature": empty or TPM_ALG_NULL
  kMalformedSignature,       // "malformed signature": tss2-mu refused it or bytes trail
  kSignatureSchemeMismatch,  // "signature scheme mismatch": scheme not usable with the AK
  kBadSignature,             // "bad signature": does not verify over the attest bytes
  kMalformedAttest,          // "malformed attest": tss2-mu refused the structure
  kBadMagic,                 // "bad magic": magic is not TPM_GENERATED_VALUE
  kNotAQuote,                // "not a quote": type is not TPM_ST_ATTEST_QUOTE
  kTrailingBytes,            // "trailing bytes": bytes after the TPMS_ATTEST
};

// The fault carried by `status`, or nullopt if it is OK or carries none.
std::optional<QuoteFault> QuoteFaultOf(const absl::Status& status);

// The signature's scheme and hash algorithm.
struct SignatureInfo {
  TPM2_ALG_ID scheme = TPM2_ALG_NULL;
  TPM2_ALG_ID hash = TPM2_ALG_NULL;
};

// 1. `signature` parses as a TPMT_SIGNATURE (no trailing bytes) and is not
// NULL; 2. its scheme fits the AK (RSASSA or RSAPSS for RSA, ECDSA for ECC,
// and the AK's own scheme and hash if it fixes one; only SHA-256/384/512);
// 3. it verifies over exactly `attest`.
absl::StatusOr<SignatureInfo> CheckQuoteSignature(const AkPublicKey& ak,
                                                  std::span<const uint8_t> attest,
                                                  std::span<const uint8_t> signature);

// Magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE, then a strict parse.
// Never looks at a signature.
absl::StatusOr<TPMS_ATTEST> ParseQuoteAttest(std::span<const uint8_t> attest);

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_QUOTE_CHECK_H_
