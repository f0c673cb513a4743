// `hosnctl lineage sign | verify`: records a fine-tune, LoRA adapter or merge
// run as an HSM-signed in-toto Statement in a DSSE envelope, and checks a
// chain of them against the bundles themselves (docs/lineage.md). The format
// and checks are common/lineage; signing goes through hosn-keyd's
// SigningService.SignStatement over mTLS (keyd_signer.h).
//
// Exit codes (also in docs/lineage.md):
//   0  success
//   1  I/O or internal error
//   2  usage error
//   3  a bundle refused (its own signature, manifest or layout; the bundle
//      directory and the named error are printed)
//   5  hosn-keyd refused the caller or the statement's signer role
//   6  hosn-keyd unreachable or failed
//   7  lineage refused: an envelope's signature, chain or statement, or a
//      link of the chain (digest, parent, data set); "link <file>" and the
//      named error are printed
//
// Not thread-safe; one command per process.
#ifndef HOSN_CLIENT_CTL_LINEAGE_COMMAND_H_
#define HOSN_CLIENT_CTL_LINEAGE_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

namespace hosn::ctl {

inline constexpr int kExitLineageRefused = 7;

// `args` starts after "lineage". Results to `out`, errors to `err`.
int RunLineageCommand(const std::vector<std::string>& args, FILE* out, FILE* err);

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_LINEAGE_COMMAND_H_
