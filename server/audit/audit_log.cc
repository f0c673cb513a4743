#include "server/audit/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/audit/audit_format.h"
#include "common/audit/audit_reader.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"

namespace hosn::audit {
namespace {

using hosn::keyd::v1::AuditCheckpoint;
using hosn::keyd::v1::AuditRecord;

constexpr size_t kMaxRecoverBytes = size_t{1} << 31;
// An HSM error message is short; cap it so an entry stays one small line.
constexpr size_t kMaxFailureReasonBytes = 256;

absl::Status ErrnoError(std::string_view what) {
  return absl::InternalError(
      absl::StrCat("audit: ", std::string(what), ": ", std::strerror(errno)));
}

absl::Status WriteFully(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

struct AuditLog::Pending {
  AuditRecord record;
  bool done = false;
  // Set by the writer on failure. A plain string, not an absl::Status: a
  // Status shares its payload by a reference count that ThreadSanitizer
  // cannot see in Debian's uninstrumented Abseil, so the Status is built in
  // the appending thread instead.
  std::string error;
  uint64_t sequence = 0;
};

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const AuditLogOptions& options) {
  if (options.directory.empty() || options.replica_id.empty()) {
    return absl::InvalidArgumentError("audit: directory and replica id are required");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.directory, ec);
  if (ec) return absl::InternalError(absl::StrCat("audit: cannot create ", options.directory));
  ::chmod(options.directory.c_str(), 0700);

  auto log = std::unique_ptr<AuditLog>(new AuditLog(options));
  HOSN_RETURN_IF_ERROR(log->Recover());
  log->writer_ = std::thread([raw = log.get()] { raw->WriterLoop(); });
  return log;
}

AuditLog::~AuditLog() { (void)Close(); }

absl::Status AuditLog::Recover() {
  MutexLock write_lock(&write_mu_);
  head_sha256_ = std::string(kGenesisHash);
  const std::vector<uint64_t> files = ListLogFiles(options_.directory);
  uint64_t torn = 0;

  // Walk back from the newest file to the newest whole entry. Only the newest
  // file can have a torn tail: older files were complete before rotation.
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    const std::string path = absl::StrCat(options_.directory, "/", LogFileName(*it));
    HOSN_ASSIGN_OR_RETURN(std::string contents, ReadFile(path, kMaxRecoverBytes));
    if (it == files.rbegin() && !contents.empty() && contents.back() != '\n') {
      const size_t keep = contents.rfind('\n') == std::string::npos ? 0 : contents.rfind('\n') + 1;
      torn = contents.size() - keep;
      contents.resize(keep);
      if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) return ErrnoError("truncate");
    }
    if (contents.empty()) continue;

    // Check the chain inside this file and take its last entry as the head.
    std::string_view rest = contents;
    std::string previous;
    while (!rest.empty()) {
      const size_t newline = rest.find('\n');
      const std::string_view line = rest.substr(0, newline);
      rest.remove_prefix(newline + 1);
      auto record = ParseRecord(line);
      if (!record.ok()) {
        return absl::DataLossError(absl::StrCat("audit: unparsable entry in ", path));
      }
      if (!previous.empty() && record->previous_sha256() != previous) {
        return absl::DataLossError(
            absl::StrCat("audit: chain broken at entry ", record->sequence(), " in ", path));
      }
      if (record->sequence() <= last_sequence_ && last_sequence_ != 0) {
        return absl::DataLossError(absl::StrCat("audit: sequence out of order at entry ",
                                                record->sequence(), " in ", path));
      }
      last_sequence_ = record->sequence();
      previous = LineHash(line);
    }
    head_sha256_ = previous;
    break;
  }
  file_index_ = files.empty() ? 1 : files.back();

  // The newest checkpoint must not be ahead of the log: entries are durable
  // before a checkpoint names them, so a checkpoint past the end means the
  // log lost acknowledged entries.
  const std::string checkpoints = absl::StrCat(options_.directory, "/checkpoints.jsonl");
  if (std::filesystem::exists(checkpoints)) {
    HOSN_ASSIGN_OR_RETURN(std::string contents, ReadFile(checkpoints, kMaxRecoverBytes));
    const size_t end = contents.rfind('\n');
    if (end != std::string::npos) {
      const size_t start = contents.rfind('\n', end == 0 ? 0 : end - 1);
      const std::string_view line = std::string_view(contents).substr(
          start == std::string::npos || end == 0 ? 0 : start + 1,
          end - (start == std::string::npos || end == 0 ? 0 : start + 1));
      auto checkpoint = ParseCheckpoint(line);
      if (checkpoint.ok()) {
        if (checkpoint->sequence() > last_sequence_) {
          return absl::DataLossError(absl::StrCat("audit: log ends at entry ", last_sequence_,
                                                  " but a signed checkpoint covers ",
                                                  checkpoint->sequence()));
        }
        last_checkpoint_sequence_ = checkpoint->sequence();
      }
    }
  }

  HOSN_RETURN_IF_ERROR(OpenFileForAppend(file_index_));
  MutexLock lock(&mu_);
  stats_.last_sequence = last_sequence_;
  stats_.torn_tail_bytes = torn;
  return absl::OkStatus();
}

absl::Status AuditLog::OpenFileForAppend(uint64_t index) {
  const std::string path = absl::StrCat(options_.directory, "/", LogFileName(index));
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError(absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat");
  // A new file's directory entry must survive a crash too.
  UniqueFd dir(::open(options_.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) (void)::fsync(dir.get());
  file_ = std::move(fd);
  file_index_ = index;
  file_bytes_ = static_cast<uint64_t>(st.st_size);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> AuditLog::Append(AuditRecord record) {
  auto pending = std::make_shared<Pending>();
  pending->record = std::move(record);
  MutexLock lock(&mu_);
  if (!healthy_) return absl::UnavailableError("audit log unavailable: an earlier write failed");
  if (stopping_) return absl::UnavailableError("audit log closed");
  queue_.push_back(pending);
  changed_.notify_all();
  // `done` is written by the writer thread under mu_.
  changed_.wait(mu_, [&pending]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return pending->done; });
  if (!pending->error.empty()) return absl::UnavailableError(pending->error);
  return pending->sequence;
}

void AuditLog::WriterLoop() {
  while (true) {
    std::deque<std::shared_ptr<Pending>> batch;
    {
      MutexLock lock(&mu_);
      changed_.wait(
          mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      // A batch never spans more than one checkpoint interval, so no more
      // than twice the interval goes without a checkpoint or an
      // audit.checkpoint_failed entry (what the verifier enforces).
      const size_t limit = options_.checkpoint_interval > 0
                               ? static_cast<size_t>(options_.checkpoint_interval)
                               : queue_.size();
      while (!queue_.empty() && batch.size() < limit) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    absl::StatusOr<uint64_t> durable = WriteBatch(batch);
    const absl::Status status = durable.status();

    MutexLock lock(&mu_);
    if (status.ok()) {
      stats_.appended += batch.size();
      stats_.batches += 1;
      stats_.last_sequence = *durable;
    } else {
      healthy_ = false;
      stats_.write_failures += 1;
      stats_.healthy = false;
    }
    for (auto& pending : batch) {
      if (!status.ok()) {
        pending->error = absl::StrCat("audit log write failed: ", std::string(status.message()));
      }
      pending->done = true;
    }
    changed_.notify_all();
  }
}

absl::StatusOr<uint64_t> AuditLog::WriteBatch(std::deque<std::shared_ptr<Pending>>& batch) {
  MutexLock write_lock(&write_mu_);
  if (!file_.valid()) return absl::UnavailableError("audit log file not open");
  if (file_bytes_ >= options_.max_file_bytes) {
    HOSN_RETURN_IF_ERROR(OpenFileForAppend(file_index_ + 1));
  }
  std::vector<AuditRecord*> records;
  records.reserve(batch.size());
  for (auto& pending : batch) records.push_back(&pending->record);
  HOSN_RETURN_IF_ERROR(WriteRecordsLocked(std::move(records)));
  for (auto& pending : batch) pending->sequence = pending->record.sequence();

  // A due checkpoint that cannot be signed loses no entry: it is retried at
  // every batch, and once per interval the failure itself becomes an entry,
  // so the verifier can tell the outage from deleted checkpoint lines. If
  // that entry cannot be written, the batch fails like any failed write.
  if (options_.signer != nullptr && options_.checkpoint_interval > 0 &&
      last_sequence_ - last_checkpoint_sequence_ >= options_.checkpoint_interval) {
    const absl::Status signed_now = TryCheckpointLocked();
    const uint64_t marked = std::max(last_checkpoint_sequence_, last_failed_attempt_sequence_);
    if (!signed_now.ok() && last_sequence_ - marked >= options_.checkpoint_interval) {
      HOSN_RETURN_IF_ERROR(WriteCheckpointFailedLocked(signed_now));
    }
  }
  return last_sequence_;
}

absl::Status AuditLog::WriteRecordsLocked(std::vector<AuditRecord*> records) {
  // Number and chain every record, then one write and one fdatasync.
  std::string buffer;
  uint64_t sequence = last_sequence_;
  std::string head = head_sha256_;
  const std::string now = NowRfc3339();
  for (AuditRecord* record : records) {
    record->set_sequence(++sequence);
    record->set_time(now);
    record->set_replica_id(options_.replica_id);
    record->set_previous_sha256(head);
    HOSN_ASSIGN_OR_RETURN(std::string line, SerializeRecord(*record));
    head = LineHash(line);
    buffer.append(line);
    buffer.push_back('\n');
  }
  HOSN_RETURN_IF_ERROR(WriteFully(file_.get(), buffer));
  if (::fdatasync(file_.get()) != 0) return ErrnoError("fdatasync");
  file_bytes_ += buffer.size();
  last_sequence_ = sequence;
  head_sha256_ = head;
  return absl::OkStatus();
}

absl::Status AuditLog::WriteCheckpointFailedLocked(const absl::Status& why) {
  if (!file_.valid()) return absl::UnavailableError("audit log file not open");
  AuditRecord record;
  record.set_event(std::string(kCheckpointFailedEvent));
  record.set_actor("daemon");
  record.set_outcome("failed");
  record.set_reason(std::string(why.message().substr(0, kMaxFailureReasonBytes)));
  const auto add = [&record](std::string_view name, std::string value) {
    auto* attribute = record.add_attributes();
    attribute->set_name(std::string(name));
    attribute->set_value(std::move(value));
  };
  // What the checkpoint would have signed: the entry right before this one.
  add(kCheckpointFailedSequenceAttribute, absl::StrCat(last_sequence_));
  add(kCheckpointFailedHeadAttribute, head_sha256_);
  add("last_checkpoint_sequence", absl::StrCat(last_checkpoint_sequence_));
  const uint64_t attempted = last_sequence_;
  HOSN_RETURN_IF_ERROR(WriteRecordsLocked({&record}));
  last_failed_attempt_sequence_ = attempted;
  MutexLock lock(&mu_);
  stats_.checkpoint_failed_entries += 1;
  stats_.last_sequence = last_sequence_;
  return absl::OkStatus();
}

absl::Status AuditLog::TryCheckpointLocked() {
  if (last_sequence_ == 0 || last_sequence_ == last_checkpoint_sequence_) return absl::OkStatus();
  const absl::Status status = WriteCheckpointLocked();
  if (!status.ok()) {
    MutexLock lock(&mu_);
    stats_.checkpoint_failures += 1;
  }
  if (options_.on_checkpoint) options_.on_checkpoint(status);
  return status;
}

absl::Status AuditLog::WriteCheckpointLocked() {
  if (options_.signer == nullptr)
    return absl::FailedPreconditionError("audit: no checkpoint signer");
  if (last_sequence_ == 0 || last_sequence_ == last_checkpoint_sequence_) return absl::OkStatus();
  AuditCheckpoint checkpoint;
  checkpoint.set_replica_id(options_.replica_id);
  checkpoint.set_sequence(last_sequence_);
  checkpoint.set_head_sha256(head_sha256_);
  checkpoint.set_time(NowRfc3339());
  checkpoint.set_algorithm(options_.signer->algorithm());
  HOSN_ASSIGN_OR_RETURN(std::string signature,
                        options_.signer->Sign(CheckpointSignedBytes(checkpoint)));
  checkpoint.set_signature(signature);
  HOSN_ASSIGN_OR_RETURN(std::string line, SerializeCheckpoint(checkpoint));
  line.push_back('\n');

  const std::string path = absl::StrCat(options_.directory, "/checkpoints.jsonl");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("open checkpoints");
  HOSN_RETURN_IF_ERROR(WriteFully(fd.get(), line));
  if (::fdatasync(fd.get()) != 0) return ErrnoError("fdatasync checkpoints");
  last_checkpoint_sequence_ = last_sequence_;
  MutexLock lock(&mu_);
  stats_.checkpoints += 1;
  return absl::OkStatus();
}

absl::Status AuditLog::Checkpoint() {
  MutexLock write_lock(&write_mu_);
  if (options_.signer == nullptr)
    return absl::FailedPreconditionError("audit: no checkpoint signer");
  return TryCheckpointLocked();
}

absl::Status AuditLog::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    changed_.notify_all();
  }
  if (writer_.joinable()) writer_.join();
  MutexLock write_lock(&write_mu_);
  absl::Status status = absl::OkStatus();
  if (options_.signer != nullptr && healthy()) {
    status = TryCheckpointLocked();
    // The log ends unsigned: say so in it, so the verifier reports the
    // tail as an outage. Best effort; the signing error is what we return.
    if (!status.ok()) (void)WriteCheckpointFailedLocked(status);
  }
  file_.Reset();
  return status;
}

bool AuditLog::healthy() const {
  MutexLock lock(&mu_);
  return healthy_;
}

AuditLogStats AuditLog::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace hosn::audit
