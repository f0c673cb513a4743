// Named errors of the bundle format.
//
// Every way a bundle can be refused has one stable name, listed in
// docs/bundle-format.md. A refusal is an absl::Status whose message starts
// with that name followed by ": " and a short detail naming the object, e.g.
// "path_traversal: w/../../etc/hostname". Tests and operators match on the
// name; the detail is for humans. Names never change meaning once released.
//
// Stateless and thread-safe.
#ifndef HOSN_COMMON_BUNDLE_ERRORS_H_
#define HOSN_COMMON_BUNDLE_ERRORS_H_

#include <string_view>

#include "absl/status/status.h"

namespace hosn::bundle {

// A status with `code` and the message "<name>: <detail>".
absl::Status BundleError(absl::StatusCode code, std::string_view name, std::string_view detail);

// The name of a bundle error (the message up to the first ':'), or "" when
// `status` is OK or not a bundle error.
std::string_view BundleErrorName(const absl::Status& status);

}  // namespace hosn::bundle

#endif  // HOSN_COMMON_BUNDLE_ERRORS_H_
