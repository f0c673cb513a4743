// Read access to the audit log for auditors: stream entries, fetch the latest
// signed checkpoint. Implemented by the daemon over server/audit.
//
// Thread safety: methods are called from many threads at once.
#ifndef HOSN_SERVER_API_AUDIT_BACKEND_H_
#define HOSN_SERVER_API_AUDIT_BACKEND_H_

#include <functional>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/audit.pb.h"
#include "server/api/peer_identity.h"

namespace hosn::api {

class AuditBackend {
 public:
  virtual ~AuditBackend() = default;

  // Calls `write` for every entry from request.from_sequence on, in order.
  // With request.follow, waits for new entries until `cancelled()` returns
  // true. Stops early, returning OK, when `write` returns false (the stream
  // broke).
  virtual absl::Status StreamAuditLog(
      const PeerIdentity& caller, const keyd::v1::StreamAuditLogRequest& request,
      const std::function<bool(const keyd::v1::StreamAuditLogResponse&)>& write,
      const std::function<bool()>& cancelled) = 0;
  virtual absl::StatusOr<keyd::v1::GetCheckpointResponse> GetCheckpoint(
      const PeerIdentity& caller, const keyd::v1::GetCheckpointRequest& request) = 0;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_AUDIT_BACKEND_H_
