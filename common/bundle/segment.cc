#include "common/bundle/segment.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "common/bundle/errors.h"
#include "common/bundle/ossl.h"

namespace hosn::bundle {
namespace {

using internal::CipherCtxPtr;
using internal::KdfCtxPtr;
using internal::KdfPtr;
using internal::MdCtxPtr;

constexpr char kMagic[8] = {'H', 'O', 'S', 'N', 'S', 'E', 'G', '\0'};
constexpr std::string_view kKdfLabel = "hosn bundle v1 segment key";
constexpr size_t kNonceSize = 12;
constexpr size_t kKeySize = 32;

// The cipher is fetched once: an implicit fetch per segment costs a lock.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

uint32_t GetBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

absl::Status IoError(std::string_view op, std::string_view path, int err) {
  return absl::InternalError(absl::StrCat(ToAbsl(op), " ", ToAbsl(path), ": ", std::strerror(err)));
}

// Reads exactly out.size() bytes at `offset`; a short read means the file is
// shorter than the manifest says.
absl::Status PreadExact(int fd, uint64_t offset, std::span<uint8_t> out, std::string_view path) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", path, errno);
    if (n == 0) return BundleError(absl::StatusCode::kDataLoss, "ciphertext_size_mismatch", path);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PwriteAll(int fd, uint64_t offset, std::span<const uint8_t> data,
                       std::string_view path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", path, errno);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, std::span<const uint8_t> data, std::string_view path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", path, errno);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads until `out` is full or end of file; returns the byte count.
absl::StatusOr<size_t> ReadFull(int fd, std::span<uint8_t> out, std::string_view path) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", path, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(std::span<const uint8_t> data) {
    EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
  }
  std::string HexDigest() {
    uint8_t digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &len);
    return HexEncode(std::span<const uint8_t>(digest, len));
  }

 private:
  MdCtxPtr ctx_;
};

uint64_t SegmentOffset(uint64_t index, uint32_t segment_size) {
  return kFileHeaderSize + index * (uint64_t{segment_size} + kTagSize);
}

uint64_t SegmentLength(uint64_t index, uint64_t count, uint64_t size, uint32_t segment_size) {
  return index + 1 < count ? segment_size : size - index * segment_size;
}

}  // namespace

absl::Status AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                        std::span<uint8_t> out) {
  if (key.size() != kKeySize || nonce.size() != kNonceSize ||
      out.size() != plaintext.size() + kTagSize || plaintext.size() > (1u << 30)) {
    return absl::InvalidArgumentError("aes-gcm: bad key, nonce or buffer size");
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          out.data() + plaintext.size()) != 1) {
    return absl::InternalError("aes-gcm: seal failed: " + internal::OsslErrorText());
  }
  return absl::OkStatus();
}

absl::Status AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> sealed,
                        std::span<uint8_t> out) {
  if (key.size() != kKeySize || nonce.size() != kNonceSize || sealed.size() < kTagSize ||
      out.size() != sealed.size() - kTagSize || sealed.size() > (1u << 30)) {
    return absl::InvalidArgumentError("aes-gcm: bad key, nonce or buffer size");
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  size_t body = sealed.size() - kTagSize;
  // The tag is copied: the EVP interface takes a non-const pointer.
  uint8_t tag[kTagSize];
  std::memcpy(tag, sealed.data() + body, kTagSize);
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, sealed.data(), static_cast<int>(body)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::InternalError("aes-gcm: open failed: " + internal::OsslErrorText());
  }
  // No early exit before the tag check: the plaintext written so far is
  // unverified and is wiped when the tag does not match.
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    internal::OsslErrorText();
    return BundleError(absl::StatusCode::kDataLoss, "segment_auth_failed", "tag mismatch");
  }
  return absl::OkStatus();
}

std::array<uint8_t, kFileHeaderSize> FileHeader::Encode() const {
  std::array<uint8_t, kFileHeaderSize> out{};
  std::memcpy(out.data(), kMagic, sizeof(kMagic));
  PutBe32(out.data() + 8, kSegmentFormatVersion);
  PutBe32(out.data() + 12, segment_size);
  std::memcpy(out.data() + 16, salt.data(), salt.size());
  return out;
}

absl::StatusOr<FileHeader> FileHeader::Parse(std::span<const uint8_t> bytes) {
  if (bytes.size() < kFileHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return BundleError(absl::StatusCode::kDataLoss, "header_bad_magic", "encrypted file");
  }
  if (GetBe32(bytes.data() + 8) != kSegmentFormatVersion) {
    return BundleError(absl::StatusCode::kDataLoss, "header_bad_version", "encrypted file");
  }
  FileHeader header;
  header.segment_size = GetBe32(bytes.data() + 12);
  if (header.segment_size < kMinSegmentSize || header.segment_size > kMaxSegmentSize) {
    return BundleError(absl::StatusCode::kDataLoss, "bad_segment_size", "encrypted file");
  }
  std::memcpy(header.salt.data(), bytes.data() + 16, kSaltSize);
  return header;
}

uint64_t SegmentCount(uint64_t plaintext_size, uint32_t segment_size) {
  if (plaintext_size == 0) return 1;
  return (plaintext_size + segment_size - 1) / segment_size;
}

uint64_t CiphertextSize(uint64_t plaintext_size, uint32_t segment_size) {
  return kFileHeaderSize + plaintext_size + SegmentCount(plaintext_size, segment_size) * kTagSize;
}

absl::StatusOr<std::unique_ptr<SegmentCipher>> SegmentCipher::Create(const SecretBytes& dek,
                                                                     std::string_view path,
                                                                     const FileHeader& header) {
  if (dek.size() != kDekSize) return absl::InvalidArgumentError("dek: must be 32 bytes");
  auto cipher = std::unique_ptr<SegmentCipher>(new SegmentCipher());
  cipher->header_ = header.Encode();

  // HKDF-SHA256(ikm = DEK, salt = header salt, info = label || 0 || path):
  // 32 bytes of key, then the 7-byte nonce prefix.
  std::string info = absl::StrCat(ToAbsl(kKdfLabel), absl::string_view("\0", 1), ToAbsl(path));
  SecretBytes okm(kKeySize + 7);
  KdfPtr kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  KdfCtxPtr kctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  auto ikm = RevealSecret(dek);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                        const_cast<uint8_t*>(header.salt.data()), kSaltSize),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  auto out = RevealSecret(okm);
  if (!kctx || EVP_KDF_derive(kctx.get(), out.data(), out.size(), params) != 1) {
    return absl::InternalError("hkdf: derive failed: " + internal::OsslErrorText());
  }
  cipher->key_ = SecretBytes::CopyOf(out.first(kKeySize));
  std::memcpy(cipher->nonce_prefix_.data(), out.data() + kKeySize, 7);
  return cipher;
}

std::array<uint8_t, 12> SegmentCipher::Nonce(uint64_t index, bool final) const {
  std::array<uint8_t, 12> nonce{};
  std::memcpy(nonce.data(), nonce_prefix_.data(), 7);
  PutBe32(nonce.data() + 7, static_cast<uint32_t>(index));
  nonce[11] = final ? 1 : 0;
  return nonce;
}

absl::Status SegmentCipher::Seal(uint64_t index, bool final, std::span<const uint8_t> plaintext,
                                 std::span<uint8_t> out) const {
  if (index > UINT32_MAX) return absl::OutOfRangeError("segment index above 2^32");
  auto nonce = Nonce(index, final);
  return AesGcmSeal(RevealSecret(key_), nonce, header_, plaintext, out);
}

absl::Status SegmentCipher::Open(uint64_t index, bool final, std::span<const uint8_t> sealed,
                                 std::span<uint8_t> out) const {
  if (index > UINT32_MAX) {
    return BundleError(absl::StatusCode::kDataLoss, "segment_auth_failed", "index above 2^32");
  }
  auto nonce = Nonce(index, final);
  return AesGcmOpen(RevealSecret(key_), nonce, header_, sealed, out);
}

absl::StatusOr<SealedFileInfo> SealStream(int in_fd, int out_fd, const SecretBytes& dek,
                                          std::string_view path, uint32_t segment_size,
                                          std::atomic<uint64_t>* progress) {
  if (segment_size < kMinSegmentSize || segment_size > kMaxSegmentSize) {
    return BundleError(absl::StatusCode::kInvalidArgument, "bad_segment_size", path);
  }
  FileHeader header;
  header.segment_size = segment_size;
  if (RAND_bytes(header.salt.data(), kSaltSize) != 1) {
    return absl::InternalError("rand: no entropy for the file salt");
  }
  HOSN_ASSIGN_OR_RETURN(auto cipher, SegmentCipher::Create(dek, path, header));
  auto header_bytes = header.Encode();
  HOSN_RETURN_IF_ERROR(WriteAll(out_fd, header_bytes, path));

  Sha256 plain_digest;
  Sha256 tags_digest;
  tags_digest.Update(header_bytes);
  std::vector<uint8_t> current(segment_size), next(segment_size), sealed(segment_size + kTagSize);

  // One segment of look-ahead tells whether the current one is the last.
  HOSN_ASSIGN_OR_RETURN(size_t current_len, ReadFull(in_fd, current, path));
  uint64_t total = 0;
  for (uint64_t index = 0;; ++index) {
    size_t next_len = 0;
    if (current_len == segment_size) {
      HOSN_ASSIGN_OR_RETURN(next_len, ReadFull(in_fd, next, path));
    }
    bool final = next_len == 0;
    auto plain = std::span<const uint8_t>(current).first(current_len);
    auto out = std::span<uint8_t>(sealed).first(current_len + kTagSize);
    plain_digest.Update(plain);
    HOSN_RETURN_IF_ERROR(cipher->Seal(index, final, plain, out));
    tags_digest.Update(out.last(kTagSize));
    HOSN_RETURN_IF_ERROR(WriteAll(out_fd, out, path));
    total += current_len;
    if (progress != nullptr) progress->fetch_add(current_len, std::memory_order_relaxed);
    if (final) break;
    std::swap(current, next);
    current_len = next_len;
  }
  OPENSSL_cleanse(current.data(), current.size());
  OPENSSL_cleanse(next.data(), next.size());
  return SealedFileInfo{total, plain_digest.HexDigest(), tags_digest.HexDigest()};
}

absl::Status CheckSealedFile(int fd, const ExpectedFile& expected) {
  const std::string& path = expected.path;
  struct stat st;
  if (::fstat(fd, &st) != 0) return IoError("stat", path, errno);
  if (static_cast<uint64_t>(st.st_size) != CiphertextSize(expected.size, expected.segment_size)) {
    return BundleError(absl::StatusCode::kDataLoss, "ciphertext_size_mismatch", path);
  }
  std::array<uint8_t, kFileHeaderSize> header_bytes;
  HOSN_RETURN_IF_ERROR(PreadExact(fd, 0, header_bytes, path));
  HOSN_ASSIGN_OR_RETURN(FileHeader header, FileHeader::Parse(header_bytes));
  if (header.segment_size != expected.segment_size) {
    return BundleError(absl::StatusCode::kDataLoss, "header_segment_size_mismatch", path);
  }
  if (expected.tags_sha256_hex.empty()) return absl::OkStatus();

  Sha256 tags_digest;
  tags_digest.Update(header_bytes);
  uint64_t count = SegmentCount(expected.size, expected.segment_size);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t len = SegmentLength(i, count, expected.size, expected.segment_size);
    std::array<uint8_t, kTagSize> tag;
    HOSN_RETURN_IF_ERROR(PreadExact(fd, SegmentOffset(i, expected.segment_size) + len, tag, path));
    tags_digest.Update(tag);
  }
  if (tags_digest.HexDigest() != expected.tags_sha256_hex) {
    return BundleError(absl::StatusCode::kDataLoss, "tags_digest_mismatch", path);
  }
  return absl::OkStatus();
}

absl::Status OpenSegments(int fd, const SecretBytes& dek, const ExpectedFile& expected,
                          uint64_t first, uint64_t count, int out_fd,
                          std::vector<std::array<uint8_t, kTagSize>>* tags,
                          std::atomic<uint64_t>* progress) {
  const std::string& path = expected.path;
  const uint32_t segment_size = expected.segment_size;
  uint64_t total = SegmentCount(expected.size, segment_size);
  if (first > total || count > total - first) {
    return absl::InvalidArgumentError(absl::StrCat("segment range outside ", path));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return IoError("stat", path, errno);
  if (static_cast<uint64_t>(st.st_size) != CiphertextSize(expected.size, segment_size)) {
    return BundleError(absl::StatusCode::kDataLoss, "ciphertext_size_mismatch", path);
  }
  std::array<uint8_t, kFileHeaderSize> header_bytes;
  HOSN_RETURN_IF_ERROR(PreadExact(fd, 0, header_bytes, path));
  HOSN_ASSIGN_OR_RETURN(FileHeader header, FileHeader::Parse(header_bytes));
  if (header.segment_size != segment_size) {
    return BundleError(absl::StatusCode::kDataLoss, "header_segment_size_mismatch", path);
  }
  HOSN_ASSIGN_OR_RETURN(auto cipher, SegmentCipher::Create(dek, path, header));

  // Digests are checked here only when this call sees the whole file.
  bool whole = first == 0 && count == total;
  bool hash_plain = whole && !expected.sha256_hex.empty();
  bool hash_tags = whole && !expected.tags_sha256_hex.empty();
  Sha256 plain_digest;
  Sha256 tags_digest;
  tags_digest.Update(header_bytes);

  std::vector<uint8_t> sealed(segment_size + kTagSize), plain(segment_size);
  for (uint64_t i = first; i < first + count; ++i) {
    uint64_t len = SegmentLength(i, total, expected.size, segment_size);
    auto in = std::span<uint8_t>(sealed).first(len + kTagSize);
    auto out = std::span<uint8_t>(plain).first(len);
    HOSN_RETURN_IF_ERROR(PreadExact(fd, SegmentOffset(i, segment_size), in, path));
    absl::Status opened = cipher->Open(i, i + 1 == total, in, out);
    if (!opened.ok()) {
      return BundleError(
          opened.code(),
          BundleErrorName(opened).empty() ? "segment_auth_failed" : BundleErrorName(opened),
          absl::StrCat(path, " segment ", i));
    }
    if (hash_plain) plain_digest.Update(out);
    if (hash_tags) tags_digest.Update(in.last(kTagSize));
    if (tags != nullptr) std::memcpy((*tags)[i - first].data(), in.data() + len, kTagSize);
    if (out_fd >= 0) HOSN_RETURN_IF_ERROR(PwriteAll(out_fd, i * uint64_t{segment_size}, out, path));
    if (progress != nullptr) progress->fetch_add(len, std::memory_order_relaxed);
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  if (hash_tags && tags_digest.HexDigest() != expected.tags_sha256_hex) {
    return BundleError(absl::StatusCode::kDataLoss, "tags_digest_mismatch", path);
  }
  if (hash_plain && plain_digest.HexDigest() != expected.sha256_hex) {
    return BundleError(absl::StatusCode::kDataLoss, "plaintext_digest_mismatch", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> OpenSealedBuffer(std::span<const uint8_t> sealed,
                                             const SecretBytes& dek, const ExpectedFile& expected) {
  constexpr size_t kMaxBuffer = 64u << 20;
  if (sealed.size() > kMaxBuffer || expected.size > kMaxBuffer) {
    return absl::OutOfRangeError("sealed buffer above 64 MiB");
  }
  UniqueFd in(::memfd_create("hosn-sealed", MFD_CLOEXEC));
  UniqueFd out(::memfd_create("hosn-plain", MFD_CLOEXEC));
  if (!in.valid() || !out.valid()) return IoError("memfd_create", expected.path, errno);
  HOSN_RETURN_IF_ERROR(WriteAll(in.get(), sealed, expected.path));
  HOSN_RETURN_IF_ERROR(CheckSealedFile(in.get(), expected));
  HOSN_RETURN_IF_ERROR(OpenSegments(in.get(), dek, expected, 0,
                                    SegmentCount(expected.size, expected.segment_size), out.get(),
                                    nullptr, nullptr));
  std::string plain(expected.size, '\0');
  HOSN_RETURN_IF_ERROR(PreadExact(
      out.get(), 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(plain.data()), plain.size()),
      expected.path));
  return plain;
}

}  // namespace hosn::bundle
