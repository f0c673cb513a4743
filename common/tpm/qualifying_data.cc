#include "common/tpm/qualifying_data.h"

#include <string_view>

#include "absl/status/status.h"

namespace hosn::tpm {

absl::StatusOr<Bytes> ComputeQualifyingData(std::span<const uint8_t> nonce,
                                            std::span<const uint8_t> ephemeral_spki) {
  if (nonce.size() != kNonceSize) {
    return absl::InvalidArgumentError("nonce must be 32 bytes");
  }
  if (ephemeral_spki.empty() || ephemeral_spki.size() > UINT32_MAX) {
    return absl::InvalidArgumentError("ephemeral public key is empty or too long");
  }
  constexpr std::string_view kLabel = "hosn attest v1 qualifying data";

  Bytes message(kLabel.begin(), kLabel.end());
  message.push_back(0x00);
  message.push_back(static_cast<uint8_t>(nonce.size() >> 8));
  message.push_back(static_cast<uint8_t>(nonce.size()));
  message.insert(message.end(), nonce.begin(), nonce.end());
  const size_t key_size = ephemeral_spki.size();
  for (int shift = 24; shift >= 0; shift -= 8) {
    message.push_back(static_cast<uint8_t>(key_size >> shift));
  }
  message.insert(message.end(), ephemeral_spki.begin(), ephemeral_spki.end());
  return HashBytes(TPM2_ALG_SHA256, message);
}

}  // namespace hosn::tpm
