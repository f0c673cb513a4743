// Fleet state on the HSM token: node records and release policies as PKCS#11
// data objects (proto/hosn/keyd/v1/fleet.proto), read through the KeyStore on
// every use so that a revocation or a policy change made on any replica
// holds on every replica at once. Values are never cached; the KeyStore only
// remembers which object holds each label (server/hsm/data_object_index.h),
// so a read costs the same however many nodes are enrolled.
//
// Labels: "node/<node_id>" and "policy/<node_class>"; ids and classes are
// 1-128 of [A-Za-z0-9._-] (the peer-identity name rule), so a label never
// collides with another kind's.
//
// Stateless over the KeyStore it is given; thread-safe as the KeyStore is.
// Writers on one replica should serialise read-modify-write sequences
// themselves (ReleaseService does).
#ifndef HOSN_SERVER_RELEASE_FLEET_STORE_H_
#define HOSN_SERVER_RELEASE_FLEET_STORE_H_

#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/fleet.pb.h"
#include "server/hsm/key_store.h"

namespace hosn::release {

// OK if `name` is 1-128 of [A-Za-z0-9._-]; InvalidArgument naming `field`.
absl::Status CheckFleetName(std::string_view field, std::string_view name);

// nullopt if the node was never enrolled. DataLoss if the stored bytes do not
// parse or name another node; KeyStore errors unchanged.
absl::StatusOr<std::optional<keyd::v1::NodeRecord>> ReadNode(hsm::KeyStore& store,
                                                             std::string_view node_id);
absl::Status WriteNode(hsm::KeyStore& store, const keyd::v1::NodeRecord& record);

// nullopt if the class has no policy. Errors as ReadNode.
absl::StatusOr<std::optional<keyd::v1::ReleasePolicy>> ReadPolicy(hsm::KeyStore& store,
                                                                  std::string_view node_class);
absl::Status WritePolicy(hsm::KeyStore& store, const keyd::v1::ReleasePolicy& policy);

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_FLEET_STORE_H_
