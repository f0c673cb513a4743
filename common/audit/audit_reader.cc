#include "common/audit/audit_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/audit/audit_format.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"

namespace hosn::audit {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;
constexpr size_t kMaxLineBytes = size_t{16} << 20;
constexpr size_t kMaxCheckpointFileBytes = size_t{1} << 31;

std::string PathOf(const std::string& dir, uint64_t index) {
  return absl::StrCat(dir, "/", LogFileName(index));
}

// Up to `max` bytes of `path` from `offset`; empty at the end or if the file
// does not exist.
absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset, size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::string();
    return absl::InternalError(absl::StrCat("audit: open ", path, ": ", std::strerror(errno)));
  }
  std::string data(max, '\0');
  size_t got = 0;
  while (got < max) {
    const ssize_t n =
        ::pread(fd.get(), data.data() + got, max - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(absl::StrCat("audit: read ", path, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

// The first whole line of `rest` without its newline; nullopt if none.
std::optional<std::string_view> WholeLine(std::string_view rest) {
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  return rest.substr(0, newline);
}

// The sequence number of the first whole line of file `index` (0 if none).
uint64_t FirstSequence(const std::string& dir, uint64_t index) {
  absl::StatusOr<std::string> head = ReadAt(PathOf(dir, index), 0, kChunkBytes);
  if (!head.ok()) return 0;
  const size_t newline = head->find('\n');
  if (newline == std::string::npos) return 0;
  auto record = ParseRecord(std::string_view(*head).substr(0, newline));
  return record.ok() ? record->sequence() : 0;
}

}  // namespace

std::string LogFileName(uint64_t index) { return absl::StrFormat("audit-%06d.jsonl", index); }

std::vector<uint64_t> ListLogFiles(const std::string& dir) {
  std::vector<uint64_t> indices;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    unsigned long long index = 0;
    char tail[8] = {};
    if (name.size() == 18 && std::sscanf(name.c_str(), "audit-%6llu.%5s", &index, tail) == 2 &&
        std::string(tail) == "jsonl") {
      indices.push_back(index);
    }
  }
  std::sort(indices.begin(), indices.end());
  return indices;
}

absl::StatusOr<std::optional<StoredCheckpoint>> ReadLatestCheckpoint(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/checkpoints.jsonl");
  if (!std::filesystem::exists(path)) return std::optional<StoredCheckpoint>();
  HOSN_ASSIGN_OR_RETURN(std::string contents, ReadFile(path, kMaxCheckpointFileBytes));
  const size_t end = contents.rfind('\n');
  if (end == std::string::npos) return std::optional<StoredCheckpoint>();
  const size_t previous = end == 0 ? std::string::npos : contents.rfind('\n', end - 1);
  const size_t start = previous == std::string::npos ? 0 : previous + 1;
  StoredCheckpoint stored;
  stored.line = contents.substr(start, end - start);
  auto parsed = ParseCheckpoint(stored.line);
  if (!parsed.ok()) return absl::InvalidArgumentError("audit: newest checkpoint unparsable");
  stored.checkpoint = *std::move(parsed);
  return std::optional<StoredCheckpoint>(std::move(stored));
}

AuditLogReader::AuditLogReader(std::string directory, uint64_t from_sequence)
    : directory_(std::move(directory)),
      from_sequence_(std::max<uint64_t>(from_sequence, 1)),
      next_sequence_(from_sequence_) {}

absl::Status AuditLogReader::Position() {
  const std::vector<uint64_t> files = ListLogFiles(directory_);
  if (files.empty()) return absl::OkStatus();  // nothing written yet
  // The last file whose first entry is at or before from_sequence.
  file_index_ = files.front();
  for (uint64_t index : files) {
    const uint64_t first = FirstSequence(directory_, index);
    if (first == 0 || first > from_sequence_) break;
    file_index_ = index;
  }
  file_offset_ = 0;
  positioned_ = true;
  return absl::OkStatus();
}

absl::Status AuditLogReader::ReadEntries(
    uint64_t up_to, const std::function<bool(uint64_t, std::string_view)>& entry, bool& stopped) {
  size_t chunk = kChunkBytes;
  while (!stopped) {
    if (!positioned_) {
      HOSN_RETURN_IF_ERROR(Position());
      if (!positioned_) return absl::OkStatus();
    }
    const std::string path = PathOf(directory_, file_index_);
    HOSN_ASSIGN_OR_RETURN(std::string data, ReadAt(path, file_offset_, chunk));
    std::string_view rest = data;
    bool progressed = false;
    while (std::optional<std::string_view> line = WholeLine(rest)) {
      auto record = ParseRecord(*line);
      if (!record.ok()) {
        return absl::DataLossError(absl::StrCat("audit: unparsable entry in ", path));
      }
      const uint64_t sequence = record->sequence();
      if (sequence > up_to) return absl::OkStatus();  // not durable yet: later
      if (sequence >= from_sequence_ && sequence != next_sequence_) {
        return absl::DataLossError(absl::StrCat("audit: expected entry ", next_sequence_,
                                                ", found ", sequence, " in ", path));
      }
      rest.remove_prefix(line->size() + 1);
      file_offset_ += line->size() + 1;
      progressed = true;
      if (sequence < from_sequence_) continue;
      ++next_sequence_;
      if (!entry(sequence, *line)) {
        stopped = true;
        return absl::OkStatus();
      }
    }
    if (progressed) {
      chunk = kChunkBytes;
      continue;
    }
    if (data.size() == chunk) {  // one line longer than the chunk
      if (chunk >= kMaxLineBytes) return absl::DataLossError("audit: entry line too long");
      chunk *= 2;
      continue;
    }
    // End of this file: move on only if a newer file exists, and only from
    // a whole file (the writer finishes a file before starting the next).
    const std::vector<uint64_t> files = ListLogFiles(directory_);
    auto next = std::upper_bound(files.begin(), files.end(), file_index_);
    if (next == files.end()) return absl::OkStatus();
    if (!data.empty()) {
      return absl::DataLossError(absl::StrCat("audit: torn line inside rotated file ", path));
    }
    file_index_ = *next;
    file_offset_ = 0;
  }
  return absl::OkStatus();
}

absl::Status AuditLogReader::ReadCheckpoints(
    const std::function<bool(std::string_view)>& checkpoint, bool& stopped) {
  const std::string path = absl::StrCat(directory_, "/checkpoints.jsonl");
  while (!stopped) {
    HOSN_ASSIGN_OR_RETURN(std::string data, ReadAt(path, checkpoint_offset_, kChunkBytes));
    std::string_view rest = data;
    bool progressed = false;
    while (std::optional<std::string_view> line = WholeLine(rest)) {
      auto parsed = ParseCheckpoint(*line);
      if (!parsed.ok()) return absl::DataLossError("audit: unparsable checkpoint line");
      if (parsed->sequence() > last_sequence()) return absl::OkStatus();
      rest.remove_prefix(line->size() + 1);
      checkpoint_offset_ += line->size() + 1;
      progressed = true;
      if (parsed->sequence() < from_sequence_) continue;
      if (!checkpoint(*line)) {
        stopped = true;
        return absl::OkStatus();
      }
    }
    if (!progressed) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status AuditLogReader::Read(
    uint64_t up_to, const std::function<bool(uint64_t sequence, std::string_view line)>& entry,
    const std::function<bool(std::string_view line)>& checkpoint) {
  bool stopped = false;
  HOSN_RETURN_IF_ERROR(ReadEntries(up_to, entry, stopped));
  if (stopped) return absl::OkStatus();
  return ReadCheckpoints(checkpoint, stopped);
}

}  // namespace hosn::audit
