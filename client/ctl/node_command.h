// `hosnctl node enroll | revoke` and `hosnctl policy set`: the operator's side
// of node enrollment and boot policy, over hosn-keyd's AdminService (mTLS,
// operator role). docs/agent.md walks through the whole sequence.
//
// node enroll has three forms:
//   --tcti TCTI                 one machine: BeginEnrollment, then
//                               ActivateCredential on that TPM, then EnrollNode;
//   --challenge-out DIR         BeginEnrollment only: writes credential_blob,
//                               encrypted_secret and enrollment_token to DIR
//                               (for `hosn-agent activate` on the node);
//   --challenge DIR --activation-secret REF
//                               EnrollNode with the secret the node recovered.
// policy set reads reference PCR values from files in the tpm2_pcrread -o
// format (what `hosn-agent tpm-info` writes), one reference set per file.
//
// Exit codes as bundle_command.h (0, 1, 2, 5 refused, 6 unreachable).
// Not thread-safe; one command per process.
#ifndef HOSN_CLIENT_CTL_NODE_COMMAND_H_
#define HOSN_CLIENT_CTL_NODE_COMMAND_H_

#include <string>
#include <vector>

namespace hosn::ctl {

// `args` starts after "node" / "policy".
int RunNodeCommand(const std::vector<std::string>& args);
int RunPolicyCommand(const std::vector<std::string>& args);

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_NODE_COMMAND_H_
