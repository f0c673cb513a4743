// hosn-agent's exit codes (docs/agent.md). One code per reason the node does
// not end up serving, so that systemd units and scripts can tell them apart.
// In supervise mode, once the engine has started, the agent exits with the
// engine's own code instead (128 + signal if it was killed).
//
// Constants only; thread-safe.
#ifndef HOSN_CLIENT_AGENT_CLI_EXIT_CODES_H_
#define HOSN_CLIENT_AGENT_CLI_EXIT_CODES_H_

#include "absl/status/status.h"

namespace hosn::agent {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;        // unexpected local error
inline constexpr int kExitUsage = 2;           // bad command line or unreadable input file
inline constexpr int kExitTpm = 10;            // the TPM could not be opened or failed
inline constexpr int kExitUnreachable = 11;    // hosn-keyd not reached before the deadline
inline constexpr int kExitDenied = 12;         // hosn-keyd refused (attestation, policy, revoked)
inline constexpr int kExitBundleInvalid = 13;  // signature, manifest or a file failed verification
inline constexpr int kExitTarget = 14;         // target not on tmpfs/ramfs, or in use
inline constexpr int kExitDecrypt = 15;        // the DEK did not open or a segment failed
inline constexpr int kExitEngine = 16;         // the engine could not be started

// The exit code a failure of one step maps to (the step's own code for most
// statuses; usage and daemon codes by status code).
int ExitCodeForKeydStatus(const absl::Status& status);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_EXIT_CODES_H_
