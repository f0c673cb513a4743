// libFuzzer target: CheckEphemeralKey, the release service's check of the
// node's ephemeral public key (ReleaseKeyRequest.ephemeral_public_key) before
// the quote is verified and the HSM wraps the DEK to that key. The HSM side's
// own parser (hsm::P256PointFromSpki) has hsm_peer_spki_fuzz.
// Invariant: a key the release service accepts is one the HSM layer accepts
// too (else a node passes attestation and then fails inside the re-wrap), and
// it re-encodes to a SubjectPublicKeyInfo of the same P-256 point.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/hsm/openssl_util.h"
#include "server/release/evidence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view spki(reinterpret_cast<const char*>(data), size);
  const absl::Status checked = hosn::release::CheckEphemeralKey(spki);
  if (!checked.ok()) {
    if (checked.code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  absl::StatusOr<std::string> point = hosn::hsm::P256PointFromSpki(spki);
  if (!point.ok() || point->size() != 65 || (*point)[0] != 0x04) std::abort();
  absl::StatusOr<std::string> canonical = hosn::hsm::EcSpki(hosn::hsm::kOidP256, *point);
  if (!canonical.ok() || !hosn::release::CheckEphemeralKey(*canonical).ok()) std::abort();
  return 0;
}
