// Remembered manifest verifications; see manifest_cache.h.
#include "server/release/manifest_cache.h"

#include <openssl/sha.h>

#include <utility>

namespace hosn::release {
namespace {

std::string Key(const std::string& manifest, const std::string& signature) {
  std::string key(2 * SHA256_DIGEST_LENGTH, '\0');
  auto* out = reinterpret_cast<unsigned char*>(key.data());
  SHA256(reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size(), out);
  SHA256(reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
         out + SHA256_DIGEST_LENGTH);
  return key;
}

}  // namespace

VerifiedManifestCache::VerifiedManifestCache(std::string ca_bundle_pem, absl::Duration ttl,
                                             size_t capacity)
    : ca_bundle_pem_(std::move(ca_bundle_pem)), ttl_(ttl), capacity_(capacity) {}

absl::StatusOr<std::shared_ptr<const bundle::VerifiedManifest>> VerifiedManifestCache::Verify(
    const std::string& manifest, const std::string& signature) {
  const std::string key = ttl_ > absl::ZeroDuration() ? Key(manifest, signature) : std::string();
  if (!key.empty()) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (it->second.expires > absl::Now()) return it->second.manifest;
      entries_.erase(it);
    }
  }
  bundle::TrustOptions trust;
  trust.ca_bundle_pem = ca_bundle_pem_;
  absl::StatusOr<bundle::VerifiedManifest> verified =
      bundle::VerifyAndParseManifest(manifest, signature, trust);
  if (!verified.ok()) return verified.status();
  auto shared = std::make_shared<const bundle::VerifiedManifest>(*std::move(verified));
  if (!key.empty()) {
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    if (entries_.size() >= capacity_) {
      for (auto it = entries_.begin(); it != entries_.end();) {
        it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
      }
      if (entries_.size() >= capacity_) entries_.clear();
    }
    entries_[key] = Entry{shared, now + ttl_};
  }
  return shared;
}

}  // namespace hosn::release
