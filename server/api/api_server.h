// ApiServer: the gRPC listener of hosn-keyd, with its four services (key
// release, signing, admin, audit), grpc.health.v1 and server reflection.
//
// Every RPC goes through one path: the caller's identity is read from its
// verified client certificate (peer_identity.h), the method's allowed roles
// are checked, a node's request may name only the node itself, the handler
// runs, and the outcome is counted in ApiMetrics and handed to the observer
// (which the daemon uses for its log). Nothing is taken from request fields
// to decide who the caller is. The role table is in docs/api.md.
//
// Health: the overall status and each service's status are SERVING only
// while SetServing(true); the daemon flips it with the HSM's reachability.
//
// Audit: every decision (signing, key admin, enrollment, policy, release)
// and every authentication failure is appended to the audit sink before the
// reply is sent; see audit_sink.h.
//
// Ownership: the server borrows the backends and the metrics, which must
// outlive it. Thread safety: SetServing and Shutdown may be called from any
// thread; handlers run on gRPC's thread pool.
#ifndef HOSN_SERVER_API_API_SERVER_H_
#define HOSN_SERVER_API_API_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "server/api/audit_backend.h"
#include "server/api/audit_sink.h"
#include "server/api/key_backend.h"
#include "server/api/metrics.h"
#include "server/api/release_backend.h"

namespace hosn::api {

// One finished RPC, for the daemon's log. Contains no request data.
struct RpcRecord {
  std::string method;     // full name, "/hosn.keyd.v1.SigningService/SignManifest"
  std::string peer_uri;   // "hosn://signer/ci", or empty if unauthenticated
  grpc::StatusCode code;  // what the caller got
  std::string message;    // the status message the caller got
  absl::Duration latency;
};

// What the services delegate to; borrowed, must outlive the server. `keys` is
// required. A missing `release` or `audit` makes those RPCs answer
// UNIMPLEMENTED; a missing `audit_sink` means nothing is audited (tests only:
// the daemon always has one).
struct ApiBackends {
  KeyBackend* keys = nullptr;
  ReleaseBackend* release = nullptr;
  AuditBackend* audit = nullptr;
  AuditSink* audit_sink = nullptr;
};

struct ApiServerOptions {
  // "host:port"; port 0 picks a free port (see ApiServer::port()).
  std::string listen_address;
  // mTLS credentials (TlsMaterialWatcher::ServerCredentials).
  std::shared_ptr<grpc::ServerCredentials> credentials;
  int max_request_bytes = 4 << 20;
  int max_concurrent_streams = 100;
  // Called once per RPC, on the handler's thread, after the reply is decided.
  std::function<void(const RpcRecord&)> observer;
};

class ApiServer {
 public:
  // Builds and starts the server. InvalidArgument on bad options;
  // Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(const ApiServerOptions& options,
                                                          const ApiBackends& backends,
                                                          ApiMetrics* metrics);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Health status of the whole server and of every hosn service.
  void SetServing(bool serving);

  // Stops accepting RPCs, lets running ones finish for up to `grace`, then
  // cancels the rest. Idempotent.
  void Shutdown(absl::Duration grace);

  // Names of the services registered for health and reflection.
  static std::vector<std::string> ServiceNames();

 private:
  ApiServer() = default;

  struct Services;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_API_SERVER_H_
