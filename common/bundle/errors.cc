#include "common/bundle/errors.h"

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"

namespace hosn::bundle {

absl::Status BundleError(absl::StatusCode code, std::string_view name, std::string_view detail) {
  return absl::Status(code, absl::StrCat(ToAbsl(name), ": ", ToAbsl(detail)));
}

std::string_view BundleErrorName(const absl::Status& status) {
  std::string_view message = FromAbsl(status.message());
  size_t colon = message.find(':');
  if (status.ok() || colon == std::string_view::npos) return {};
  std::string_view name = message.substr(0, colon);
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9'))) return {};
  }
  return name;
}

}  // namespace hosn::bundle
