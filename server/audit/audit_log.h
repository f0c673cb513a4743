// AuditLog: the daemon's append-only, hash-chained, durable decision log.
//
// Every entry is one JSON line (an AuditRecord) whose previous_sha256 is the
// SHA-256 of the previous line's bytes, so an edit, a deletion or a
// reordering breaks the chain at a nameable entry. Every
// `checkpoint_interval` entries (and on Close) the log signs a checkpoint,
// (replica, sequence, head hash), with a key held elsewhere (the HSM, through
// CheckpointSigner); a checkpoint is what makes truncation and a relinked
// rewrite detectable to someone without the key. Format: docs/audit-log.md.
//
// When a due checkpoint cannot be signed (the HSM is down), the log appends
// an `audit.checkpoint_failed` entry naming the sequence and head it tried
// to sign, at most once per interval, and retries the signature at every
// batch. The verifier accepts a stretch longer than the checkpoint rule
// allows only with these entries at the interval, and reports it as an
// outage, never as signed (docs/audit-log.md, "Checkpoint outage").
//
// Durability: Append returns only after the entry is on disk (fdatasync).
// Appends from many threads share one write and one fdatasync per batch
// (group commit), so load does not serialize on the disk. If a write or sync
// fails the log turns unhealthy for good: every later Append fails with
// Unavailable, and the daemon must refuse the decisions it cannot record.
//
// Files: <dir>/audit-NNNNNN.jsonl, a new file after `max_file_bytes`, the
// chain continuing across files; <dir>/checkpoints.jsonl. On open, a last
// line without its newline (a crash mid-write) is cut off and reported as a
// torn tail, never as tampering; numbering continues after the last whole
// entry.
//
// Thread safety: Append, Checkpoint, healthy() and stats() may be called from
// any thread. Close (or the destructor) must not race with Append.
#ifndef HOSN_SERVER_AUDIT_AUDIT_LOG_H_
#define HOSN_SERVER_AUDIT_AUDIT_LOG_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/sync.h"
#include "common/base/unique_fd.h"
#include "hosn/keyd/v1/audit_record.pb.h"

namespace hosn::audit {

// Signs checkpoint bytes with a key the log's host cannot use to rewrite
// history unnoticed (the HSM). Implementations must be thread-safe.
class CheckpointSigner {
 public:
  virtual ~CheckpointSigner() = default;
  // Algorithm name as stored beside the signature ("ecdsa-p256-sha256").
  virtual std::string algorithm() const = 0;
  // A signature over `message` in the algorithm's standard encoding (DER for
  // ECDSA).
  virtual absl::StatusOr<std::string> Sign(std::string_view message) = 0;
};

struct AuditLogOptions {
  std::string directory;
  std::string replica_id;
  uint64_t max_file_bytes = 64 << 20;
  // A signed checkpoint after this many entries (0: only on Close and on
  // explicit Checkpoint calls).
  uint64_t checkpoint_interval = 1000;
  // Not owned; may be null only in tests of the chain alone (then no
  // checkpoint and no audit.checkpoint_failed entry is ever written).
  CheckpointSigner* signer = nullptr;
  // Called after every attempt to sign a checkpoint (automatic, explicit or
  // on Close) with its result, on the thread that attempted it and under
  // the log's write lock: it must not call into the log. May be empty.
  std::function<void(const absl::Status& result)> on_checkpoint;
};

// What Open found and what Append has done; for metrics and the start-up log.
struct AuditLogStats {
  uint64_t last_sequence = 0;
  uint64_t appended = 0;
  uint64_t batches = 0;  // write+fdatasync rounds
  uint64_t write_failures = 0;
  uint64_t checkpoints = 0;
  uint64_t checkpoint_failures = 0;        // signing attempts that failed
  uint64_t checkpoint_failed_entries = 0;  // audit.checkpoint_failed entries written
  uint64_t torn_tail_bytes = 0;            // cut off at open
  bool healthy = true;
};

class AuditLog {
 public:
  // Opens or creates the log in options.directory (mode 0700). Recovers the
  // sequence and head hash from the newest file, cutting a torn last line.
  // DataLoss if a whole line of the newest file does not parse or does not
  // chain (the log was altered: refuse to append to it); Internal on I/O
  // errors; InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const AuditLogOptions& options);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Fills sequence, time, replica_id and previous_sha256, writes the entry
  // and returns its sequence once it is durable. Unavailable if the log is
  // unhealthy or closed; the entry is then not recorded.
  absl::StatusOr<uint64_t> Append(hosn::keyd::v1::AuditRecord record);

  // Signs and stores a checkpoint of the current head now.
  absl::Status Checkpoint();

  // Writes a final checkpoint and stops the writer; if that checkpoint
  // cannot be signed, appends an audit.checkpoint_failed entry instead and
  // returns the signing error. Idempotent.
  absl::Status Close();

  bool healthy() const;
  AuditLogStats stats() const;

 private:
  struct Pending;
  explicit AuditLog(const AuditLogOptions& options) : options_(options) {}

  absl::Status Recover();
  absl::Status OpenFileForAppend(uint64_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void WriterLoop();
  // Returns the sequence of the last durable entry (the batch's last, or the
  // audit.checkpoint_failed entry written after it).
  absl::StatusOr<uint64_t> WriteBatch(std::deque<std::shared_ptr<Pending>>& batch);
  // Numbers, chains, writes and syncs `records` as one write.
  absl::Status WriteRecordsLocked(std::vector<hosn::keyd::v1::AuditRecord*> records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::Status WriteCheckpointLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // WriteCheckpointLocked, counted and reported to on_checkpoint.
  absl::Status TryCheckpointLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Appends the audit.checkpoint_failed entry for the current head.
  absl::Status WriteCheckpointFailedLocked(const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  const AuditLogOptions options_;

  // Guards the queue and the counters that appenders read. Never held while
  // writing to disk. Lock order: write_mu_ before mu_.
  mutable Mutex mu_ ABSL_ACQUIRED_AFTER(write_mu_);
  // Signalled when the queue gains an entry, a batch completes, or Close.
  std::condition_variable_any changed_;
  std::deque<std::shared_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  AuditLogStats stats_ ABSL_GUARDED_BY(mu_);

  // Held by the writer thread (and Checkpoint) while touching files; never
  // held while waiting for appenders.
  Mutex write_mu_;
  UniqueFd file_ ABSL_GUARDED_BY(write_mu_);
  uint64_t file_index_ ABSL_GUARDED_BY(write_mu_) = 0;
  uint64_t file_bytes_ ABSL_GUARDED_BY(write_mu_) = 0;
  uint64_t last_sequence_ ABSL_GUARDED_BY(write_mu_) = 0;
  std::string head_sha256_ ABSL_GUARDED_BY(write_mu_);
  uint64_t last_checkpoint_sequence_ ABSL_GUARDED_BY(write_mu_) = 0;
  // The sequence the newest audit.checkpoint_failed entry of this process
  // tried to sign (0: none yet; after a restart the first failure writes
  // one at once).
  uint64_t last_failed_attempt_sequence_ ABSL_GUARDED_BY(write_mu_) = 0;

  std::thread writer_;
  bool closed_ = false;
};

}  // namespace hosn::audit

#endif  // HOSN_SERVER_AUDIT_AUDIT_LOG_H_
