#include "server/attest/challenge.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>

#include "absl/status/status.h"

namespace hosn::attest {

absl::StatusOr<Challenge> Challenge::Generate() {
  Challenge challenge;
  if (RAND_bytes(challenge.nonce_.data(), static_cast<int>(challenge.nonce_.size())) != 1) {
    return absl::InternalError("random generator failed");
  }
  return challenge;
}

absl::StatusOr<Challenge> Challenge::FromBytes(std::span<const uint8_t> bytes) {
  if (bytes.size() != tpm::kNonceSize) {
    return absl::InvalidArgumentError("challenge nonce must be 32 bytes");
  }
  Challenge challenge;
  std::copy(bytes.begin(), bytes.end(), challenge.nonce_.begin());
  return challenge;
}

absl::StatusOr<tpm::Bytes> Challenge::QualifyingData(
    std::span<const uint8_t> ephemeral_spki) const {
  return tpm::ComputeQualifyingData(nonce_, ephemeral_spki);
}

bool ExtraDataMatches(std::span<const uint8_t> extra_data, std::span<const uint8_t> expected) {
  // Lengths are public; only the contents are compared in constant time.
  if (expected.empty() || extra_data.size() != expected.size()) return false;
  return CRYPTO_memcmp(extra_data.data(), expected.data(), expected.size()) == 0;
}

}  // namespace hosn::attest
