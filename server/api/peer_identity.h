// Who is calling: the role and name carried by the leaf certificate of an
// mTLS peer.
//
// Identity comes only from the certificate, never from a request field. The
// leaf must carry exactly one URI SAN of the form "hosn://<role>/<name>",
// where role is node, operator, signer or auditor and name is 1-128 of
// [A-Za-z0-9._-]; it must also allow clientAuth in its extended key usage
// (checked again here although the TLS stack already refuses other leaves).
// The chain itself is verified by the TLS handshake before any of this runs.
// docs/api.md specifies the scheme.
//
// Safe from any thread. PeerIdentityFromContext remembers the identities it
// parsed, by the exact PEM bytes of the leaf (bounded; see the .cc).
#ifndef HOSN_SERVER_API_PEER_IDENTITY_H_
#define HOSN_SERVER_API_PEER_IDENTITY_H_

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace grpc {
class ServerContext;
}  // namespace grpc

namespace hosn::api {

enum class Role { kNode, kOperator, kSigner, kAuditor };

std::string_view RoleName(Role role);

struct PeerIdentity {
  Role role = Role::kNode;
  std::string name;
  // "hosn://<role>/<name>", for logs and audit entries.
  std::string uri;
};

// Parses the PEM leaf certificate. Unauthenticated when there is no
// certificate, no hosn:// URI SAN, more than one, an unknown role, a bad
// name, or no clientAuth usage.
absl::StatusOr<PeerIdentity> PeerIdentityFromPem(std::string_view leaf_pem);

// The identity of the peer of `context` (its verified leaf certificate).
// Unauthenticated as above.
absl::StatusOr<PeerIdentity> PeerIdentityFromContext(const grpc::ServerContext& context);

// PermissionDenied "role <r> may not call <method>" unless `identity.role` is
// one of `allowed`.
absl::Status Authorize(const PeerIdentity& identity, std::string_view method,
                       std::initializer_list<Role> allowed);

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_PEER_IDENTITY_H_
