// ReleaseService: hosn-keyd's api::ReleaseBackend. Challenges, the attested
// release decision, the HSM re-wrap, enrollment, revocation and policy.
//
// Every piece of state lives in the HSM: the challenge-MAC key (challenge
// tokens and enrollment credentials), the release key pair (ECDH peer of
// every node), the KEKs, and the fleet's node records and policies as data
// objects (fleet_store.h). A replica holds only its configuration, the
// pinned manifest CA and a copy of the release public key, so any number of
// replicas can serve one fleet (docs/release.md).
//
// ReleaseKey checks, in order, and denies with a DenialReason at the first
// failure: node id cross-check, node record (unknown, revoked), challenge
// token (format, HSM MAC, caller binding, expiry), class policy, ephemeral
// key, quote + boot policy (attest::VerifyAttestation with qualifyingData
// from the nonce and the ephemeral key), manifest CMS signature against the
// pinned CA, model allowed for the class. Only then does the HSM unwrap the
// manifest's DEK and wrap it to the ephemeral key (KeyStore::WrapDekToPeer);
// the daemon sees only the wrapped result.
//
// Thread safety: all methods may run concurrently. Admin read-modify-write
// sequences (enroll, revoke, policy) are serialised within this replica.
#ifndef HOSN_SERVER_RELEASE_RELEASE_SERVICE_H_
#define HOSN_SERVER_RELEASE_RELEASE_SERVICE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/api/release_backend.h"
#include "server/attest/ek_certificate.h"
#include "server/hsm/key_store.h"
#include "server/release/manifest_cache.h"

namespace hosn::release {

struct ReleaseServiceOptions {
  std::string release_key_label;
  std::string challenge_mac_key_label;
  // "null" or "x963-sha256" (docs/release-wrap.md).
  std::string kdf = "null";
  absl::Duration challenge_ttl = absl::Seconds(60);
  absl::Duration enrollment_ttl = absl::Seconds(300);
  // PEM bundle of the CAs pinned for manifest signatures.
  std::string manifest_ca_pem;
  // PEM bundle of TPM manufacturer CAs for EK certificates at enrollment;
  // empty: requests carrying an EK certificate are refused.
  std::string ek_ca_pem;
  // PEM CRL bundle of those CAs (release.ek_crl_bundle_path); empty: no
  // revocation check. Read by Create, and again before an EK certificate is
  // verified whenever the file changed (device, inode, size or mtime) and on
  // ReloadEkCrls().
  std::string ek_crl_bundle_path;
  // How long a verified manifest signature is remembered (manifest_cache.h);
  // zero verifies every time.
  absl::Duration manifest_cache_ttl = absl::Seconds(60);
};

// The KeyStore while the HSM is reachable, Unavailable otherwise.
using KeyStoreProvider = std::function<absl::StatusOr<std::shared_ptr<hsm::KeyStore>>()>;

class ReleaseService final : public api::ReleaseBackend {
 public:
  // InvalidArgument if a label is empty, the KDF unknown, a TTL not positive,
  // the manifest CA bundle empty, a given EK CA bundle unparsable, or the EK
  // CRL bundle given without a CA bundle, unreadable or unparsable. Does not
  // touch the HSM.
  static absl::StatusOr<std::unique_ptr<ReleaseService>> Create(ReleaseServiceOptions options,
                                                                KeyStoreProvider store);

  absl::StatusOr<keyd::v1::GetChallengeResponse> GetChallenge(
      const api::PeerIdentity& caller, const keyd::v1::GetChallengeRequest& request) override;
  absl::StatusOr<keyd::v1::ReleaseKeyResponse> ReleaseKey(
      const api::PeerIdentity& caller, const keyd::v1::ReleaseKeyRequest& request,
      api::AuditNote* audit) override;
  absl::StatusOr<keyd::v1::BeginEnrollmentResponse> BeginEnrollment(
      const api::PeerIdentity& caller, const keyd::v1::BeginEnrollmentRequest& request,
      api::AuditNote* audit) override;
  absl::StatusOr<keyd::v1::EnrollNodeResponse> EnrollNode(
      const api::PeerIdentity& caller, const keyd::v1::EnrollNodeRequest& request,
      api::AuditNote* audit) override;
  absl::StatusOr<keyd::v1::RevokeNodeResponse> RevokeNode(
      const api::PeerIdentity& caller, const keyd::v1::RevokeNodeRequest& request,
      api::AuditNote* audit) override;
  absl::StatusOr<keyd::v1::SetReleasePolicyResponse> SetReleasePolicy(
      const api::PeerIdentity& caller, const keyd::v1::SetReleasePolicyRequest& request,
      api::AuditNote* audit) override;

  // Rereads the EK CRL bundle now (SIGHUP). OK if none is configured or the
  // new set is in use; FailedPrecondition naming release.ek_crl_bundle_path
  // otherwise, and EK certificates are then refused until a reread succeeds.
  absl::Status ReloadEkCrls();

 private:
  static constexpr size_t kMaxCrlBundleBytes = 64 << 20;
  ReleaseService(ReleaseServiceOptions options, KeyStoreProvider store,
                 std::unique_ptr<attest::EkCertificateVerifier> ek_ca);

  // Rereads the EK CRL bundle if `force` or the file changed since the last
  // successful read; see ReloadEkCrls.
  absl::Status RefreshEkCrls(bool force);
  hsm::KeyRef MacKey() const;
  hsm::KeyRef ReleaseKeyRef() const;
  // The release public key (SPKI DER), read from the HSM once: it is public
  // and fixed for the life of the key.
  absl::StatusOr<std::string> ReleasePublicKey(hsm::KeyStore& store);

  const ReleaseServiceOptions options_;
  const KeyStoreProvider store_;
  // Null when no EK CA bundle is configured: EK certificates are then refused.
  const std::unique_ptr<attest::EkCertificateVerifier> ek_ca_;
  VerifiedManifestCache manifests_;

  absl::Mutex public_key_mu_;
  std::optional<std::string> release_public_key_ ABSL_GUARDED_BY(public_key_mu_);
  absl::Mutex admin_mu_;  // serialises enroll / revoke / policy writes

  absl::Mutex crl_mu_;  // serialises CRL rereads
  // stat() of the CRL file at the last successful read.
  std::string crl_stamp_ ABSL_GUARDED_BY(crl_mu_);
  bool crl_usable_ ABSL_GUARDED_BY(crl_mu_) = false;
};

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_RELEASE_SERVICE_H_
