// Strict wrappers over tpm2-tss marshalling (tss2-mu) for the structures the
// attestation path exchanges: TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC and
// TPM2B_PUBLIC.
//
// Every Unmarshal function parses with tss2-mu only (no hand-written TPM
// parser) and requires the whole buffer to be consumed: trailing bytes are an
// error, so one byte string has exactly one meaning. Marshal functions are the
// inverse, used by the agent and by tests. Stateless and thread-safe.
#ifndef HOSN_COMMON_TPM_MARSHAL_H_
#define HOSN_COMMON_TPM_MARSHAL_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"

namespace hosn::tpm {

// Failure modes of the Unmarshal functions. Each returns InvalidArgument;
// the message starts with "malformed <type>" when tss2-mu rejects the bytes,
// and with "trailing bytes after <type>" when it parsed a prefix only.
// Callers that need to tell the two apart use UnmarshalResult below.
enum class UnmarshalError { kNone, kMalformed, kTrailingBytes };

template <typename T>
struct UnmarshalResult {
  T value = {};
  UnmarshalError error = UnmarshalError::kNone;
};

// Parses a TPMS_ATTEST. The result's error says whether tss2-mu failed or
// bytes remained; the status is InvalidArgument in both cases.
absl::StatusOr<TPMS_ATTEST> UnmarshalAttest(std::span<const uint8_t> bytes);
UnmarshalResult<TPMS_ATTEST> TryUnmarshalAttest(std::span<const uint8_t> bytes);

absl::StatusOr<TPMT_SIGNATURE> UnmarshalSignature(std::span<const uint8_t> bytes);
UnmarshalResult<TPMT_SIGNATURE> TryUnmarshalSignature(std::span<const uint8_t> bytes);

// TPMT_PUBLIC (the bare public area, as go-tpm-tools stores AKs).
absl::StatusOr<TPMT_PUBLIC> UnmarshalPublic(std::span<const uint8_t> bytes);
// TPM2B_PUBLIC (size-prefixed, as tpm2-tools writes `-u ak.pub`). The inner
// size must match the TPMT_PUBLIC it wraps.
absl::StatusOr<TPMT_PUBLIC> Unmarshal2bPublic(std::span<const uint8_t> bytes);

// Inverses; Internal if tss2-mu refuses the structure (it was not valid).
absl::StatusOr<Bytes> MarshalAttest(const TPMS_ATTEST& attest);
absl::StatusOr<Bytes> MarshalSignature(const TPMT_SIGNATURE& signature);
absl::StatusOr<Bytes> MarshalPublic(const TPMT_PUBLIC& public_area);

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_MARSHAL_H_
