// `hosnctl bundle pack | verify | inspect | decrypt`: argument parsing,
// key and certificate loading, progress display, and the mapping from
// bundle errors to exit codes. The work itself is common/bundle.
//
// Exit codes (also in docs/bundle-format.md):
//   0  success
//   1  I/O or internal error
//   2  usage error (unknown command or flag, missing or bad argument)
//   3  bundle refused: signature, manifest, path rule, completeness or any
//      tamper check (the named error is printed)
//   4  target refused: not on tmpfs/ramfs, or already in use
//   5  hosn-keyd refused the caller (PERMISSION_DENIED, UNAUTHENTICATED):
//      e.g. a client certificate without the signer role
//   6  hosn-keyd unreachable or failed (UNAVAILABLE, DEADLINE_EXCEEDED or
//      any other daemon status; the address and gRPC status are printed)
//
// Keys never come from argv: DEKs and private keys (including the TLS client
// key for hosn-keyd) are secret references ("file:/path" or
// "credential:NAME", see ReadSecretReference).
//
// `bundle pack --keyd HOST:PORT` signs through hosn-keyd's SigningService
// over mTLS; the HSM is never opened by hosnctl. Without --dek (or with
// --new-model-key) the DEK is a new one that the HSM makes and wraps to this
// process (station_model_key.h; operator certificate): it never touches disk
// or argv. `--dek REF --wrapped-dek FILE` packs with an existing DEK (offline
// or air-gapped re-packing).
//
// Not thread-safe; one command per process.
#ifndef HOSN_CLIENT_CTL_BUNDLE_COMMAND_H_
#define HOSN_CLIENT_CTL_BUNDLE_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

namespace hosn::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRefused = 3;
inline constexpr int kExitTarget = 4;
inline constexpr int kExitKeydRefused = 5;
inline constexpr int kExitKeydUnavailable = 6;

// `args` starts after "bundle". Writes results to `out`, errors and
// progress to `err`.
int RunBundleCommand(const std::vector<std::string>& args, FILE* out, FILE* err);

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_BUNDLE_COMMAND_H_
