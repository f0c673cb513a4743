#include "common/bundle/manifest.h"

#include <google/protobuf/util/json_util.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "common/bundle/errors.h"
#include "common/bundle/path_rules.h"
#include "common/bundle/segment.h"

namespace hosn::bundle {
namespace {

constexpr size_t kWrappedDekSize = 40;  // RFC 5649 of a 32-byte key.
constexpr int kMaxFiles = 1 << 20;

absl::Status Invalid(std::string_view name, std::string_view detail) {
  return BundleError(absl::StatusCode::kInvalidArgument, name, detail);
}

bool IsLowerHexDigest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::string> PrintCanonical(const BundleManifest& manifest) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(manifest, &out, options);
  if (!status.ok()) return absl::InternalError("manifest: json printer failed");
  return out;
}

}  // namespace

absl::Status ValidateManifest(const BundleManifest& manifest) {
  // 1. Version first: a later version may change everything below.
  if (manifest.format_version() != kManifestFormatVersion) {
    return Invalid("unsupported_version", absl::StrCat(manifest.format_version()));
  }

  // 2. Identity and creation time.
  if (manifest.model().name().empty()) return Invalid("missing_field", "model.name");
  if (manifest.model().version().empty()) return Invalid("missing_field", "model.version");
  absl::Time created;
  std::string error;
  if (manifest.created_at().size() != 20 || manifest.created_at().back() != 'Z' ||
      !absl::ParseTime(absl::RFC3339_sec, manifest.created_at(), &created, &error)) {
    return Invalid("bad_created_at", manifest.created_at());
  }

  // 3. Encryption parameters: fixed names for version 1.
  const auto& enc = manifest.encryption();
  if (enc.aead() != kAeadName) return Invalid("bad_algorithm", "encryption.aead");
  if (enc.kdf() != kKdfName) return Invalid("bad_algorithm", "encryption.kdf");
  if (enc.key_wrap() != kKeyWrapName) return Invalid("bad_algorithm", "encryption.key_wrap");
  if (enc.segment_size() < kMinSegmentSize || enc.segment_size() > kMaxSegmentSize) {
    return Invalid("bad_segment_size", absl::StrCat(enc.segment_size()));
  }
  if (enc.wrapped_dek().size() != kWrappedDekSize) {
    return Invalid("bad_wrapped_dek", "encryption.wrapped_dek");
  }
  if (enc.kek_label().empty()) return Invalid("missing_field", "encryption.kek_label");

  // 4. Files: digests, order, then the path rules over the whole set.
  if (manifest.files_size() > kMaxFiles) return Invalid("too_many_files", "files");
  std::vector<std::string> paths;
  paths.reserve(manifest.files_size());
  for (const BundleFile& file : manifest.files()) {
    if (!IsLowerHexDigest(file.sha256()) || !IsLowerHexDigest(file.tags_sha256())) {
      return Invalid("bad_digest", file.path());
    }
    if (!paths.empty() && !(paths.back() < file.path())) {
      // Equal neighbours are duplicates; report them as such.
      if (paths.back() == file.path()) return Invalid("path_duplicate", file.path());
      return Invalid("files_not_sorted", file.path());
    }
    paths.push_back(file.path());
  }
  return ValidateBundlePathSet(paths);
}

absl::StatusOr<std::string> SerializeManifest(const BundleManifest& manifest) {
  HOSN_RETURN_IF_ERROR(ValidateManifest(manifest));
  return PrintCanonical(manifest);
}

absl::StatusOr<BundleManifest> ParseManifest(std::string_view bytes) {
  if (bytes.size() > kMaxManifestBytes) return Invalid("manifest_too_large", "manifest");
  BundleManifest manifest;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(bytes.data(), bytes.size()), &manifest, options);
  if (!status.ok()) return Invalid("manifest_not_json", "manifest");

  // Canonical form: exactly the printer's bytes, nothing else.
  HOSN_ASSIGN_OR_RETURN(std::string canonical, PrintCanonical(manifest));
  if (canonical != bytes) return Invalid("manifest_not_canonical", "manifest");

  HOSN_RETURN_IF_ERROR(ValidateManifest(manifest));
  return manifest;
}

}  // namespace hosn::bundle
