// SessionPool: a fixed number of PKCS#11 sessions on one token, one login,
// and recovery when the HSM side restarts. One extra session that is never
// lent out keeps the login alive.
//
// Callers hand the pool a function to run on a Session (SessionPool::Run).
// The pool lends a free session, waiting at most `acquire_timeout` when all
// are busy (DeadlineExceeded). If the function fails with a CKR that means
// the session, login or device is gone (see IsRecoverable in ckr.h), the pool
// recovers once for everybody: it waits until no operation is running, closes
// every session, re-initialises the module if the device went away, finds the
// token again by URI (its slot id may have changed), opens fresh sessions and
// logs in again; then the caller's function runs once more. A function that
// fails for any other reason may have left an operation active on its
// session; it calls Session::Poison() (and the pool does the same for every
// failure that carries a CKR) and the session is closed and replaced rather than
// lent again.
//
// Object handles never outlive the session they were found in: Session caches
// them per session only, and the cache dies with the session.
//
// Thread safety: Run and Metrics may be called from any thread. A Session is
// used by one thread at a time (the one inside Run).
#ifndef HOSN_SERVER_HSM_SESSION_POOL_H_
#define HOSN_SERVER_HSM_SESSION_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/secret_bytes.h"
#include "common/base/sync.h"
#include "server/hsm/key_store.h"
#include "server/hsm/module.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/pool_metrics.h"
#include "server/hsm/uri.h"

namespace hosn::hsm {

CK_OBJECT_CLASS ToCkClass(KeyClass key_class);
CK_KEY_TYPE ToCkKeyType(KeyType key_type);

class Session {
 public:
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  CK_FUNCTION_LIST* fn() const { return functions_; }
  CK_SESSION_HANDLE handle() const { return handle_; }
  // Bumped by every recovery: object handles of an older generation may name
  // other objects (or none) now.
  uint64_t generation() const { return generation_; }

  // Every object matching `ref`: CKA_CLASS, CKA_KEY_TYPE and CKA_LABEL are
  // always in the template, CKA_ID when `ref.id` is set. Token objects are
  // searched first (CKA_TOKEN=true pinned); only if there are none, session
  // objects (test-only keys). Pinning CKA_TOKEN also keeps our own session
  // copies out of the count while a module is still labelling a fresh copy
  // (SoftHSM's C_CopyObject applies the template after creating the copy).
  // `on_token`, if given, tells which search matched. The search is always
  // ended with C_FindObjectsFinal, also on errors.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindAll(const KeyRef& ref,
                                                        bool* on_token = nullptr);

  // Every object matching a raw PKCS#11 template; ResourceExhausted if more
  // than `max_objects` match. The search is ended on every path (case P7).
  // Like FindAll, it never sees a key copy half made by another session.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(CK_ATTRIBUTE* attributes,
                                                            CK_ULONG count, size_t max_objects);

  // Exactly one object: NotFound if none, FailedPrecondition
  // "ambiguous key: N matches" if several. With `use_cache`, a handle found
  // earlier in this same session is reused, and (if the pool copies keys)
  // the handle is that of a session-object copy of the key, which SoftHSM
  // uses without the file locks of token objects. Copies carry no label or
  // id, so they never match a search, and die with the session.
  absl::StatusOr<CK_OBJECT_HANDLE> Resolve(const KeyRef& ref, bool use_cache = true);

  // The session may have an operation left active: the pool closes it
  // instead of lending it again.
  void Poison() { poisoned_ = true; }

 private:
  friend class SessionPool;
  // Shared by a pool and all its sessions.
  struct Shared {
    bool cache_handles = true;
    bool copy_keys = true;
    // Bumped when keys are created or destroyed through this process; a
    // session whose cache is older drops it before the next lookup.
    std::atomic<uint64_t> key_epoch{0};
    // Searches hold this shared, C_CopyObject exclusively: SoftHSM builds a
    // copy with the original's CKA_TOKEN and CKA_LABEL before applying our
    // template, and a search in another session at that moment would count
    // the half-made copy as a second key.
    mutable SharedMutex copy_mu;
  };
  Session(CK_FUNCTION_LIST* functions, CK_SESSION_HANDLE handle, uint64_t generation,
          const Shared* shared)
      : functions_(functions), handle_(handle), generation_(generation), shared_(shared) {}
  void DropCache();
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Search(const KeyRef& ref, bool token);
  // The find loop; the caller holds copy_mu shared.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> RunFind(CK_ATTRIBUTE* attributes, CK_ULONG count,
                                                        size_t max_objects);

  CK_FUNCTION_LIST* const functions_;
  const CK_SESSION_HANDLE handle_;
  const uint64_t generation_;
  const Shared* const shared_;
  bool poisoned_ = false;
  uint64_t cache_epoch_ = 0;
  // Few keys per session: a linear search without allocation beats a map.
  struct CacheEntry {
    KeyRef ref;
    CK_OBJECT_HANDLE handle;
  };
  std::vector<CacheEntry> cache_;
  std::vector<CK_OBJECT_HANDLE> copies_;
};

// Ends a find operation (C_FindObjectsFinal) on every path (case P7).
class FindGuard {
 public:
  explicit FindGuard(Session& session) : session_(session) {}
  ~FindGuard() { session_.fn()->C_FindObjectsFinal(session_.handle()); }
  FindGuard(const FindGuard&) = delete;
  FindGuard& operator=(const FindGuard&) = delete;

 private:
  Session& session_;
};

class ScopedObject {
 public:
  ScopedObject(Session& session, CK_OBJECT_HANDLE handle) : session_(session), handle_(handle) {}
  ~ScopedObject() { session_.fn()->C_DestroyObject(session_.handle(), handle_); }
  ScopedObject(const ScopedObject&) = delete;
  ScopedObject& operator=(const ScopedObject&) = delete;
  CK_OBJECT_HANDLE get() const { return handle_; }

 private:
  Session& session_;
  const CK_OBJECT_HANDLE handle_;
};

class SessionPool {
 public:
  struct Options {
    int size = 4;
    absl::Duration acquire_timeout = absl::Seconds(2);
    bool reinitialize_module_on_device_error = true;
    bool cache_handles_per_session = true;
    bool copy_keys_to_session_objects = true;
  };

  // Finds the token, opens `options.size` sessions and logs in with `pin`.
  // InvalidArgument if size < 1; errors of Module::FindSlot; the CKR status
  // of C_OpenSession or C_Login (CKR_PIN_INCORRECT -> PermissionDenied).
  static absl::StatusOr<std::unique_ptr<SessionPool>> Create(std::unique_ptr<Module> module,
                                                             const Pkcs11Uri& token,
                                                             SecretBytes pin,
                                                             const Options& options);
  // Logs out and closes every session. No Run may be in progress.
  ~SessionPool();
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // Runs `fn` on a pooled session, with one recovery and retry as described
  // above. Returns `fn`'s status, DeadlineExceeded if no session became free
  // in time, or Unavailable if recovery failed.
  absl::Status Run(OpKind kind, const std::function<absl::Status(Session&)>& fn);

  // Typed convenience around Run.
  template <typename T>
  absl::StatusOr<T> RunFor(OpKind kind, const std::function<absl::StatusOr<T>(Session&)>& fn) {
    std::optional<T> result;
    absl::Status status = Run(kind, [&](Session& session) -> absl::Status {
      absl::StatusOr<T> value = fn(session);
      if (!value.ok()) return value.status();
      result = *std::move(value);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return *std::move(result);
  }

  PoolMetrics Metrics() const;
  const Module& module() const { return *module_; }

  // Call after creating or destroying a key: every session drops its cached
  // handles and copies before its next lookup.
  void KeysChanged() { shared_.key_epoch.fetch_add(1, std::memory_order_acq_rel); }
  CK_SLOT_ID slot() const;

 private:
  SessionPool(std::unique_ptr<Module> module, Pkcs11Uri token, SecretBytes pin,
              const Options& options)
      : module_(std::move(module)),
        token_(std::move(token)),
        pin_(std::move(pin)),
        options_(options) {
    shared_.cache_handles = options.cache_handles_per_session;
    shared_.copy_keys = options.copy_keys_to_session_objects;
  }

  bool CanAcquire() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !free_.empty() || open_count_ < options_.size;
  }
  absl::StatusOr<std::unique_ptr<Session>> Acquire(absl::Time deadline)
      ABSL_SHARED_LOCKS_REQUIRED(recovery_mu_);
  void Release(std::unique_ptr<Session> session, bool discard)
      ABSL_SHARED_LOCKS_REQUIRED(recovery_mu_);
  // Opens a session; logs in if the token is not logged in (after a device
  // loss the login may be gone even though sessions open).
  absl::StatusOr<std::unique_ptr<Session>> OpenSession(CK_SLOT_ID slot, uint64_t generation);
  void CloseSession(std::unique_ptr<Session> session);
  absl::Status Login(Session& session);
  // Re-establishes every session if no one did since `failed_generation`.
  absl::Status Recover(uint64_t failed_generation, const absl::Status& cause)
      ABSL_LOCKS_EXCLUDED(recovery_mu_, mu_);
  void RecordOp(OpKind kind, bool ok, bool retried, absl::Duration latency);

  // Constant after construction (module_ is re-initialised only under an
  // exclusive recovery_mu_).
  const std::unique_ptr<Module> module_;
  const Pkcs11Uri token_;
  const SecretBytes pin_;
  const Options options_;
  Session::Shared shared_;

  // Held shared by every running operation, exclusively by Recover.
  SharedMutex recovery_mu_;
  // A session that is never lent out and holds the login: PKCS#11 logs the
  // application out when its last session on a token closes, which would
  // otherwise happen whenever the pool replaces its only open session.
  std::unique_ptr<Session> anchor_ ABSL_GUARDED_BY(recovery_mu_);

  mutable Mutex mu_ ABSL_ACQUIRED_AFTER(recovery_mu_);
  // Signalled whenever CanAcquire() may have become true.
  std::condition_variable_any session_freed_;
  std::vector<std::unique_ptr<Session>> free_ ABSL_GUARDED_BY(mu_);
  int open_count_ ABSL_GUARDED_BY(mu_) = 0;  // free + lent out
  int in_use_ ABSL_GUARDED_BY(mu_) = 0;
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Set when a recovery failed: the token may be logged out, so the next
  // caller recovers before using any session.
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  CK_SLOT_ID slot_ ABSL_GUARDED_BY(mu_) = 0;

  // Counters; atomics so that the hot path takes no extra lock.
  struct AtomicOpMetrics {
    std::atomic<uint64_t> ok{0}, failed{0}, retried{0}, latency_sum_us{0};
    std::array<std::atomic<uint64_t>, kLatencyBucketCount> buckets{};
  };
  std::array<AtomicOpMetrics, kOpKindCount> ops_;
  std::atomic<uint64_t> waits_{0}, wait_time_us_{0}, wait_timeouts_{0}, recoveries_{0},
      recovery_failures_{0}, sessions_replaced_{0};
};

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_SESSION_POOL_H_
