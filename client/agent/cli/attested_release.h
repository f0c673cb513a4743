// The node's side of attested release (docs/attestation.md,
// docs/release-wrap.md): GetChallenge, a fresh ephemeral P-256 key, a TPM
// quote whose qualifyingData binds the broker's nonce and that key,
// ReleaseKey with the bundle's signed manifest, and the opening of the
// returned DEK with the ephemeral key.
//
// An unreachable daemon (UNAVAILABLE, DEADLINE_EXCEEDED) is retried with
// exponential backoff (0.2 s doubling to 5 s) until the overall deadline;
// each attempt starts over with a new challenge and a new ephemeral key. Any
// other daemon answer ends the attempt at once: PERMISSION_DENIED is a
// refusal, never retried.
//
// The ephemeral private key lives only inside this call and is freed
// (cleansed by OpenSSL) on return; the DEK is returned in SecretBytes (mlocked,
// excluded from core dumps, wiped on destruction).
//
// Thread-compatible: one call at a time per TpmDevice.
#ifndef HOSN_CLIENT_AGENT_CLI_ATTESTED_RELEASE_H_
#define HOSN_CLIENT_AGENT_CLI_ATTESTED_RELEASE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/agent/tpm/tpm_device.h"
#include "common/base/secret_bytes.h"
#include "grpcpp/channel.h"

namespace hosn::agent {

// Payload type URL on every status that came from the TPM (IsTpmError).
inline constexpr char kTpmErrorPayload[] = "type.hosn/hosn.agent.TpmError";
inline bool IsTpmError(const absl::Status& status) {
  return status.GetPayload(kTpmErrorPayload).has_value();
}

struct ReleaseOptions {
  std::string manifest;                         // manifest.json bytes, exactly as signed
  std::string manifest_signature;               // manifest.json.p7s (DER)
  tpm::PcrSelection selection;                  // PCRs to quote
  std::string event_log;                        // TCG event log to send; may be empty
  absl::Duration deadline = absl::Seconds(60);  // overall, retries included
  absl::Duration rpc_timeout = absl::Seconds(10);
  std::function<void(const std::string&)> log;  // progress messages; may be empty
};

struct ReleaseTimings {
  absl::Duration attest;   // challenge + ephemeral key + quote (last attempt)
  absl::Duration release;  // ReleaseKey + opening the DEK
  int attempts = 0;
};

// Returns the 32-byte DEK. Unavailable "hosn-keyd unreachable..." once the
// deadline passed without an answer; PermissionDenied (or Unauthenticated) as
// the daemon said; DataLoss if the wrapped DEK does not open with the
// ephemeral key; FailedPrecondition for an unknown wrap scheme or KDF;
// Internal with kTpmErrorPayload (message "tpm: ...") if the quote failed.
absl::StatusOr<SecretBytes> ObtainDek(TpmDevice& tpm, const std::shared_ptr<grpc::Channel>& channel,
                                      const ReleaseOptions& options, ReleaseTimings* timings);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_ATTESTED_RELEASE_H_
