// Server TLS material that reloads from disk without a restart.
//
// TlsMaterialWatcher reads the server certificate chain, its private key and
// the client CA bundle from the configured paths, validates them as one set
// (every PEM parses, the key matches the leaf, the leaf is within its
// validity period, the CA bundle holds at least one certificate) and only
// then publishes them to a private staging directory: the chain and the key
// together in one file, so a reader can never see a new certificate with an
// old key, and the CA bundle in another, each replaced by an atomic rename.
// gRPC's FileWatcherCertificateProvider reads the staging files, so new
// handshakes pick up a published set within one refresh interval; existing
// connections keep theirs. A half-written, unparsable or mismatched set is
// never published: the previous one stays in use and the reload callback
// reports the error.
//
// Ownership: the watcher owns its polling thread and the staging files
// (removed on destruction). Thread safety: CheckNow() and the accessors may
// be called from any thread; the callback runs on the polling thread or on
// the thread calling CheckNow(), never concurrently with itself.
#ifndef HOSN_SERVER_API_TLS_MATERIAL_H_
#define HOSN_SERVER_API_TLS_MATERIAL_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"

namespace hosn::api {

struct TlsPaths {
  std::string server_certificate;  // PEM chain, leaf first
  std::string server_private_key;  // PEM private key, not readable by others
  std::string client_ca_bundle;    // PEM CAs that issue client certificates
};

// What a validated set says about itself (public facts only).
struct TlsMaterialInfo {
  absl::Time server_not_after;
  absl::Time earliest_ca_not_after;
  std::string server_subject;
};

// Validates one set as described above. InvalidArgument naming the part
// ("server certificate", "private key", "client ca bundle") that is
// malformed, mismatched or expired.
absl::StatusOr<TlsMaterialInfo> ValidateTlsMaterial(std::string_view certificate_chain_pem,
                                                    std::string_view private_key_pem,
                                                    std::string_view ca_bundle_pem);

class TlsMaterialWatcher {
 public:
  // Called after every check that found changed files: OK with the new info
  // when the set was published, the validation error otherwise.
  using ReloadCallback =
      std::function<void(const absl::Status& status, const TlsMaterialInfo& current)>;

  // Reads and validates the files once and publishes them into
  // `staging_directory` (created 0700 if absent). Fails as ValidateTlsMaterial
  // does, NotFound if a file is missing, Internal if staging fails. Polls
  // every `interval` (no polling if zero).
  static absl::StatusOr<std::unique_ptr<TlsMaterialWatcher>> Create(TlsPaths paths,
                                                                    std::string staging_directory,
                                                                    absl::Duration interval,
                                                                    ReloadCallback callback);
  ~TlsMaterialWatcher();
  TlsMaterialWatcher(const TlsMaterialWatcher&) = delete;
  TlsMaterialWatcher& operator=(const TlsMaterialWatcher&) = delete;

  // Rereads the files now. OK if nothing changed or the new set was
  // published; the validation error otherwise (the old set stays).
  absl::Status CheckNow();

  TlsMaterialInfo current() const;

  // mTLS server credentials over the staging files: the client certificate is
  // required and verified against the client CA bundle (TLS 1.2 and 1.3).
  // `refresh` is how often gRPC rereads the staging files (at least 1 s).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials(absl::Duration refresh) const;

 private:
  TlsMaterialWatcher(TlsPaths paths, std::string staging_directory, ReloadCallback callback);
  absl::Status CheckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(check_mu_);
  void PollLoop(absl::Duration interval);

  // Constant after construction.
  const TlsPaths paths_;
  const std::string staging_directory_;
  const ReloadCallback callback_;

  absl::Mutex check_mu_;  // serializes checks and the callback
  std::string last_seen_digest_ ABSL_GUARDED_BY(check_mu_);

  mutable absl::Mutex mu_;
  TlsMaterialInfo current_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread poller_;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_TLS_MATERIAL_H_
