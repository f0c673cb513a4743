// Starting the inference engine on the decrypted model directory.
//
// hosn-agent ends in one of two ways once the weights are in tmpfs:
//   * exec mode: the agent replaces itself with the engine (vLLM, TGI, any
//     command). Nothing of the agent stays in memory; the plaintext stays in
//     tmpfs until the node reboots or the unit's cleanup removes it.
//   * supervise mode: the agent runs the engine as its child, forwards
//     SIGTERM/SIGINT/SIGHUP to it, and removes the plaintext directory when
//     the engine exits, whatever the reason; the agent's exit code is the
//     engine's.
// In both modes every descriptor above stderr is closed before the engine
// starts (close_range), so no socket, key file or TPM handle of the agent is
// inherited, and "{model_dir}" in any argument is replaced by the directory.
//
// Not thread-safe: call from the agent's main thread only.
#ifndef HOSN_CLIENT_AGENT_ENGINE_ENGINE_LAUNCHER_H_
#define HOSN_CLIENT_AGENT_ENGINE_ENGINE_LAUNCHER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hosn::agent {

// Replaces every "{model_dir}" in `argv` with `model_dir`. InvalidArgument
// for an empty command.
absl::StatusOr<std::vector<std::string>> ExpandEngineCommand(const std::vector<std::string>& argv,
                                                             const std::string& model_dir);

// Exec mode. Returns only on failure (the engine could not be executed:
// NotFound or Internal naming argv[0]).
absl::Status ExecEngine(const std::vector<std::string>& argv, const std::string& model_dir);

// Supervise mode. Runs the engine, waits for it, then removes `model_dir`
// recursively. Returns the engine's exit code, or 128 + signal number if it
// was killed by a signal. NotFound (no such binary) or Internal if the
// engine could not be started (the directory is removed then too).
absl::StatusOr<int> SuperviseEngine(const std::vector<std::string>& argv,
                                    const std::string& model_dir);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_ENGINE_ENGINE_LAUNCHER_H_
