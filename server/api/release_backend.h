// The operations behind attested key release and fleet administration:
// challenges, releases, node enrollment and revocation, and release policy.
// Expressed in the wire messages of hosn.keyd.v1 (plain protobuf, no gRPC).
//
// Authorization has already happened when a method is called: `caller` is
// the verified identity. A denial of a node's evidence is returned as
// PermissionDenied carrying an attest::DenialReason (server/attest/denial.h);
// the API layer records the message in the audit log and tells the node only
// "denied". Handlers add the facts of their decision (model, node class,
// policy version...) to `audit`, which the API layer appends, durably, before
// the reply leaves the daemon.
//
// Implementations must be safe to call from many threads at once.
#ifndef HOSN_SERVER_API_RELEASE_BACKEND_H_
#define HOSN_SERVER_API_RELEASE_BACKEND_H_

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/admin.pb.h"
#include "hosn/keyd/v1/key_release.pb.h"
#include "server/api/audit_sink.h"
#include "server/api/peer_identity.h"

namespace hosn::api {

class ReleaseBackend {
 public:
  virtual ~ReleaseBackend() = default;

  virtual absl::StatusOr<keyd::v1::GetChallengeResponse> GetChallenge(
      const PeerIdentity& caller, const keyd::v1::GetChallengeRequest& request) = 0;
  virtual absl::StatusOr<keyd::v1::ReleaseKeyResponse> ReleaseKey(
      const PeerIdentity& caller, const keyd::v1::ReleaseKeyRequest& request, AuditNote* audit) = 0;
  virtual absl::StatusOr<keyd::v1::BeginEnrollmentResponse> BeginEnrollment(
      const PeerIdentity& caller, const keyd::v1::BeginEnrollmentRequest& request,
      AuditNote* audit) = 0;
  virtual absl::StatusOr<keyd::v1::EnrollNodeResponse> EnrollNode(
      const PeerIdentity& caller, const keyd::v1::EnrollNodeRequest& request, AuditNote* audit) = 0;
  virtual absl::StatusOr<keyd::v1::RevokeNodeResponse> RevokeNode(
      const PeerIdentity& caller, const keyd::v1::RevokeNodeRequest& request, AuditNote* audit) = 0;
  virtual absl::StatusOr<keyd::v1::SetReleasePolicyResponse> SetReleasePolicy(
      const PeerIdentity& caller, const keyd::v1::SetReleasePolicyRequest& request,
      AuditNote* audit) = 0;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_RELEASE_BACKEND_H_
