// The label -> handle hints of data_objects.cc; see data_object_index.h.
#include "server/hsm/data_object_index.h"

#include <utility>

#include "common/base/absl_compat.h"

namespace hosn::hsm {

void DataObjectIndex::SyncGeneration(uint64_t generation) {
  if (generation == generation_) return;
  // The module was re-initialised: every handle may now name another object.
  handles_.clear();
  scanned_at_.reset();
  generation_ = generation;
}

std::optional<CK_OBJECT_HANDLE> DataObjectIndex::Find(std::string_view label, uint64_t generation) {
  MutexLock lock(&mu_);
  SyncGeneration(generation);
  auto it = handles_.find(ToAbsl(label));
  if (it == handles_.end()) return std::nullopt;
  return it->second;
}

void DataObjectIndex::Remember(std::string_view label, CK_OBJECT_HANDLE handle,
                               uint64_t generation) {
  MutexLock lock(&mu_);
  SyncGeneration(generation);
  handles_.insert_or_assign(std::string(label), handle);
}

void DataObjectIndex::Forget(std::string_view label) {
  MutexLock lock(&mu_);
  handles_.erase(ToAbsl(label));
}

bool DataObjectIndex::ClaimRebuild(uint64_t generation, absl::Time now) {
  MutexLock lock(&mu_);
  SyncGeneration(generation);
  if (rebuilding_) return false;
  if (scanned_at_.has_value() && now - *scanned_at_ < refresh_period_) return false;
  rebuilding_ = true;
  return true;
}

void DataObjectIndex::FinishRebuild(Handles handles, uint64_t generation, absl::Time now) {
  MutexLock lock(&mu_);
  rebuilding_ = false;
  // A recovery during the scan makes its handles worthless.
  if (generation != generation_) return;
  handles_ = std::move(handles);
  scanned_at_ = now;
}

void DataObjectIndex::AbandonRebuild(absl::Time now) {
  MutexLock lock(&mu_);
  rebuilding_ = false;
  scanned_at_ = now;
}

size_t DataObjectIndex::size() const {
  MutexLock lock(&mu_);
  return handles_.size();
}

}  // namespace hosn::hsm
