#include "common/base/secret_bytes.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include <openssl/crypto.h>

namespace hosn {
namespace {

// Allocates whole pages so that mlock and MADV_DONTDUMP cover exactly this
// buffer and never share a page with ordinary heap data.
uint8_t* AllocateLocked(size_t size) {
  if (size == 0) return nullptr;
  const size_t page = 4096;
  const size_t rounded = (size + page - 1) / page * page;
  void* p = nullptr;
  if (posix_memalign(&p, page, rounded) != 0) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  // Best effort: RLIMIT_MEMLOCK may be small for unprivileged test runs. The
  // daemon and agent raise or check it at start-up.
  (void)mlock(p, rounded);
  (void)madvise(p, rounded, MADV_DONTDUMP);
  return static_cast<uint8_t*>(p);
}

void ReleaseLocked(uint8_t* p, size_t size) {
  if (p == nullptr) return;
  const size_t page = 4096;
  const size_t rounded = (size + page - 1) / page * page;
  OPENSSL_cleanse(p, rounded);
  (void)madvise(p, rounded, MADV_DODUMP);
  (void)munlock(p, rounded);
  std::free(p);
}

}  // namespace

SecretBytes::SecretBytes(size_t size) : data_(AllocateLocked(size)), size_(size) {}

SecretBytes SecretBytes::CopyOf(std::span<const uint8_t> bytes) {
  SecretBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecretBytes SecretBytes::CopyOf(std::string_view bytes) {
  return CopyOf(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() { Clear(); }

SecretBytes SecretBytes::Clone() const { return CopyOf(RevealSecret(*this)); }

void SecretBytes::Clear() {
  ReleaseLocked(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

bool SecretBytes::operator==(const SecretBytes& other) const {
  if (size_ != other.size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_, other.data_, size_) == 0;
}

}  // namespace hosn
