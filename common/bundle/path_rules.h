// The rules a file path inside a bundle must follow (docs/bundle-format.md,
// "Paths"). They are enforced while the manifest is parsed, before any file
// is opened, and again by pack on the model directory.
//
// A path is relative, "/"-separated, valid UTF-8 in Unicode NFC, at most
// 4096 bytes with components of at most 255 bytes, and has no empty, "." or
// ".." component, no NUL, control character or backslash. A set of paths
// has no duplicates, no two paths equal after Unicode case folding, and no
// path that is also a directory of another. The top-level name
// ".hosn-staging" is reserved for decryption.
//
// Stateless and thread-safe. Failures are InvalidArgument with a named
// error (see errors.h): path_empty, path_too_long, path_invalid_utf8,
// path_not_nfc, path_absolute, path_empty_component, path_traversal,
// path_bad_character, path_reserved, path_duplicate, path_case_collision,
// path_prefix_conflict.
#ifndef HOSN_COMMON_BUNDLE_PATH_RULES_H_
#define HOSN_COMMON_BUNDLE_PATH_RULES_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace hosn::bundle {

inline constexpr std::string_view kStagingDirName = ".hosn-staging";

// Checks one path.
absl::Status ValidateBundlePath(std::string_view path);

// Checks every path, then the set rules (duplicates, case folding,
// file-versus-directory conflicts).
absl::Status ValidateBundlePathSet(const std::vector<std::string>& paths);

}  // namespace hosn::bundle

#endif  // HOSN_COMMON_BUNDLE_PATH_RULES_H_
