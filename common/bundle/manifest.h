// The bundle manifest: parsing, validation and canonical serialization
// (docs/bundle-format.md, "Manifest").
//
// The manifest is a hosn.keyd.v1.BundleManifest written as JSON by the
// protobuf JSON printer with fixed options. ParseManifest accepts only that
// canonical form: the bytes must equal the re-serialization of what they
// parse to, so duplicate keys, unknown fields, comments, other spacing or
// number forms are all refused, and there is exactly one byte string per
// manifest. Every path rule (path_rules.h) and every encryption parameter is
// checked while parsing, before the caller opens any file.
//
// Stateless and thread-safe.
#ifndef HOSN_COMMON_BUNDLE_MANIFEST_H_
#define HOSN_COMMON_BUNDLE_MANIFEST_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hosn/keyd/v1/manifest.pb.h"

namespace hosn::bundle {

using ::hosn::keyd::v1::BundleFile;
using ::hosn::keyd::v1::BundleManifest;

inline constexpr uint32_t kManifestFormatVersion = 1;
inline constexpr size_t kMaxManifestBytes = 64u << 20;
inline constexpr std::string_view kAeadName = "AES-256-GCM";
inline constexpr std::string_view kKdfName = "HKDF-SHA256";
inline constexpr std::string_view kKeyWrapName = "AES-256-KWP";

// Checks a manifest's content: version, identity, algorithms, segment size,
// wrapped DEK, digests, sort order and path rules. InvalidArgument with the
// named error of the first failed rule.
absl::Status ValidateManifest(const BundleManifest& manifest);

// The canonical bytes of a valid manifest. InvalidArgument if it is not.
absl::StatusOr<std::string> SerializeManifest(const BundleManifest& manifest);

// Parses and validates canonical manifest bytes. InvalidArgument with
// manifest_too_large, manifest_not_json, manifest_not_canonical or a
// validation error.
absl::StatusOr<BundleManifest> ParseManifest(std::string_view bytes);

}  // namespace hosn::bundle

#endif  // HOSN_COMMON_BUNDLE_MANIFEST_H_
