// HsmBackend: the daemon's KeyBackend over the PKCS#11 KeyStore.
//
// The backend owns the KeyStore (and with it the module, the session pool and
// the login). It starts even when the token is unreachable: a monitor thread
// retries KeyStore::Create every health-check interval and, once connected,
// probes the token with a key lookup; readiness changes are reported to the
// callback (the daemon flips gRPC health and the hosn_keyd_hsm_ready gauge).
// While not ready every operation fails with Unavailable. When the token
// returns, the pool's own recovery or a fresh Create brings it back without a
// restart.
//
// Signing uses one of the configured EC P-256 keys (hsm.signing_key_label,
// the default, and hsm.signing_keys), chosen by the request's key_label, and
// returns that key's certificate chain, read from its PEM file at start.
// Whenever a connection to the token is made, each key's certificate is
// checked against the HSM key's public key: at start a mismatch is fatal
// (Create fails), later it keeps the backend unready. Key material never
// passes through this class: DEKs leave the HSM only wrapped.
//
// Ownership: Shutdown() (or the destructor) stops the monitor and destroys
// the KeyStore, which closes every session and calls C_Finalize. Thread
// safety: every method is safe to call concurrently.
#ifndef HOSN_SERVER_KEYD_HSM_BACKEND_H_
#define HOSN_SERVER_KEYD_HSM_BACKEND_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "hosn/keyd/v1/config.pb.h"
#include "server/api/key_backend.h"
#include "server/hsm/key_store.h"

namespace hosn::keyd {

// OK if `signed_attributes` is a DER SET OF Attribute holding exactly one
// messageDigest attribute with exactly one OCTET STRING value equal to
// `digest`. InvalidArgument naming the defect otherwise.
absl::Status CheckCmsMessageDigest(std::string_view signed_attributes, std::string_view digest);

// DER certificates of a PEM chain file, in file order. InvalidArgument if it
// holds none or a bad one; the errors of ReadFile.
absl::StatusOr<std::vector<std::string>> ReadCertificateChainDer(const std::string& path);

class HsmBackend final : public api::KeyBackend {
 public:
  // Called from the monitor thread when readiness or the reason for being
  // unready changes; `why` is the status that made it unready (OK when ready).
  using ReadinessCallback = std::function<void(bool ready, const absl::Status& why)>;

  // InvalidArgument on an unusable configuration (bad URI, unreadable chain
  // file); FailedPrecondition "signing key L: ..." if the token is reachable
  // and a configured signing key is missing from it or its certificate does
  // not hold its public key. An unreachable token is not an error (see
  // above). Makes one connection attempt before returning, so a reachable
  // token is ready at once.
  static absl::StatusOr<std::unique_ptr<HsmBackend>> Create(const hosn::keyd::v1::HsmConfig& config,
                                                            absl::Duration max_wait,
                                                            ReadinessCallback callback);
  ~HsmBackend() override;

  // Stops the monitor, then closes sessions and finalizes the module.
  void Shutdown();

  // Lets CreateModelKey wrap a new DEK to a packing station's key, inside
  // the HSM, with the release key `release_key_label` and `kdf` ("null" or
  // "x963-sha256"), as a release does. Call before serving; without it a
  // station_public_key is FAILED_PRECONDITION.
  void EnableStationWrap(std::string release_key_label, std::string kdf) {
    station_release_key_label_ = std::move(release_key_label);
    station_kdf_ = std::move(kdf);
  }

  // The pool's counters, or nullopt while there is no KeyStore.
  std::optional<hsm::PoolMetrics> PoolMetrics() const;

  // The KeyStore while the token is ready, Unavailable otherwise; the
  // release service (server/release) shares this connection.
  absl::StatusOr<std::shared_ptr<hsm::KeyStore>> SharedStore() const { return Store(); }

  // Signs `message` with the EC P-256 private key `label` (ECDSA SHA-256,
  // DER) for the daemon's own records (audit checkpoints); never reachable
  // with caller-chosen bytes. Unavailable while the token is unreachable.
  absl::StatusOr<std::string> SignForDaemon(const std::string& label, std::string_view message);

  bool Ready() const override;
  absl::StatusOr<keyd::v1::SignManifestResponse> SignManifest(
      const api::PeerIdentity& caller, const keyd::v1::SignManifestRequest& request) override;
  absl::StatusOr<keyd::v1::GetSigningCertificatesResponse> GetSigningCertificates(
      const api::PeerIdentity& caller,
      const keyd::v1::GetSigningCertificatesRequest& request) override;
  absl::StatusOr<keyd::v1::SignStatementResponse> SignStatement(
      const api::PeerIdentity& caller, const keyd::v1::SignStatementRequest& request) override;
  absl::StatusOr<keyd::v1::CreateModelKeyResponse> CreateModelKey(
      const api::PeerIdentity& caller, const keyd::v1::CreateModelKeyRequest& request) override;
  absl::StatusOr<keyd::v1::CreateKekResponse> CreateKek(
      const api::PeerIdentity& caller, const keyd::v1::CreateKekRequest& request) override;
  absl::StatusOr<keyd::v1::RotateKeyResponse> RotateKey(
      const api::PeerIdentity& caller, const keyd::v1::RotateKeyRequest& request) override;
  absl::StatusOr<keyd::v1::ListKeysResponse> ListKeys(
      const api::PeerIdentity& caller, const keyd::v1::ListKeysRequest& request) override;

 private:
  // A configured signing key: its label and DER chain, both owned by chains_.
  struct SigningKeyChoice {
    const std::string* label;
    const std::vector<std::string>* chain;
  };

  HsmBackend(hosn::keyd::v1::HsmConfig config, hsm::KeyStoreOptions options,
             std::map<std::string, std::vector<std::string>> chains, ReadinessCallback callback);

  // OK if every configured signing key is an EC key pair on the token whose
  // public key is its certificate's. FailedPrecondition naming the key
  // otherwise; Unavailable/DeadlineExceeded if the token did not answer.
  absl::Status CheckSigningKeys(hsm::KeyStore& store) const;
  // The key `key_label` names (empty: the default). FailedPrecondition if no
  // signing key is configured, InvalidArgument if `key_label` is not one.
  absl::StatusOr<SigningKeyChoice> ChooseSigningKey(const std::string& key_label) const;

  // The KeyStore if ready, Unavailable otherwise.
  absl::StatusOr<std::shared_ptr<hsm::KeyStore>> Store() const;
  // One connection attempt or probe; updates readiness.
  void CheckOnce();
  void MonitorLoop();
  void SetReady(bool ready, const absl::Status& why);
  absl::StatusOr<keyd::v1::KeyDescription> DescribeKek(hsm::KeyStore& store,
                                                       const std::string& label);

  // Constant after construction.
  const hosn::keyd::v1::HsmConfig config_;
  const hsm::KeyStoreOptions options_;
  // Label -> DER chain (leaf first) of each configured signing key.
  const std::map<std::string, std::vector<std::string>> chains_;
  const ReadinessCallback callback_;
  // Set once before serving (EnableStationWrap), read-only afterwards.
  std::string station_release_key_label_;
  std::string station_kdf_;

  mutable absl::Mutex mu_;
  std::shared_ptr<hsm::KeyStore> store_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;       // readiness reported at least once
  std::string unready_reason_ ABSL_GUARDED_BY(mu_);  // last reported, while unready
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex admin_mu_;  // serializes key creation and rotation
  std::thread monitor_;
};

}  // namespace hosn::keyd

#endif  // HOSN_SERVER_KEYD_HSM_BACKEND_H_
