// libFuzzer target: ParseAuditExportMeta, hosnctl audit verify's parse of the
// export.json that sits beside an exported log (untrusted).
// Invariant: what parses, SerializeAuditExportMeta (the exporter) writes back
// as text that parses to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/audit/audit_export.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<hosn::audit::AuditExportMeta> meta = hosn::audit::ParseAuditExportMeta(json);
  if (!meta.ok()) {
    if (meta.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  absl::StatusOr<hosn::audit::AuditExportMeta> again =
      hosn::audit::ParseAuditExportMeta(hosn::audit::SerializeAuditExportMeta(*meta));
  if (!again.ok() || *again != *meta) std::abort();
  return 0;
}
