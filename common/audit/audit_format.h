// The byte-level rules of the audit log, shared by the writer (AuditLog) and
// the offline verifier: how an entry is serialized, how it is hashed, and
// which bytes a checkpoint signature covers. docs/audit-log.md specifies
// them. Stateless and thread-safe.
#ifndef HOSN_SERVER_AUDIT_AUDIT_FORMAT_H_
#define HOSN_SERVER_AUDIT_AUDIT_FORMAT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/audit_record.pb.h"

namespace hosn::audit {

// previous_sha256 of the first entry of a log.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The entry the writer appends when a due checkpoint cannot be signed
// (actor "daemon", outcome "failed", reason the signing error), with the
// sequence and head hash it tried to sign: always the entry right before it.
inline constexpr std::string_view kCheckpointFailedEvent = "audit.checkpoint_failed";
inline constexpr std::string_view kCheckpointFailedSequenceAttribute = "checkpoint_sequence";
inline constexpr std::string_view kCheckpointFailedHeadAttribute = "checkpoint_head_sha256";

// One JSON line without its newline. Internal if serialization fails.
absl::StatusOr<std::string> SerializeRecord(const hosn::keyd::v1::AuditRecord& record);
absl::StatusOr<std::string> SerializeCheckpoint(const hosn::keyd::v1::AuditCheckpoint& checkpoint);

// Strict parse of one stored line (unknown fields refused). InvalidArgument
// with "unparsable entry" on failure.
absl::StatusOr<hosn::keyd::v1::AuditRecord> ParseRecord(std::string_view line);
absl::StatusOr<hosn::keyd::v1::AuditCheckpoint> ParseCheckpoint(std::string_view line);

// Lowercase hex SHA-256 of the exact stored line bytes.
std::string LineHash(std::string_view line);

// The bytes a checkpoint signature covers:
//   "hosn-audit-checkpoint-v1\n" replica "\n" sequence "\n" head "\n" time "\n"
std::string CheckpointSignedBytes(const hosn::keyd::v1::AuditCheckpoint& checkpoint);

// Current UTC time as RFC 3339 with microseconds.
std::string NowRfc3339();

}  // namespace hosn::audit

#endif  // HOSN_SERVER_AUDIT_AUDIT_FORMAT_H_
