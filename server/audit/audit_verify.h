// Offline verification of an exported audit log against its signed
// checkpoints. Used by `hosnctl audit verify` and by tests; shares the byte
// rules of audit_format.h with the writer.
//
// The verifier reports every problem it finds by entry number rather than
// stopping at the first, so an auditor sees the extent of a tampering:
//   - torn tail:      the last line has no newline (a crash; not tampering)
//   - unparsable:     a line is not a valid entry
//   - missing:        sequence numbers skip (entries deleted)
//   - out of order:   a sequence number repeats or goes back (reordered)
//   - chain broken:   previous_sha256 does not match the entry before (edited)
//   - checkpoint mismatch: a signed checkpoint's head differs from the log's
//                     entry at that sequence (rewritten and relinked)
//   - truncated:      a signed checkpoint covers entries the log lacks
//   - bad checkpoint signature, replica mismatch
// Only a log with no finding other than a torn tail verifies. Stateless and
// thread-safe.
#ifndef HOSN_SERVER_AUDIT_AUDIT_VERIFY_H_
#define HOSN_SERVER_AUDIT_AUDIT_VERIFY_H_

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hosn::audit {

enum class FindingKind {
  kTornTail,
  kUnparsable,
  kMissing,
  kOutOfOrder,
  kChainBroken,
  kCheckpointMismatch,
  kTruncated,
  kBadCheckpointSignature,
  kReplicaMismatch,
};

struct Finding {
  FindingKind kind;
  uint64_t sequence;  // the entry concerned (0 if none)
  std::string message;
};

struct VerifyReport {
  bool verified = false;
  uint64_t entries = 0;
  uint64_t last_sequence = 0;
  uint64_t checkpoints_checked = 0;
  std::vector<Finding> findings;
};

// `log_files`: the contents of audit-NNNNNN.jsonl files in order.
// `checkpoints`: the contents of checkpoints.jsonl. `signer_key`: the public
// key of the checkpoint signer (from its certificate). At least one
// checkpoint is required for the log to verify.
VerifyReport VerifyAuditLog(const std::vector<std::string>& log_files,
                            const std::string& checkpoints, EVP_PKEY* signer_key);

// Human-readable finding kind ("chain broken").
std::string FindingKindName(FindingKind kind);

}  // namespace hosn::audit

#endif  // HOSN_SERVER_AUDIT_AUDIT_VERIFY_H_
