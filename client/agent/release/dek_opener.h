// The node's half of the release scheme `ecdh-p256-kwp` (docs/release-wrap.md):
// a fresh P-256 key pair per boot, and opening the DEK that the HSM wrapped
// to it.
//
// The private key lives only in this process (OpenSSL key object, freed and
// cleansed by OpenSSL when the EphemeralKey is destroyed); the public half
// goes into the quote's qualifyingData and the release request. Opening
// repeats the HSM's ECDH with the HSM's release public key, applies the same
// KDF, and unwraps with AES key wrap with padding (RFC 5649), whose integrity
// check fails closed on any mismatch.
//
// Thread-compatible: one EphemeralKey per release attempt, one owner.
#ifndef HOSN_CLIENT_AGENT_RELEASE_DEK_OPENER_H_
#define HOSN_CLIENT_AGENT_RELEASE_DEK_OPENER_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"

namespace hosn::agent {

// How the ECDH shared secret becomes the wrapping key.
//   kNull:      the raw 32-byte shared x-coordinate (PKCS#11 CKD_NULL; what
//               SoftHSM offers).
//   kX963Sha256: ANSI X9.63 KDF with SHA-256 over the shared secret and
//               `shared_info` (PKCS#11 CKD_SHA256_KDF).
enum class ReleaseKdf { kNull, kX963Sha256 };

// Parses "null" / "x963-sha256"; InvalidArgument otherwise.
absl::StatusOr<ReleaseKdf> ReleaseKdfFromName(std::string_view name);

class EphemeralKey {
 public:
  // A new P-256 key pair. Internal if OpenSSL fails.
  static absl::StatusOr<std::unique_ptr<EphemeralKey>> Generate();
  ~EphemeralKey();
  EphemeralKey(const EphemeralKey&) = delete;
  EphemeralKey& operator=(const EphemeralKey&) = delete;

  // DER SubjectPublicKeyInfo of the public half.
  const std::string& public_key_der() const { return public_key_der_; }

  // Opens a DEK wrapped to this key. `releaser_public_key_der` is the HSM
  // release key's SubjectPublicKeyInfo (P-256). InvalidArgument for a
  // malformed or non-P-256 key; DataLoss "wrapped dek failed its integrity
  // check" if the blob was not wrapped for this key (or was altered); the
  // output then holds nothing.
  absl::StatusOr<SecretBytes> OpenWrappedDek(std::string_view releaser_public_key_der,
                                             std::string_view wrapped_dek, ReleaseKdf kdf,
                                             std::string_view shared_info) const;

 private:
  EphemeralKey(EVP_PKEY* key, std::string public_key_der)
      : key_(key), public_key_der_(std::move(public_key_der)) {}
  EVP_PKEY* key_;
  std::string public_key_der_;
};

// The wrapping key both sides derive: exposed for tests that play the HSM's
// part with OpenSSL. InvalidArgument for a bad key; Internal on OpenSSL errors.
absl::StatusOr<SecretBytes> DeriveReleaseWrappingKey(EVP_PKEY* own_private, EVP_PKEY* peer_public,
                                                     ReleaseKdf kdf, std::string_view shared_info);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_RELEASE_DEK_OPENER_H_
