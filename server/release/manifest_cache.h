// Verified manifests, remembered: CMS verification of a manifest signature
// (chain building against the pinned CA, signature check, parse) costs about
// 2.4 ms on this project's dev machine, ten times the quote verification,
// and every node of a class sends the same signed manifest. A success is
// remembered for a short time under SHA-256(manifest) || SHA-256(signature),
// so a hit means: these exact bytes verified against the same pinned CA
// bundle less than `ttl` ago. Failures are never remembered.
//
// The one thing a hit can miss is time: a signer certificate that expires
// within the TTL is still accepted until the entry ages out (at most `ttl`,
// default 60 s; docs/release.md). Nothing else about a manifest changes: no
// revocation list is consulted by the uncached path either.
//
// Thread-safe; entries are immutable and shared.
#ifndef HOSN_SERVER_RELEASE_MANIFEST_CACHE_H_
#define HOSN_SERVER_RELEASE_MANIFEST_CACHE_H_

#include <memory>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/bundle/signature.h"

namespace hosn::release {

class VerifiedManifestCache {
 public:
  // `ttl` zero disables remembering (every call verifies).
  VerifiedManifestCache(std::string ca_bundle_pem, absl::Duration ttl, size_t capacity = 1024);

  // bundle::VerifyAndParseManifest under the pinned CA, or a remembered
  // success for the same bytes. Errors as VerifyAndParseManifest.
  absl::StatusOr<std::shared_ptr<const bundle::VerifiedManifest>> Verify(
      const std::string& manifest, const std::string& signature);

 private:
  struct Entry {
    std::shared_ptr<const bundle::VerifiedManifest> manifest;
    absl::Time expires;
  };

  const std::string ca_bundle_pem_;
  const absl::Duration ttl_;
  const size_t capacity_;
  absl::Mutex mu_;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_MANIFEST_CACHE_H_
