// Node records and release policies as token data objects; see fleet_store.h.
#include "server/release/fleet_store.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace hosn::release {

namespace v1 = ::hosn::keyd::v1;

absl::Status CheckFleetName(std::string_view field, std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": want 1-128 characters"));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": want [A-Za-z0-9._-]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::NodeRecord>> ReadNode(hsm::KeyStore& store,
                                                       std::string_view node_id) {
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_id", node_id));
  HOSN_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        store.GetDataObject(absl::StrCat("node/", std::string(node_id))));
  if (!bytes.has_value()) return std::nullopt;
  v1::NodeRecord record;
  if (!record.ParseFromString(*bytes) || record.node_id() != node_id) {
    return absl::DataLossError(absl::StrCat("node record ", std::string(node_id), ": unreadable"));
  }
  return record;
}

absl::Status WriteNode(hsm::KeyStore& store, const v1::NodeRecord& record) {
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_id", record.node_id()));
  return store.PutDataObject(absl::StrCat("node/", record.node_id()), record.SerializeAsString());
}

absl::StatusOr<std::optional<v1::ReleasePolicy>> ReadPolicy(hsm::KeyStore& store,
                                                            std::string_view node_class) {
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_class", node_class));
  HOSN_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        store.GetDataObject(absl::StrCat("policy/", std::string(node_class))));
  if (!bytes.has_value()) return std::nullopt;
  v1::ReleasePolicy policy;
  if (!policy.ParseFromString(*bytes) || policy.node_class() != node_class) {
    return absl::DataLossError(absl::StrCat("policy ", std::string(node_class), ": unreadable"));
  }
  return policy;
}

absl::Status WritePolicy(hsm::KeyStore& store, const v1::ReleasePolicy& policy) {
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_class", policy.node_class()));
  return store.PutDataObject(absl::StrCat("policy/", policy.node_class()),
                             policy.SerializeAsString());
}

}  // namespace hosn::release
