// `hosnctl audit export | verify`: an auditor's copy of hosn-keyd's
// hash-chained audit log, and its offline verification (docs/audit-log.md).
//
//   export  streams the log over mTLS as an auditor (AuditService): first
//           GetCheckpoint, which makes the daemon sign its current head, then
//           StreamAuditLog from entry 1 (or --from). Writes DIR/audit-000001.jsonl
//           (entries exactly as stored), DIR/checkpoints.jsonl, the signer's
//           chain DIR/signer-chain.pem and DIR/export.json (the daemon's
//           anchor checkpoint and interval). --follow keeps streaming until
//           interrupted.
//   verify  reads such a copy (or a daemon's log directory) and checks the
//           chain, every checkpoint signature against the signer certificate
//           (which must chain to the auditor's --ca), and the anchor. Every
//           finding is printed by entry number.
//
// Exit codes:
//   0  verified (a torn last line is reported but is not tampering)
//   1  I/O or internal error
//   2  usage error
//   3  log refused: truncation, deletion, reordering, edits, bad or missing
//      checkpoints (findings printed)
//   4  signer certificate not trusted by --ca
//   5  hosn-keyd refused the caller (export)
//   6  hosn-keyd unreachable or failed (export)
//
// The anchor in export.json is only as trustworthy as the place the copy was
// kept: an auditor who stores the export where others can write passes the
// anchor printed at export time with --anchor-sequence/--anchor-sha256.
//
// Not thread-safe; one command per process.
#ifndef HOSN_CLIENT_CTL_AUDIT_COMMAND_H_
#define HOSN_CLIENT_CTL_AUDIT_COMMAND_H_

#include <string>
#include <vector>

namespace hosn::ctl {

inline constexpr int kExitAuditSignerUntrusted = 4;

// `args` starts after "audit".
int RunAuditCommand(const std::vector<std::string>& args);

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_AUDIT_COMMAND_H_
