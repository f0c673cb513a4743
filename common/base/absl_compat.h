// Bridges between the standard library and Debian 12's Abseil.
//
// Debian builds Abseil 20220623 with ABSL_OPTION_USE_STD_STRING_VIEW=0, so
// absl::string_view is a distinct type from std::string_view and the two do
// not convert implicitly. Project APIs take std::string_view; call sites that
// hand one to Abseil (StrCat, StartsWith, StrSplit...) wrap it in ToAbsl().
#ifndef HOSN_COMMON_BASE_ABSL_COMPAT_H_
#define HOSN_COMMON_BASE_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace hosn {

inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view FromAbsl(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace hosn

#endif  // HOSN_COMMON_BASE_ABSL_COMPAT_H_
