// SecretBytes: an owned buffer for key material (DEKs, PINs, private keys).
//
// What it guarantees:
//   * the bytes are wiped (OPENSSL_cleanse) when the object is destroyed,
//     moved from, or resized;
//   * the pages are locked in memory (mlock, best effort) and excluded from
//     core dumps (MADV_DONTDUMP) for the object's lifetime;
//   * equality is constant-time (CRYPTO_memcmp) and checks length first;
//   * there is no operator<<, no debug string, no implicit conversion: the
//     only way to read the raw bytes is RevealSecret(), which a reviewer can
//     grep for.
//
// Not thread-safe: one owner at a time, like std::string. Copying is
// explicit, through Clone().
#ifndef HOSN_COMMON_BASE_SECRET_BYTES_H_
#define HOSN_COMMON_BASE_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace hosn {

class SecretBytes {
 public:
  SecretBytes() = default;
  // A zero-filled buffer of `size` bytes.
  explicit SecretBytes(size_t size);
  // Copies `bytes`; the caller remains responsible for wiping its own copy.
  static SecretBytes CopyOf(std::span<const uint8_t> bytes);
  static SecretBytes CopyOf(std::string_view bytes);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  SecretBytes Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Wipes and releases the buffer; size() becomes 0.
  void Clear();

  // Constant-time for equal lengths; lengths are not secret.
  bool operator==(const SecretBytes& other) const;

  // The raw bytes. Every call site is a place where a secret leaves this
  // type: keep them few and never log, print or serialize the result.
  friend std::span<uint8_t> RevealSecret(SecretBytes& secret) {
    return {secret.data_, secret.size_};
  }
  friend std::span<const uint8_t> RevealSecret(const SecretBytes& secret) {
    return {secret.data_, secret.size_};
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hosn

#endif  // HOSN_COMMON_BASE_SECRET_BYTES_H_
