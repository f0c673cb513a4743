// DataObjectIndex: which token object holds each fleet-state label, so that
// a read fetches one known object instead of searching the token.
//
// Why: a PKCS#11 search over token objects costs time linear in the objects
// on the token (SoftHSM re-checks every object's file on the way: 9 ms with
// 100 objects, 33 ms per release with 200 enrolled nodes), while reading a
// known object costs the same whatever the token holds. The index maps a
// label to the handle of its only version. It is a hint, never the truth:
// the reader checks on every use that the object still is a data object of
// ours with that label and searches again when it is gone (data_objects.cc).
//
// Handles are valid in every session of this process until the pool
// re-initialises the module, so the index is tied to the pool's session
// generation and empties itself when that changes. It is rebuilt from one
// full scan when first used and then every `refresh_period`, which bounds how
// long a reader can keep a version that a failed put left beside a newer one.
//
// Thread safety: every method may be called from any thread.
#ifndef HOSN_SERVER_HSM_DATA_OBJECT_INDEX_H_
#define HOSN_SERVER_HSM_DATA_OBJECT_INDEX_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/base/sync.h"
#include "server/hsm/pkcs11.h"

namespace hosn::hsm {

class DataObjectIndex {
 public:
  using Handles = absl::flat_hash_map<std::string, CK_OBJECT_HANDLE>;

  explicit DataObjectIndex(absl::Duration refresh_period) : refresh_period_(refresh_period) {}

  // The handle remembered for `label` in session generation `generation`.
  std::optional<CK_OBJECT_HANDLE> Find(std::string_view label, uint64_t generation)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `label` now has exactly one version, at `handle`.
  void Remember(std::string_view label, CK_OBJECT_HANDLE handle, uint64_t generation)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Forget(std::string_view label) ABSL_LOCKS_EXCLUDED(mu_);

  // True if the last scan is missing or older than the refresh period and no
  // one else is scanning: the caller then scans and calls FinishRebuild (or
  // AbandonRebuild on failure). Readers keep using the old entries meanwhile.
  bool ClaimRebuild(uint64_t generation, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces every entry with `handles`, scanned in `generation` at `now`.
  void FinishRebuild(Handles handles, uint64_t generation, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Keeps the old entries; the next scan waits a refresh period from `now`,
  // so a failing scan does not run on every read.
  void AbandonRebuild(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Empties the index if it belongs to an older session generation.
  void SyncGeneration(uint64_t generation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration refresh_period_;
  mutable Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Time> scanned_at_ ABSL_GUARDED_BY(mu_);
  bool rebuilding_ ABSL_GUARDED_BY(mu_) = false;
  Handles handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_DATA_OBJECT_INDEX_H_
