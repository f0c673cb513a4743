// A new model key for the packing station, made by the HSM behind hosn-keyd
// (docs/bundle-format.md, "A new model key"; docs/release-wrap.md).
//
// hosnctl generates an ephemeral P-256 key pair (the agent's EphemeralKey,
// client/agent/release/dek_opener.h), sends its public half in
// CreateModelKey, and opens `station_wrapped_dek` exactly as a node opens a
// released DEK. The reply's `kek_wrapped_dek`, `kek_label` and `kek_id` go
// into the manifest. The plaintext DEK exists only in the HSM and in the
// returned SecretBytes (locked, wiped on destruction); it is never written
// to a file or put on a command line. The ephemeral private key is freed
// before CreateStationModelKey returns.
//
// What hosnctl cannot check: that `kek_wrapped_dek` wraps the same DEK (only
// the HSM holds the KEK). The daemon is trusted for that through mTLS with a
// pinned CA; a node's attested release of the bundle is the end-to-end check.
//
// Thread-compatible: a plain function; `keyd` is used by one caller at a time.
#ifndef HOSN_CLIENT_CTL_STATION_MODEL_KEY_H_
#define HOSN_CLIENT_CTL_STATION_MODEL_KEY_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "client/ctl/keyd_signer.h"
#include "common/base/secret_bytes.h"

namespace hosn::ctl {

struct StationModelKey {
  SecretBytes dek;              // the DEK (32 bytes), opened from station_wrapped_dek
  std::string kek_wrapped_dek;  // the same DEK wrapped under the KEK (RFC 5649)
  std::string kek_label;        // the KEK that wraps it, as the daemon names it
  std::string kek_id;           // its CKA_ID, lowercase hex
};

// Asks hosn-keyd (CreateModelKey, caller role operator) for a new DEK for
// model `model_name` `model_version`, wrapped under `kek_label` (empty: the
// daemon's configured KEK) and to a fresh ephemeral key of this process.
// Daemon errors as KeydManifestSigner::CreateModelKey (PermissionDenied for
// a signer-only or node certificate; FailedPrecondition "station_public_key:
// no release key configured" from a daemon without a release section). An
// unusable reply (other scheme or KDF, missing fields, a wrapped DEK that
// fails its integrity check or is not 32 bytes) is FailedPrecondition or
// DataLoss; all of these carry kKeydErrorPayload. Internal if OpenSSL cannot
// make the ephemeral key.
absl::StatusOr<StationModelKey> CreateStationModelKey(KeydManifestSigner& keyd,
                                                      std::string_view model_name,
                                                      std::string_view model_version,
                                                      std::string_view kek_label);

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_STATION_MODEL_KEY_H_
