// Process-level protection for the agent while it holds key material, and
// the tmpfs check on the decryption target.
//
// HardenProcess: no core dumps (RLIMIT_CORE 0), not dumpable and not
// ptrace-attachable by same-uid processes (PR_SET_DUMPABLE 0). Key buffers
// themselves are SecretBytes (mlocked, MADV_DONTDUMP, wiped on release).
//
// Stateless functions; call from the main thread before any secret exists.
#ifndef HOSN_CLIENT_AGENT_CLI_PROCESS_GUARD_H_
#define HOSN_CLIENT_AGENT_CLI_PROCESS_GUARD_H_

#include <string>

#include "absl/status/status.h"

namespace hosn::agent {

// Internal naming the call that failed.
absl::Status HardenProcess();

// OK if `target` can receive plaintext: the directory that holds it (the
// target itself if it exists) is on tmpfs or ramfs, and the target is absent
// or an empty directory. FailedPrecondition "target_not_tmpfs: <path>" or
// "target_not_empty: <path>"; NotFound if the parent does not exist.
absl::Status CheckTarget(const std::string& target);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_PROCESS_GUARD_H_
