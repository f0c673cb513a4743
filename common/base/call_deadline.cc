#include "common/base/call_deadline.h"

#include <algorithm>

namespace hosn {
namespace {

thread_local absl::Time current_deadline = absl::InfiniteFuture();

}  // namespace

absl::Time CurrentCallDeadline() { return current_deadline; }

CallDeadlineScope::CallDeadlineScope(absl::Time deadline) : previous_(current_deadline) {
  current_deadline = std::min(previous_, deadline);
}

CallDeadlineScope::~CallDeadlineScope() { current_deadline = previous_; }

}  // namespace hosn
