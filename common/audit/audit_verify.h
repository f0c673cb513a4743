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
//   - missing checkpoint: more entries without a checkpoint than the writer
//                     ever leaves (checkpoint lines were deleted)
//   - anchor mismatch: the log disagrees with a checkpoint the auditor got
//                     from the daemon itself (GetCheckpoint)
//   - bad checkpoint signature, replica mismatch
//   - checkpoint outage: the writer recorded audit.checkpoint_failed entries
//                     (the HSM could not sign); not tampering, but the
//                     entries of the outage are signed only by a later
//                     checkpoint, if any, and are otherwise unanchored
// Entries after the newest checkpoint in the files can be cut off or
// rewritten unseen unless the auditor passes an anchor; the report names how
// many there are. Only a log with no finding other than a torn tail or a
// checkpoint outage verifies. Stateless and thread-safe.
#ifndef HOSN_SERVER_AUDIT_AUDIT_VERIFY_H_
#define HOSN_SERVER_AUDIT_AUDIT_VERIFY_H_

#include <openssl/evp.h>

#include <cstdint>
#include <optional>
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
  kMissingCheckpoint,
  kAnchorMismatch,
  kCheckpointOutage,
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
  // The newest validly signed checkpoint that matched the log (0 if none),
  // for comparison with the daemon's current checkpoint.
  uint64_t last_checkpoint_sequence = 0;
  std::string last_checkpoint_head;
  // Entries after that checkpoint: not covered by any signature.
  uint64_t unanchored_entries = 0;
  // Well-formed audit.checkpoint_failed entries (each stands in for a
  // checkpoint in the interval rule, and signs nothing).
  uint64_t checkpoint_failures = 0;
  std::vector<Finding> findings;
};

// A checkpoint obtained independently of the exported files.
struct CheckpointAnchor {
  uint64_t sequence = 0;
  std::string head_sha256;
};

struct VerifyOptions {
  // The log's checkpoint_interval. The writer never leaves more than twice
  // this many entries without a checkpoint or an audit.checkpoint_failed
  // entry (a batch is cut at the interval), so a longer stretch means
  // checkpoint lines were removed. 0 turns the rule off.
  uint64_t checkpoint_interval = 0;
  // If set, the log must hold this entry with this hash.
  std::optional<CheckpointAnchor> anchor;
};

// `log_files`: the contents of audit-NNNNNN.jsonl files in order.
// `checkpoints`: the contents of checkpoints.jsonl. `signer_key`: the public
// key of the checkpoint signer (from its certificate). At least one
// checkpoint is required for the log to verify.
VerifyReport VerifyAuditLog(const std::vector<std::string>& log_files,
                            const std::string& checkpoints, EVP_PKEY* signer_key,
                            const VerifyOptions& options = {});

// Human-readable finding kind ("chain broken").
std::string FindingKindName(FindingKind kind);

}  // namespace hosn::audit

#endif  // HOSN_SERVER_AUDIT_AUDIT_VERIFY_H_
