#include "server/hsm/session_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/call_deadline.h"
#include "common/base/status_macros.h"
#include "server/hsm/ckr.h"

namespace hosn::hsm {
namespace {

// Objects fetched per C_FindObjects call; enough to count duplicates.
constexpr CK_ULONG kFindBatch = 16;
// Keys with one label beyond which a search stops: far past "ambiguous".
constexpr size_t kMaxSameLabel = 1024;

bool SameKey(const KeyRef& a, const KeyRef& b) {
  return a.key_class == b.key_class && a.key_type == b.key_type && a.label == b.label &&
         a.id == b.id;
}

}  // namespace

CK_OBJECT_CLASS ToCkClass(KeyClass key_class) {
  switch (key_class) {
    case KeyClass::kSecretKey:
      return CKO_SECRET_KEY;
    case KeyClass::kPrivateKey:
      return CKO_PRIVATE_KEY;
    case KeyClass::kPublicKey:
      return CKO_PUBLIC_KEY;
  }
  return CKO_DATA;
}

CK_KEY_TYPE ToCkKeyType(KeyType key_type) {
  switch (key_type) {
    case KeyType::kAes:
      return CKK_AES;
    case KeyType::kGenericSecret:
      return CKK_GENERIC_SECRET;
    case KeyType::kEc:
      return CKK_EC;
    case KeyType::kRsa:
      return CKK_RSA;
    case KeyType::kEcEdwards:
      return CKK_EC_EDWARDS;
  }
  return CKK_VENDOR_DEFINED;
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Session::FindAll(const KeyRef& ref, bool* on_token) {
  if (ref.label.empty()) return absl::InvalidArgumentError("key reference needs a label");
  ReaderLock no_copy_in_progress(&shared_->copy_mu);
  HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, Search(ref, true));
  if (on_token != nullptr) *on_token = !found.empty();
  if (!found.empty()) return found;
  return Search(ref, false);
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Session::Search(const KeyRef& ref, bool token) {
  // CK_ULONG attributes are passed with sizeof(CK_ULONG) (case P6).
  CK_OBJECT_CLASS key_class = ToCkClass(ref.key_class);
  CK_KEY_TYPE key_type = ToCkKeyType(ref.key_type);
  CK_BBOOL on_token_value = token ? CK_TRUE : CK_FALSE;
  std::vector<CK_ATTRIBUTE> attributes = {
      {CKA_CLASS, &key_class, sizeof(key_class)},
      {CKA_KEY_TYPE, &key_type, sizeof(key_type)},
      {CKA_LABEL, const_cast<char*>(ref.label.data()), ref.label.size()},
      {CKA_TOKEN, &on_token_value, sizeof(on_token_value)},
  };
  if (ref.id.has_value()) {
    attributes.push_back({CKA_ID, const_cast<char*>(ref.id->data()), ref.id->size()});
  }

  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      RunFind(attributes.data(), attributes.size(), kMaxSameLabel);
  // More than the cap is reported like any other ambiguity by the caller.
  if (found.status().code() == absl::StatusCode::kResourceExhausted) {
    return std::vector<CK_OBJECT_HANDLE>(kMaxSameLabel + 1, CK_INVALID_HANDLE);
  }
  return found;
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Session::FindObjects(CK_ATTRIBUTE* attributes,
                                                                   CK_ULONG count,
                                                                   size_t max_objects) {
  ReaderLock no_copy_in_progress(&shared_->copy_mu);
  return RunFind(attributes, count, max_objects);
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Session::RunFind(CK_ATTRIBUTE* attributes,
                                                               CK_ULONG count, size_t max_objects) {
  HOSN_RETURN_IF_ERROR(
      CkrStatus(functions_->C_FindObjectsInit(handle_, attributes, count), "C_FindObjectsInit"));
  FindGuard guard(*this);
  std::vector<CK_OBJECT_HANDLE> found;
  for (;;) {
    CK_OBJECT_HANDLE batch[kFindBatch];
    CK_ULONG got = 0;
    HOSN_RETURN_IF_ERROR(
        CkrStatus(functions_->C_FindObjects(handle_, batch, kFindBatch, &got), "C_FindObjects"));
    if (got > kFindBatch) return absl::InternalError("C_FindObjects: bad count");
    found.insert(found.end(), batch, batch + got);
    if (found.size() > max_objects) {
      return absl::ResourceExhaustedError(
          absl::StrCat("search: more than ", max_objects, " objects"));
    }
    if (got < kFindBatch) break;
  }
  return found;
}

void Session::DropCache() {
  for (CK_OBJECT_HANDLE copy : copies_) functions_->C_DestroyObject(handle_, copy);
  copies_.clear();
  cache_.clear();
}

absl::StatusOr<CK_OBJECT_HANDLE> Session::Resolve(const KeyRef& ref, bool use_cache) {
  // The cache is dropped whenever this process creates or destroys a key
  // (key_epoch). Changes made by another process reach it only when the
  // session is replaced: hosn-keyd owns its token (docs/hsm.md, "Caching").
  const bool cacheable = use_cache && shared_->cache_handles;
  if (cacheable) {
    const uint64_t epoch = shared_->key_epoch.load(std::memory_order_acquire);
    if (epoch != cache_epoch_) {
      DropCache();
      cache_epoch_ = epoch;
    }
    for (const CacheEntry& entry : cache_) {
      if (SameKey(entry.ref, ref)) return entry.handle;
    }
  }
  bool on_token = false;
  HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, FindAll(ref, &on_token));
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("key not found: ", ToAbsl(KeyClassName(ref.key_class)),
                                            " ", ToAbsl(KeyTypeName(ref.key_type)), " '", ref.label,
                                            "'"));
  }
  if (found.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("ambiguous key: ", found.size(), " matches for '", ref.label, "'"));
  }
  if (!cacheable) return found.front();

  // A session-object copy without label or id. If the module refuses to
  // copy (CKA_COPYABLE false, no C_CopyObject), the token object serves.
  CK_OBJECT_HANDLE handle = found.front();
  if (shared_->copy_keys && on_token) {
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE copy_template[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_LABEL, nullptr, 0},
        {CKA_ID, nullptr, 0},
    };
    CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
    CK_RV rv = CKR_OK;
    {
      WriterLock no_search_in_progress(&shared_->copy_mu);
      rv = functions_->C_CopyObject(handle_, handle, copy_template, 3, &copy);
    }
    if (rv == CKR_OK) {
      copies_.push_back(copy);
      handle = copy;
    }
  }
  cache_.push_back({ref, handle});
  return handle;
}

absl::StatusOr<std::unique_ptr<SessionPool>> SessionPool::Create(std::unique_ptr<Module> module,
                                                                 const Pkcs11Uri& token,
                                                                 SecretBytes pin,
                                                                 const Options& options) {
  if (options.size < 1) return absl::InvalidArgumentError("session pool size must be >= 1");
  HOSN_ASSIGN_OR_RETURN(CK_SLOT_ID slot, module->FindSlot(token));
  std::unique_ptr<SessionPool> pool(
      new SessionPool(std::move(module), token, std::move(pin), options));

  // The anchor session logs in; the login covers every session of this
  // process on the token.
  HOSN_ASSIGN_OR_RETURN(std::unique_ptr<Session> anchor, pool->OpenSession(slot, 0));
  HOSN_ASSIGN_OR_RETURN(std::unique_ptr<Session> first, pool->OpenSession(slot, 0));
  WriterLock recovery_lock(&pool->recovery_mu_);
  MutexLock lock(&pool->mu_);
  pool->anchor_ = std::move(anchor);
  pool->slot_ = slot;
  pool->free_.push_back(std::move(first));
  pool->open_count_ = 1;
  return pool;
}

SessionPool::~SessionPool() {
  std::vector<std::unique_ptr<Session>> sessions;
  std::unique_ptr<Session> anchor;
  {
    WriterLock recovery_lock(&recovery_mu_);
    MutexLock lock(&mu_);
    sessions.swap(free_);
    anchor = std::move(anchor_);
  }
  for (auto& session : sessions) CloseSession(std::move(session));
  if (anchor != nullptr) {
    module_->function_list()->C_Logout(anchor->handle());
    CloseSession(std::move(anchor));
  }
}

CK_SLOT_ID SessionPool::slot() const {
  MutexLock lock(&mu_);
  return slot_;
}

absl::StatusOr<std::unique_ptr<Session>> SessionPool::OpenSession(CK_SLOT_ID slot,
                                                                  uint64_t generation) {
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  HOSN_RETURN_IF_ERROR(
      CkrStatus(module_->function_list()->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                                        nullptr, nullptr, &handle),
                "C_OpenSession"));
  std::unique_ptr<Session> session(
      new Session(module_->function_list(), handle, generation, &shared_));
  CK_SESSION_INFO info;
  absl::Status status =
      CkrStatus(module_->function_list()->C_GetSessionInfo(handle, &info), "C_GetSessionInfo");
  if (status.ok() && info.state != CKS_RW_USER_FUNCTIONS && info.state != CKS_RO_USER_FUNCTIONS) {
    status = Login(*session);
  }
  if (!status.ok()) {
    CloseSession(std::move(session));
    return status;
  }
  return session;
}

void SessionPool::CloseSession(std::unique_ptr<Session> session) {
  // Errors are expected here (the session may already be gone) and change
  // nothing: the handle is dropped either way.
  module_->function_list()->C_CloseSession(session->handle());
}

absl::Status SessionPool::Login(Session& session) {
  std::span<const uint8_t> pin = RevealSecret(pin_);
  const CK_RV rv = module_->function_list()->C_Login(
      session.handle(), CKU_USER, const_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
  if (rv == CKR_USER_ALREADY_LOGGED_IN) return absl::OkStatus();
  return CkrStatus(rv, "C_Login");
}

absl::StatusOr<std::unique_ptr<Session>> SessionPool::Acquire(absl::Time deadline) {
  uint64_t generation = 0;
  CK_SLOT_ID slot = 0;
  {
    MutexLock lock(&mu_);
    if (!CanAcquire()) {
      const absl::Time start = absl::Now();
      ++waiters_;
      const bool ready =
          AwaitWithDeadline(session_freed_, mu_, deadline,
                            [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return CanAcquire(); });
      --waiters_;
      waits_.fetch_add(1, std::memory_order_relaxed);
      wait_time_us_.fetch_add(absl::ToInt64Microseconds(absl::Now() - start),
                              std::memory_order_relaxed);
      if (!ready) {
        wait_timeouts_.fetch_add(1, std::memory_order_relaxed);
        return absl::DeadlineExceededError(
            absl::StrCat("hsm session pool: all ", options_.size, " sessions busy"));
      }
    }
    ++in_use_;
    if (!free_.empty()) {
      std::unique_ptr<Session> session = std::move(free_.back());
      free_.pop_back();
      return session;
    }
    // Replace a session that was closed: reserve its place, open it unlocked.
    ++open_count_;
    generation = generation_;
    slot = slot_;
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession(slot, generation);
  if (!session.ok()) {
    MutexLock lock(&mu_);
    --open_count_;
    --in_use_;
    session_freed_.notify_one();
  }
  return session;
}

void SessionPool::Release(std::unique_ptr<Session> session, bool discard) {
  bool close = discard || session->poisoned_;
  {
    MutexLock lock(&mu_);
    close = close || session->generation_ != generation_;
    --in_use_;
    if (!close) {
      free_.push_back(std::move(session));
      session_freed_.notify_one();
      return;
    }
    --open_count_;
    session_freed_.notify_one();
  }
  sessions_replaced_.fetch_add(1, std::memory_order_relaxed);
  CloseSession(std::move(session));
}

absl::Status SessionPool::Recover(uint64_t failed_generation, const absl::Status& cause) {
  WriterLock recovery_lock(&recovery_mu_);

  // 1. No operation is running now. Someone else may have recovered already.
  std::vector<std::unique_ptr<Session>> old_sessions;
  CK_SLOT_ID old_slot = 0;
  {
    MutexLock lock(&mu_);
    if (generation_ != failed_generation) return absl::OkStatus();
    old_sessions.swap(free_);
    open_count_ = 0;
    old_slot = slot_;
  }

  // 2. Drop every session: their handles, and every object handle found in
  //    them, are dead.
  for (auto& session : old_sessions) CloseSession(std::move(session));
  if (anchor_ != nullptr) CloseSession(std::move(anchor_));
  CK_FUNCTION_LIST* functions = module_->function_list();
  functions->C_CloseAllSessions(old_slot);

  // 3. Re-initialise the module if the device went away, find the token
  //    again (its slot id may have moved), open a session and log in.
  auto fail = [this](const absl::Status& status) {
    recovery_failures_.fetch_add(1, std::memory_order_relaxed);
    MutexLock lock(&mu_);
    broken_ = true;
    session_freed_.notify_all();
    return absl::UnavailableError(
        absl::StrCat("hsm unavailable: recovery failed: ", status.message()));
  };
  if (options_.reinitialize_module_on_device_error && NeedsModuleReinit(cause)) {
    if (absl::Status status = module_->Reinitialize(); !status.ok()) return fail(status);
  }
  absl::StatusOr<CK_SLOT_ID> slot = module_->FindSlot(token_);
  if (!slot.ok()) return fail(slot.status());
  absl::StatusOr<std::unique_ptr<Session>> anchor = OpenSession(*slot, failed_generation + 1);
  if (!anchor.ok()) return fail(anchor.status());
  anchor_ = *std::move(anchor);
  absl::StatusOr<std::unique_ptr<Session>> first = OpenSession(*slot, failed_generation + 1);
  if (!first.ok()) return fail(first.status());

  // 4. Publish the new generation; other sessions are opened on demand.
  MutexLock lock(&mu_);
  slot_ = *slot;
  broken_ = false;
  generation_ = failed_generation + 1;
  free_.push_back(*std::move(first));
  open_count_ = 1;
  session_freed_.notify_all();
  recoveries_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status SessionPool::Run(OpKind kind, const std::function<absl::Status(Session&)>& fn) {
  const absl::Time start = absl::Now();
  absl::Status status;
  bool retried = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint64_t generation = 0;
    bool broken = false;
    {
      MutexLock lock(&mu_);
      generation = generation_;
      broken = broken_;
    }
    if (broken) {
      // An earlier recovery failed; try again before touching a session.
      if (absl::Status recovered = Recover(generation, CkrStatus(CKR_DEVICE_REMOVED, "earlier"));
          !recovered.ok()) {
        status = recovered;
        break;
      }
      MutexLock lock(&mu_);
      generation = generation_;
    }
    {
      ReaderLock recovery_lock(&recovery_mu_);
      // The pool's own bound, or the caller's RPC deadline if that ends first.
      absl::StatusOr<std::unique_ptr<Session>> session =
          Acquire(std::min(start + options_.acquire_timeout, CurrentCallDeadline()));
      if (session.ok()) {
        status = fn(**session);
        // A failed PKCS#11 call may leave an operation active on the
        // session (case P7); never lend such a session again.
        const bool discard = !status.ok() && CkrOf(status).has_value();
        Release(*std::move(session), discard);
      } else {
        status = session.status();
      }
    }
    if (status.ok() || attempt == 1 || !IsRecoverable(status)) break;

    // A dead session, login or device: re-establish, then retry once.
    if (absl::Status recovered = Recover(generation, status); !recovered.ok()) {
      status = recovered;
      break;
    }
    retried = true;
  }
  RecordOp(kind, status.ok(), retried, absl::Now() - start);
  return status;
}

void SessionPool::RecordOp(OpKind kind, bool ok, bool retried, absl::Duration latency) {
  AtomicOpMetrics& metrics = ops_[static_cast<size_t>(kind)];
  (ok ? metrics.ok : metrics.failed).fetch_add(1, std::memory_order_relaxed);
  if (retried) metrics.retried.fetch_add(1, std::memory_order_relaxed);
  const auto us = static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Microseconds(latency)));
  metrics.latency_sum_us.fetch_add(us, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < kLatencyBucketBoundsUs.size() && us > kLatencyBucketBoundsUs[bucket]) ++bucket;
  metrics.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
}

PoolMetrics SessionPool::Metrics() const {
  PoolMetrics snapshot;
  for (size_t i = 0; i < kOpKindCount; ++i) {
    OpMetrics& out = snapshot.ops[i];
    out.ok = ops_[i].ok.load(std::memory_order_relaxed);
    out.failed = ops_[i].failed.load(std::memory_order_relaxed);
    out.retried = ops_[i].retried.load(std::memory_order_relaxed);
    out.latency_sum_us = ops_[i].latency_sum_us.load(std::memory_order_relaxed);
    for (size_t b = 0; b < kLatencyBucketCount; ++b) {
      out.latency_buckets[b] = ops_[i].buckets[b].load(std::memory_order_relaxed);
    }
  }
  snapshot.waits = waits_.load(std::memory_order_relaxed);
  snapshot.wait_time_us = wait_time_us_.load(std::memory_order_relaxed);
  snapshot.wait_timeouts = wait_timeouts_.load(std::memory_order_relaxed);
  snapshot.recoveries = recoveries_.load(std::memory_order_relaxed);
  snapshot.recovery_failures = recovery_failures_.load(std::memory_order_relaxed);
  snapshot.sessions_replaced = sessions_replaced_.load(std::memory_order_relaxed);
  snapshot.size = options_.size;
  MutexLock lock(&mu_);
  snapshot.in_use = in_use_;
  snapshot.waiters = waiters_;
  return snapshot;
}

std::string_view OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kFind:
      return "find";
    case OpKind::kGenerate:
      return "generate";
    case OpKind::kWrap:
      return "wrap";
    case OpKind::kUnwrap:
      return "unwrap";
    case OpKind::kRewrap:
      return "rewrap";
    case OpKind::kSign:
      return "sign";
    case OpKind::kExportPublic:
      return "export_public";
    case OpKind::kOther:
      return "other";
  }
  return "other";
}

}  // namespace hosn::hsm
