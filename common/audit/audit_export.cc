#include "common/audit/audit_export.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace hosn::audit {
namespace {

// JSON numbers arrive as doubles; above 2^53 they are no longer exact.
constexpr double kMaxExactInteger = 9007199254740992.0;

// The whole number `name` in `meta`, or 0 if absent. InvalidArgument for a
// value that is not a number, negative, fractional or above 2^53.
absl::StatusOr<uint64_t> MetaNumber(const google::protobuf::Struct& meta, const std::string& name) {
  auto it = meta.fields().find(name);
  if (it == meta.fields().end()) return 0;
  const double value = it->second.number_value();
  if (!it->second.has_number_value() || !(value >= 0 && value <= kMaxExactInteger) ||
      value != std::floor(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("export.json: ", name, " is not a whole number from 0 to 2^53"));
  }
  return static_cast<uint64_t>(value);
}

bool IsLowerHexSha256(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

std::string SerializeAuditExportMeta(const AuditExportMeta& meta) {
  return absl::StrCat("{\"anchor_sequence\":", meta.anchor_sequence, ",\"anchor_sha256\":\"",
                      meta.anchor_sha256, "\",\"checkpoint_interval\":", meta.checkpoint_interval,
                      "}\n");
}

absl::StatusOr<AuditExportMeta> ParseAuditExportMeta(std::string_view json) {
  google::protobuf::Struct meta;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(json.data(), json.size()), &meta)
           .ok()) {
    return absl::InvalidArgumentError("export.json: not JSON");
  }
  AuditExportMeta out;
  HOSN_ASSIGN_OR_RETURN(out.checkpoint_interval, MetaNumber(meta, "checkpoint_interval"));
  HOSN_ASSIGN_OR_RETURN(out.anchor_sequence, MetaNumber(meta, "anchor_sequence"));
  if (auto it = meta.fields().find("anchor_sha256"); it != meta.fields().end()) {
    out.anchor_sha256 = it->second.string_value();
    if (!it->second.has_string_value() ||
        (!out.anchor_sha256.empty() && !IsLowerHexSha256(out.anchor_sha256))) {
      return absl::InvalidArgumentError(
          "export.json: anchor_sha256 is not 64 lowercase hex digits");
    }
  }
  return out;
}

}  // namespace hosn::audit
