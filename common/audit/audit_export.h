// export.json of `hosnctl audit export`: the daemon's anchor checkpoint
// (sequence and head hash) and its checkpoint interval, which `hosnctl audit
// verify` takes as defaults (docs/audit-log.md). The file sits beside the
// exported log, so verify reads it as untrusted bytes. Stateless and
// thread-safe.
#ifndef HOSN_COMMON_AUDIT_AUDIT_EXPORT_H_
#define HOSN_COMMON_AUDIT_AUDIT_EXPORT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hosn::audit {

struct AuditExportMeta {
  uint64_t anchor_sequence = 0;  // 0: no anchor
  std::string anchor_sha256;     // hex, as the daemon reported it
  uint64_t checkpoint_interval = 0;

  bool operator==(const AuditExportMeta&) const = default;
};

// The export.json text for `meta` (one line, with its newline).
std::string SerializeAuditExportMeta(const AuditExportMeta& meta);

// Parses export.json. Missing fields keep their defaults and other fields
// are ignored. InvalidArgument if the text is not a JSON object, if
// anchor_sequence or checkpoint_interval is not a whole number from 0 to 2^53
// (JSON numbers are doubles), or if anchor_sha256 is neither empty nor 64
// lowercase hex digits.
absl::StatusOr<AuditExportMeta> ParseAuditExportMeta(std::string_view json);

}  // namespace hosn::audit

#endif  // HOSN_COMMON_AUDIT_AUDIT_EXPORT_H_
