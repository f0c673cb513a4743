// Segmented AES-256-GCM for model files: the encrypted file format of a
// bundle (docs/bundle-format.md, "Encrypted file").
//
// An encrypted file is a 48-byte header followed by segments. Each segment is
// at most `segment_size` plaintext bytes sealed with AES-256-GCM and a 16-byte
// tag. The key and a 7-byte nonce prefix come from HKDF-SHA256 over the DEK,
// salted with the header's random salt and bound to the file's bundle path;
// the nonce ends with the segment index and a final-segment flag; every
// segment authenticates the whole header as AAD. Reordering, duplicating,
// dropping or appending segments, truncating at a boundary, and moving a file
// to another path all fail authentication.
//
// SegmentCipher holds one file's derived key and is immutable after Create():
// its methods are safe to call from several threads at once. The stream
// helpers below use only their arguments and are thread-compatible.
#ifndef HOSN_COMMON_BUNDLE_SEGMENT_H_
#define HOSN_COMMON_BUNDLE_SEGMENT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"

namespace hosn::bundle {

inline constexpr size_t kFileHeaderSize = 48;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kSaltSize = 32;
inline constexpr size_t kDekSize = 32;
inline constexpr uint32_t kSegmentFormatVersion = 1;
inline constexpr uint32_t kMinSegmentSize = 256;
inline constexpr uint32_t kMaxSegmentSize = 64u << 20;
inline constexpr uint32_t kDefaultSegmentSize = 1u << 20;

// One AES-256-GCM operation with a 12-byte nonce and a 16-byte tag appended
// to the ciphertext. InvalidArgument if the key is not 32 bytes, the nonce
// not 12, or `out` has the wrong size (plaintext + 16 for Seal, ciphertext -
// 16 for Open, which also refuses inputs shorter than a tag). Open returns
// DataLoss ("segment_auth_failed") on a wrong tag; `out` then holds no
// plaintext (it is zeroed).
absl::Status AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                        std::span<uint8_t> out);
absl::Status AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> sealed,
                        std::span<uint8_t> out);

// The 48-byte header: magic "HOSNSEG\0", version, segment size, salt.
struct FileHeader {
  uint32_t segment_size = kDefaultSegmentSize;
  std::array<uint8_t, kSaltSize> salt{};

  std::array<uint8_t, kFileHeaderSize> Encode() const;
  // DataLoss with header_bad_magic, header_bad_version or bad_segment_size.
  static absl::StatusOr<FileHeader> Parse(std::span<const uint8_t> bytes);
};

// Number of segments of a file of `plaintext_size` bytes (at least one: an
// empty file is one empty final segment) and the exact encrypted size.
uint64_t SegmentCount(uint64_t plaintext_size, uint32_t segment_size);
uint64_t CiphertextSize(uint64_t plaintext_size, uint32_t segment_size);

// One file's key, derived from the DEK, the header and the bundle path.
class SegmentCipher {
 public:
  // InvalidArgument if the DEK is not 32 bytes.
  static absl::StatusOr<std::unique_ptr<SegmentCipher>> Create(const SecretBytes& dek,
                                                               std::string_view path,
                                                               const FileHeader& header);

  // Seals segment `index`; `out` is plaintext.size() + 16 bytes.
  absl::Status Seal(uint64_t index, bool final, std::span<const uint8_t> plaintext,
                    std::span<uint8_t> out) const;
  // Opens segment `index`; `out` is sealed.size() - 16 bytes. DataLoss
  // segment_auth_failed on any mismatch (key, index, final flag, header, bytes).
  absl::Status Open(uint64_t index, bool final, std::span<const uint8_t> sealed,
                    std::span<uint8_t> out) const;

 private:
  SegmentCipher() = default;
  std::array<uint8_t, 12> Nonce(uint64_t index, bool final) const;

  SecretBytes key_;
  std::array<uint8_t, 7> nonce_prefix_{};
  std::array<uint8_t, kFileHeaderSize> header_{};
};

// What packing learned about one file.
struct SealedFileInfo {
  uint64_t size = 0;
  std::string sha256_hex;       // of the plaintext
  std::string tags_sha256_hex;  // of header || tag_0 || ... || tag_{n-1}
};

// Reads `in_fd` to its end and writes the encrypted file to `out_fd`
// (sequential writes). Memory: two segments plus their tags. `progress`, if
// set, is increased by each plaintext byte read. Internal on I/O errors.
absl::StatusOr<SealedFileInfo> SealStream(int in_fd, int out_fd, const SecretBytes& dek,
                                          std::string_view path, uint32_t segment_size,
                                          std::atomic<uint64_t>* progress);

// What the reader expects of one encrypted file, from the signed manifest.
struct ExpectedFile {
  std::string path;
  uint64_t size = 0;
  uint32_t segment_size = 0;
  std::string sha256_hex;       // empty: do not hash the plaintext
  std::string tags_sha256_hex;  // empty: do not check the tag digest
};

// Checks an encrypted file without the key: exact size, header, and the tag
// digest (reads the header and the tags only). DataLoss with
// ciphertext_size_mismatch, header_*, bad_segment_size,
// header_segment_size_mismatch or tags_digest_mismatch.
absl::Status CheckSealedFile(int fd, const ExpectedFile& expected);

// Decrypts segments [first, first + count) of the encrypted file in `fd` and
// writes their plaintext at the matching offsets of `out_fd` (pwrite;
// `out_fd` < 0 discards it). When the range is the whole file and
// `expected.sha256_hex` is set, the plaintext digest is checked too; when
// `tags` is not null, segment i's tag is stored at (*tags)[i - first].
// DataLoss segment_auth_failed or plaintext_digest_mismatch; the caller must
// discard any plaintext already written when this fails.
absl::Status OpenSegments(int fd, const SecretBytes& dek, const ExpectedFile& expected,
                          uint64_t first, uint64_t count, int out_fd,
                          std::vector<std::array<uint8_t, kTagSize>>* tags,
                          std::atomic<uint64_t>* progress);

// Whole file into memory, for tests and fuzzing: CheckSealedFile's size and
// header checks, then every segment. Refuses files above 64 MiB.
absl::StatusOr<std::string> OpenSealedBuffer(std::span<const uint8_t> sealed,
                                             const SecretBytes& dek, const ExpectedFile& expected);

}  // namespace hosn::bundle

#endif  // HOSN_COMMON_BUNDLE_SEGMENT_H_
