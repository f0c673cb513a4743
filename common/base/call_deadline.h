// The deadline of the call a thread is serving, for code far below the RPC
// layer that waits (the HSM session pool).
//
// The gRPC layer opens a CallDeadlineScope with the client's deadline around
// each handler; a wait deep inside a library reads CurrentCallDeadline() and
// gives up when the caller would no longer read the answer, instead of
// holding a worker thread until its own, longer timeout. Passing the
// deadline through every signature between the two would touch every
// operation for a value only the waits need; a thread-local scope keeps it
// out of the APIs and cannot leak past the handler (the scope restores the
// previous value on destruction).
//
// Thread safety: each thread sees only its own scope. Work handed to another
// thread does not inherit it.
#ifndef HOSN_COMMON_BASE_CALL_DEADLINE_H_
#define HOSN_COMMON_BASE_CALL_DEADLINE_H_

#include "absl/time/time.h"

namespace hosn {

// absl::InfiniteFuture() when no scope is open on this thread.
absl::Time CurrentCallDeadline();

// Sets this thread's call deadline for the scope's lifetime. Scopes nest; an
// inner scope never extends an outer one (the earlier deadline wins).
class CallDeadlineScope {
 public:
  explicit CallDeadlineScope(absl::Time deadline);
  ~CallDeadlineScope();
  CallDeadlineScope(const CallDeadlineScope&) = delete;
  CallDeadlineScope& operator=(const CallDeadlineScope&) = delete;

 private:
  absl::Time previous_;
};

}  // namespace hosn

#endif  // HOSN_COMMON_BASE_CALL_DEADLINE_H_
