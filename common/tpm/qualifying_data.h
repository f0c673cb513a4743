// The quote's qualifyingData: what binds a TPM quote to one broker challenge
// and one ephemeral key of the node.
//
//   qualifyingData = SHA-256( "hosn attest v1 qualifying data" || 0x00
//                             || u16be(len(nonce)) || nonce
//                             || u32be(len(ephemeral_spki)) || ephemeral_spki )
//
// The label separates this hash from every other use of SHA-256 in the
// project; the length prefixes make the encoding injective. The nonce is the
// broker's 32 random bytes, ephemeral_spki the DER SubjectPublicKeyInfo of the
// node's fresh public key that the released key will be wrapped to. The
// result is 32 bytes, within every TPM's qualifyingData limit (T7).
// docs/attestation.md specifies it. Stateless and thread-safe.
#ifndef HOSN_COMMON_TPM_QUALIFYING_DATA_H_
#define HOSN_COMMON_TPM_QUALIFYING_DATA_H_

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"

namespace hosn::tpm {

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kQualifyingDataSize = 32;

// InvalidArgument if `nonce` is not exactly kNonceSize bytes or
// `ephemeral_spki` is empty; Internal if hashing fails.
absl::StatusOr<Bytes> ComputeQualifyingData(std::span<const uint8_t> nonce,
                                            std::span<const uint8_t> ephemeral_spki);

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_QUALIFYING_DATA_H_
