// Mutexes that both Clang's -Wthread-safety and TSan see. Use these, not
// absl::Mutex, for state shared between threads.
//
// Debian's Abseil is built without ThreadSanitizer, so TSan cannot see the
// happens-before edges of absl::Mutex and reports races on data that an
// absl::Mutex does protect. These thin wrappers over std::mutex and a
// pthread rwlock (calls that TSan intercepts) carry the same
// ABSL_* capability annotations, so the static analysis still checks every
// guarded member. Same thread-safety as the standard types they wrap.
#ifndef HOSN_COMMON_BASE_SYNC_H_
#define HOSN_COMMON_BASE_SYNC_H_

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hosn {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // BasicLockable, for std::condition_variable_any.
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Waits on `cv` (with `mu` held) until `ready()` or `deadline`; returns
// ready(). `mu` is held again on return.
template <typename Ready>
bool AwaitWithDeadline(std::condition_variable_any& cv, Mutex& mu, absl::Time deadline, Ready ready)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  return cv.wait_until(mu, absl::ToChronoTime(deadline), ready);
}

// A reader/writer lock that prefers writers: a writer waiting for the lock
// keeps new readers out, so it cannot starve under a steady stream of them
// (glibc's default rwlock, behind std::shared_mutex, prefers readers).
class ABSL_LOCKABLE SharedMutex {
 public:
  SharedMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&mu_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~SharedMutex() { pthread_rwlock_destroy(&mu_); }
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void WriterLock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_rwlock_wrlock(&mu_); }
  void WriterUnlock() ABSL_UNLOCK_FUNCTION() { pthread_rwlock_unlock(&mu_); }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { pthread_rwlock_rdlock(&mu_); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { pthread_rwlock_unlock(&mu_); }

 private:
  pthread_rwlock_t mu_;
};

class ABSL_SCOPED_LOCKABLE WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->WriterLock();
  }
  ~WriterLock() ABSL_UNLOCK_FUNCTION() { mu_->WriterUnlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* const mu_;
};

}  // namespace hosn

#endif  // HOSN_COMMON_BASE_SYNC_H_
