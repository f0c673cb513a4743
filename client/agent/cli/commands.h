// hosn-agent's subcommands (docs/agent.md):
//   run       attest, obtain the DEK, verify and decrypt the bundle into
//             tmpfs, then exec or supervise the engine;
//   tpm-info  write the node's AK and EK public areas and current PCR values
//             (what an operator needs to enroll the node and set its policy);
//   activate  run TPM2_ActivateCredential on a BeginEnrollment answer and
//             write the recovered secret to a 0600 file.
// Each takes the arguments after its name and returns the process exit code
// (exit_codes.h); messages go to stderr, prefixed "hosn-agent: ".
//
// Not thread-safe; one command per process.
#ifndef HOSN_CLIENT_AGENT_CLI_COMMANDS_H_
#define HOSN_CLIENT_AGENT_CLI_COMMANDS_H_

#include <string>
#include <vector>

namespace hosn::agent {

int RunCommand(const std::vector<std::string>& args);
int TpmInfoCommand(const std::vector<std::string>& args);
int ActivateCommand(const std::vector<std::string>& args);

// Prints "hosn-agent: <message>" to stderr.
void Log(const std::string& message);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_COMMANDS_H_
