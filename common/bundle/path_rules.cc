#include "common/bundle/path_rules.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_split.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "common/bundle/errors.h"

namespace hosn::bundle {
namespace {

constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxComponentBytes = 255;

absl::Status PathError(std::string_view name, std::string_view path) {
  return BundleError(absl::StatusCode::kInvalidArgument, name, path);
}

bool IsValidUtf8(std::string_view s) {
  int32_t i = 0;
  const int32_t length = static_cast<int32_t>(s.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(s.data());
  while (i < length) {
    UChar32 c;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) return false;
  }
  return true;
}

// NFC, then full Unicode case folding: two paths that are equal here name the
// same file on a case-insensitive or normalising file system.
std::string FoldedKey(std::string_view path) {
  UErrorCode error = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  icu::UnicodeString text = icu::UnicodeString::fromUTF8(
      icu::StringPiece(path.data(), static_cast<int32_t>(path.size())));
  text.foldCase();
  icu::UnicodeString normalized = nfc->normalize(text, error);
  std::string out;
  (U_SUCCESS(error) ? normalized : text).toUTF8String(out);
  return out;
}

}  // namespace

absl::Status ValidateBundlePath(std::string_view path) {
  if (path.empty()) return PathError("path_empty", "\"\"");
  if (path.size() > kMaxPathBytes) return PathError("path_too_long", path.substr(0, 64));
  if (!IsValidUtf8(path)) return PathError("path_invalid_utf8", "(not printable)");
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return PathError("path_bad_character", path);
  }
  if (path.front() == '/') return PathError("path_absolute", path);

  UErrorCode error = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  icu::UnicodeString text = icu::UnicodeString::fromUTF8(
      icu::StringPiece(path.data(), static_cast<int32_t>(path.size())));
  if (U_FAILURE(error) || !nfc->isNormalized(text, error) || U_FAILURE(error)) {
    return PathError("path_not_nfc", path);
  }

  std::vector<absl::string_view> parts = absl::StrSplit(ToAbsl(path), '/');
  for (absl::string_view part : parts) {
    if (part.empty()) return PathError("path_empty_component", path);
    if (part == "." || part == "..") return PathError("path_traversal", path);
    if (part.size() > kMaxComponentBytes) return PathError("path_too_long", path);
  }
  if (parts.front() == ToAbsl(kStagingDirName)) return PathError("path_reserved", path);
  return absl::OkStatus();
}

absl::Status ValidateBundlePathSet(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) HOSN_RETURN_IF_ERROR(ValidateBundlePath(path));

  std::set<std::string> exact;
  std::set<std::string> folded;
  for (const std::string& path : paths) {
    if (!exact.insert(path).second) return PathError("path_duplicate", path);
    if (!folded.insert(FoldedKey(path)).second) return PathError("path_case_collision", path);
  }
  // A path that is a proper prefix of another at a "/" would have to be both
  // a file and a directory. In byte order "a" sorts before "a/b"; any entry
  // between them starts with "a" followed by a byte below '/', so checking
  // every later neighbour until the prefix no longer matches is enough.
  for (auto it = exact.begin(); it != exact.end(); ++it) {
    std::string dir = *it + "/";
    for (auto next = std::next(it); next != exact.end() && next->compare(0, it->size(), *it) == 0;
         ++next) {
      if (next->compare(0, dir.size(), dir) == 0) return PathError("path_prefix_conflict", *next);
    }
  }
  // The same conflict after case folding ("A" and "a/b").
  for (auto it = folded.begin(); it != folded.end(); ++it) {
    std::string dir = *it + "/";
    for (auto next = std::next(it); next != folded.end() && next->compare(0, it->size(), *it) == 0;
         ++next) {
      if (next->compare(0, dir.size(), dir) == 0) return PathError("path_prefix_conflict", *next);
    }
  }
  return absl::OkStatus();
}

}  // namespace hosn::bundle
