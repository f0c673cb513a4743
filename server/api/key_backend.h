// The operations the gRPC services delegate to: everything that needs the
// HSM, expressed in the wire messages of hosn.keyd.v1 (plain protobuf, no
// gRPC). The daemon implements it over the PKCS#11 KeyStore; tests use a
// fake. Authorization has already happened when a method is called: `caller`
// is the verified identity, passed on for audit entries.
//
// Implementations must be safe to call from many threads at once. Error codes
// follow server/hsm/key_store.h; Unavailable while the HSM is unreachable.
#ifndef HOSN_SERVER_API_KEY_BACKEND_H_
#define HOSN_SERVER_API_KEY_BACKEND_H_

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/admin.pb.h"
#include "hosn/keyd/v1/signing.pb.h"
#include "server/api/peer_identity.h"

namespace hosn::api {

class KeyBackend {
 public:
  virtual ~KeyBackend() = default;

  // True while the HSM token is reachable and logged in.
  virtual bool Ready() const = 0;

  virtual absl::StatusOr<keyd::v1::SignManifestResponse> SignManifest(
      const PeerIdentity& caller, const keyd::v1::SignManifestRequest& request) = 0;
  virtual absl::StatusOr<keyd::v1::GetSigningCertificatesResponse> GetSigningCertificates(
      const PeerIdentity& caller, const keyd::v1::GetSigningCertificatesRequest& request) = 0;
  // Signs a lineage statement (DSSE over PAE) after checking that the payload
  // is one (docs/lineage.md). Unimplemented unless a backend provides it.
  virtual absl::StatusOr<keyd::v1::SignStatementResponse> SignStatement(
      const PeerIdentity& /*caller*/, const keyd::v1::SignStatementRequest& /*request*/) {
    return absl::UnimplementedError("lineage signing not available");
  }
  virtual absl::StatusOr<keyd::v1::CreateModelKeyResponse> CreateModelKey(
      const PeerIdentity& caller, const keyd::v1::CreateModelKeyRequest& request) = 0;
  virtual absl::StatusOr<keyd::v1::CreateKekResponse> CreateKek(
      const PeerIdentity& caller, const keyd::v1::CreateKekRequest& request) = 0;
  virtual absl::StatusOr<keyd::v1::RotateKeyResponse> RotateKey(
      const PeerIdentity& caller, const keyd::v1::RotateKeyRequest& request) = 0;
  virtual absl::StatusOr<keyd::v1::ListKeysResponse> ListKeys(
      const PeerIdentity& caller, const keyd::v1::ListKeysRequest& request) = 0;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_KEY_BACKEND_H_
