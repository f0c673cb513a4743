// Where the API layer writes its audit entries, and the note a handler fills
// in about its decision.
//
// Every audited RPC ends with exactly one AuditSink::Append, made on the
// handler's thread after the handler decided and before the reply is sent.
// Append returns only once the entry is durable; if it fails, the caller gets
// UNAVAILABLE instead of its answer (a key is never released unrecorded).
// The daemon's sink is the hash-chained AuditLog (server/audit/audit_log.h);
// the sequence, time, replica and chain fields are filled in there.
//
// Thread safety: Append is called from many threads at once.
#ifndef HOSN_SERVER_API_AUDIT_SINK_H_
#define HOSN_SERVER_API_AUDIT_SINK_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/audit_record.pb.h"

namespace hosn::api {

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Durable on OK; returns the entry's sequence number.
  virtual absl::StatusOr<uint64_t> Append(keyd::v1::AuditRecord record) = 0;
};

// Facts a handler records about its decision. Never a secret: names, labels,
// versions, digests.
class AuditNote {
 public:
  void Add(std::string_view name, std::string_view value) {
    attributes_.emplace_back(std::string(name), std::string(value));
  }
  const std::vector<std::pair<std::string, std::string>>& attributes() const { return attributes_; }
  // The audit entry's sequence number, once appended (0 before).
  uint64_t sequence() const { return sequence_; }
  void set_sequence(uint64_t sequence) { sequence_ = sequence; }

 private:
  std::vector<std::pair<std::string, std::string>> attributes_;
  uint64_t sequence_ = 0;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_AUDIT_SINK_H_
