// The broker's challenge nonce and the exact comparison of a quote's
// extraData with the value it must carry.
//
// A Challenge is 32 bytes from the OpenSSL DRBG. Its expiry and its binding to
// the caller's mTLS identity belong to the release service; this type only
// makes and holds the bytes. ExtraDataMatches is exact-length and constant
// time in the contents: lengths are public, the bytes are compared without an
// early exit. Immutable after creation; safe to share between threads.
#ifndef HOSN_SERVER_ATTEST_CHALLENGE_H_
#define HOSN_SERVER_ATTEST_CHALLENGE_H_

#include <array>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "common/tpm/qualifying_data.h"

namespace hosn::attest {

class Challenge {
 public:
  // Draws kNonceSize fresh random bytes; Internal if the DRBG fails.
  static absl::StatusOr<Challenge> Generate();
  // Wraps bytes received back from a node; InvalidArgument unless exactly
  // kNonceSize bytes.
  static absl::StatusOr<Challenge> FromBytes(std::span<const uint8_t> bytes);

  std::span<const uint8_t> nonce() const { return nonce_; }

  // The qualifyingData a quote answering this challenge must carry for the
  // node's ephemeral public key (see common/tpm/qualifying_data.h).
  absl::StatusOr<tpm::Bytes> QualifyingData(std::span<const uint8_t> ephemeral_spki) const;

 private:
  Challenge() = default;
  std::array<uint8_t, tpm::kNonceSize> nonce_ = {};
};

// True only if `extra_data` and `expected` have the same length and the same
// bytes. An empty `expected` never matches: an unbound quote is never valid.
bool ExtraDataMatches(std::span<const uint8_t> extra_data, std::span<const uint8_t> expected);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_CHALLENGE_H_
