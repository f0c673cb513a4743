// Model bundles on disk: pack a model directory, verify a bundle, decrypt it
// into tmpfs (docs/bundle-format.md).
//
// A bundle is a directory holding manifest.json (canonical JSON, see
// manifest.h), manifest.json.p7s (detached CMS, see signature.h) and data/,
// which mirrors the manifest's paths with one encrypted file each
// (segment.h). Nothing else may be in it.
//
// Every file is opened beneath the directory's descriptor, one component at a
// time with O_NOFOLLOW; symlinks, devices, FIFOs and sockets are refused,
// never followed or opened. Work is spread over threads (whole files, and
// runs of segments of one file when digests are not needed per file); each
// call owns its threads and joins them before returning. Progress counters
// are the only shared state and are atomic.
//
// The functions are thread-compatible: concurrent calls must use different
// output directories.
#ifndef HOSN_COMMON_BUNDLE_BUNDLE_H_
#define HOSN_COMMON_BUNDLE_BUNDLE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"
#include "common/bundle/manifest.h"
#include "common/bundle/signature.h"

namespace hosn::bundle {

inline constexpr std::string_view kManifestFileName = "manifest.json";
inline constexpr std::string_view kSignatureFileName = "manifest.json.p7s";
inline constexpr std::string_view kDataDirName = "data";

// Bytes done out of bytes to do; set by the library, read by a UI thread.
struct Progress {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> total{0};
};

struct PackOptions {
  std::string model_name;
  std::string model_version;
  uint32_t segment_size = 1u << 20;
  std::string wrapped_dek;  // RFC 5649 wrap of the DEK under the KEK (40 bytes)
  std::string kek_label;
  std::string kek_id;
  int threads = 0;  // 0: one per core
  Progress* progress = nullptr;
  std::optional<int64_t> created_at;  // seconds since the epoch; nullopt: now
};

// Encrypts every regular file below `model_dir` into a new bundle directory
// `bundle_dir` (which must not exist), writes and signs the manifest.
// InvalidArgument with a path_* error or special_file for a model directory
// that breaks the path rules or holds a symlink or special file;
// AlreadyExists if `bundle_dir` exists; signer errors are passed through. On
// failure `bundle_dir` is removed.
absl::StatusOr<BundleManifest> PackBundle(const std::string& model_dir,
                                          const std::string& bundle_dir, const SecretBytes& dek,
                                          const PackOptions& options, ManifestSigner& signer);

struct VerifiedBundle {
  std::string dir;
  VerifiedManifest verified;
};

// Verifies the signature, parses the manifest, then checks that the bundle
// holds exactly the listed files (both ways) and that each has the exact
// encrypted size, a valid header and the signed tag digest. Needs no key.
// Signature and manifest errors as in signature.h and manifest.h; then
// file_missing, file_unlisted, special_file, ciphertext_size_mismatch,
// header_*, tags_digest_mismatch.
absl::StatusOr<VerifiedBundle> VerifyBundle(const std::string& bundle_dir,
                                            const TrustOptions& trust,
                                            Progress* progress = nullptr);

// Reads manifest.json and parses it without checking the signature (for
// `inspect`); the bytes are returned too.
absl::StatusOr<BundleManifest> ReadUnverifiedManifest(const std::string& bundle_dir);

struct DecryptOptions {
  // Also hash every plaintext and compare with the manifest. Off, integrity
  // rests on the GCM tags and the signed tag digests (see the spec).
  bool check_plaintext_digests = true;
  int threads = 0;  // 0: one per core
  Progress* progress = nullptr;
};

// Decrypts a verified bundle into `target_dir`. The target's parent must be
// on tmpfs or ramfs; the target must not exist (it is created with mode
// 0700) or be an empty directory with mode 0700 owned by us on tmpfs or
// ramfs (a mount the agent prepared). Files are written into a staging
// directory and moved to their final names only after every segment tag and
// digest checked. On any failure everything written is removed (and the
// target too, if this call created it). FailedPrecondition target_not_tmpfs
// or target_not_empty; AlreadyExists target_exists; DataLoss with the
// segment error; InvalidArgument if the DEK is not 32 bytes.
absl::Status DecryptBundle(const VerifiedBundle& bundle, const SecretBytes& dek,
                           const std::string& target_dir, const DecryptOptions& options);

}  // namespace hosn::bundle

#endif  // HOSN_COMMON_BUNDLE_BUNDLE_H_
