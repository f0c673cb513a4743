// Reading an audit log directory while the daemon writes it: the entries from
// a sequence number on, across rotated files, and the checkpoint lines in
// step with them. Used by the daemon's AuditService (StreamAuditLog,
// GetCheckpoint). Format: docs/audit-log.md.
//
// The reader returns stored lines exactly as written (the chain covers those
// bytes) and never returns a line without its newline. The caller bounds each
// read by the log's durable head (AuditLog::stats().last_sequence), so an
// entry is never shown before it is on disk.
//
// Thread-compatible: one AuditLogReader per stream. The free functions are
// stateless and thread-safe.
#ifndef HOSN_SERVER_AUDIT_AUDIT_READER_H_
#define HOSN_SERVER_AUDIT_AUDIT_READER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/audit_record.pb.h"

namespace hosn::audit {

// "audit-000042.jsonl" for 42.
std::string LogFileName(uint64_t index);
// Indices of the audit-NNNNNN.jsonl files in `dir`, ascending (empty if the
// directory cannot be read).
std::vector<uint64_t> ListLogFiles(const std::string& dir);

// The newest whole line of <dir>/checkpoints.jsonl and its parse; nullopt if
// there is none. InvalidArgument if that line does not parse.
struct StoredCheckpoint {
  hosn::keyd::v1::AuditCheckpoint checkpoint;
  std::string line;
};
absl::StatusOr<std::optional<StoredCheckpoint>> ReadLatestCheckpoint(const std::string& dir);

class AuditLogReader {
 public:
  // Entries are read from `from_sequence` on (1 for the whole log).
  AuditLogReader(std::string directory, uint64_t from_sequence);

  // Calls `entry` for each whole entry after the previous read up to and
  // including sequence `up_to`, in order, and `checkpoint` for each
  // checkpoint line once the entry it names has been passed to `entry`
  // (checkpoints naming entries before from_sequence are skipped). Stops
  // early, returning OK, when a callback returns false.
  // DataLoss if a whole line is not an entry or the sequence does not follow
  // on; Internal on I/O errors. The next call continues where this one ended.
  absl::Status Read(uint64_t up_to,
                    const std::function<bool(uint64_t sequence, std::string_view line)>& entry,
                    const std::function<bool(std::string_view line)>& checkpoint);

  // Sequence of the last entry passed on (from_sequence - 1 before any).
  uint64_t last_sequence() const { return next_sequence_ - 1; }

 private:
  absl::Status Position();
  absl::Status ReadEntries(uint64_t up_to,
                           const std::function<bool(uint64_t, std::string_view)>& entry,
                           bool& stopped);
  absl::Status ReadCheckpoints(const std::function<bool(std::string_view)>& checkpoint,
                               bool& stopped);

  const std::string directory_;
  const uint64_t from_sequence_;
  uint64_t next_sequence_;
  bool positioned_ = false;
  uint64_t file_index_ = 0;
  uint64_t file_offset_ = 0;
  uint64_t checkpoint_offset_ = 0;
};

}  // namespace hosn::audit

#endif  // HOSN_SERVER_AUDIT_AUDIT_READER_H_
