#include "server/api/api_server.h"

#include <initializer_list>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "health_schema.pb.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"
#include "hosn/keyd/v1/audit.grpc.pb.h"
#include "hosn/keyd/v1/key_release.grpc.pb.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"
#include "server/api/peer_identity.h"
#include "server/api/status_mapping.h"

namespace hosn::api {
namespace {

namespace v1 = ::hosn::keyd::v1;

// The single path every RPC takes: identify, authorize, run, count, report.
class RpcRunner {
 public:
  RpcRunner(ApiMetrics* metrics, std::function<void(const RpcRecord&)> observer)
      : metrics_(metrics), observer_(std::move(observer)) {}

  template <typename Fn>
  grpc::Status Run(grpc::ServerContext* context, std::string_view method,
                   std::initializer_list<Role> allowed, Fn&& fn) const {
    const absl::Time start = absl::Now();
    std::string peer_uri;
    absl::Status status = [&]() -> absl::Status {
      absl::StatusOr<PeerIdentity> identity = PeerIdentityFromContext(*context);
      if (!identity.ok()) return identity.status();
      peer_uri = identity->uri;
      absl::Status allowed_status = Authorize(*identity, method, allowed);
      if (!allowed_status.ok()) return allowed_status;
      // TODO(#4): pass the client deadline down so HSM waits end with the call.
      if (context->IsCancelled()) return absl::CancelledError("cancelled by the caller");
      return fn(*identity);
    }();
    grpc::Status result = ToGrpcStatus(status);
    const absl::Duration latency = absl::Now() - start;
    if (metrics_ != nullptr) metrics_->RecordRpc(method, result.error_code(), latency);
    if (observer_) {
      observer_(RpcRecord{std::string(method), std::move(peer_uri), result.error_code(),
                          result.error_message(), latency});
    }
    return result;
  }

 private:
  ApiMetrics* const metrics_;
  const std::function<void(const RpcRecord&)> observer_;
};

// A node may name only itself: an empty node_id means "me"; any other value
// must equal the name in its certificate (case G2).
absl::Status CheckNodeSelf(const PeerIdentity& caller, const std::string& node_id) {
  if (node_id.empty() || node_id == caller.name) return absl::OkStatus();
  return absl::PermissionDeniedError("node may only act for itself");
}

// Copies a backend answer into the gRPC response.
template <typename Response>
absl::Status Deliver(absl::StatusOr<Response> answer, Response* response) {
  if (!answer.ok()) return answer.status();
  *response = *std::move(answer);
  return absl::OkStatus();
}

class KeyReleaseServiceImpl final : public v1::KeyReleaseService::Service {
 public:
  explicit KeyReleaseServiceImpl(const RpcRunner* runner) : runner_(runner) {}

  grpc::Status GetChallenge(grpc::ServerContext* context, const v1::GetChallengeRequest* request,
                            v1::GetChallengeResponse*) override {
    return runner_->Run(context, "/hosn.keyd.v1.KeyReleaseService/GetChallenge", {Role::kNode},
                        [&](const PeerIdentity& caller) -> absl::Status {
                          absl::Status self = CheckNodeSelf(caller, request->node_id());
                          if (!self.ok()) return self;
                          // TODO(#5): stateless HSM-MACed challenges.
                          return absl::UnimplementedError("challenge: not yet available");
                        });
  }

  grpc::Status ReleaseKey(grpc::ServerContext* context, const v1::ReleaseKeyRequest* request,
                          v1::ReleaseKeyResponse*) override {
    return runner_->Run(context, "/hosn.keyd.v1.KeyReleaseService/ReleaseKey", {Role::kNode},
                        [&](const PeerIdentity& caller) -> absl::Status {
                          absl::Status self = CheckNodeSelf(caller, request->node_id());
                          if (!self.ok()) return self;
                          // TODO(#5): quote verification, policy and HSM re-wrap.
                          return absl::UnimplementedError("release: not yet available");
                        });
  }

 private:
  const RpcRunner* const runner_;
};

class SigningServiceImpl final : public v1::SigningService::Service {
 public:
  SigningServiceImpl(const RpcRunner* runner, KeyBackend* backend)
      : runner_(runner), backend_(backend) {}

  grpc::Status SignManifest(grpc::ServerContext* context, const v1::SignManifestRequest* request,
                            v1::SignManifestResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.SigningService/SignManifest",
                        {Role::kSigner, Role::kOperator}, [&](const PeerIdentity& caller) {
                          if (request->manifest().empty()) {
                            return absl::InvalidArgumentError("manifest: empty");
                          }
                          return Deliver(backend_->SignManifest(caller, *request), response);
                        });
  }

  grpc::Status GetSigningCertificates(grpc::ServerContext* context,
                                      const v1::GetSigningCertificatesRequest* request,
                                      v1::GetSigningCertificatesResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.SigningService/GetSigningCertificates",
                        {Role::kSigner, Role::kOperator}, [&](const PeerIdentity& caller) {
                          return Deliver(backend_->GetSigningCertificates(caller, *request),
                                         response);
                        });
  }

 private:
  const RpcRunner* const runner_;
  KeyBackend* const backend_;
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  AdminServiceImpl(const RpcRunner* runner, KeyBackend* backend)
      : runner_(runner), backend_(backend) {}

  grpc::Status CreateModelKey(grpc::ServerContext* context,
                              const v1::CreateModelKeyRequest* request,
                              v1::CreateModelKeyResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/CreateModelKey", {Role::kOperator},
                        [&](const PeerIdentity& caller) {
                          return Deliver(backend_->CreateModelKey(caller, *request), response);
                        });
  }

  grpc::Status CreateKek(grpc::ServerContext* context, const v1::CreateKekRequest* request,
                         v1::CreateKekResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/CreateKek", {Role::kOperator},
                        [&](const PeerIdentity& caller) {
                          return Deliver(backend_->CreateKek(caller, *request), response);
                        });
  }

  grpc::Status RotateKey(grpc::ServerContext* context, const v1::RotateKeyRequest* request,
                         v1::RotateKeyResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/RotateKey", {Role::kOperator},
                        [&](const PeerIdentity& caller) {
                          return Deliver(backend_->RotateKey(caller, *request), response);
                        });
  }

  grpc::Status ListKeys(grpc::ServerContext* context, const v1::ListKeysRequest* request,
                        v1::ListKeysResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/ListKeys", {Role::kOperator},
                        [&](const PeerIdentity& caller) {
                          return Deliver(backend_->ListKeys(caller, *request), response);
                        });
  }

  grpc::Status EnrollNode(grpc::ServerContext* context, const v1::EnrollNodeRequest*,
                          v1::EnrollNodeResponse*) override {
    return NotYet(context, "/hosn.keyd.v1.AdminService/EnrollNode", "enrollment");
  }

  grpc::Status RevokeNode(grpc::ServerContext* context, const v1::RevokeNodeRequest*,
                          v1::RevokeNodeResponse*) override {
    return NotYet(context, "/hosn.keyd.v1.AdminService/RevokeNode", "revocation");
  }

  grpc::Status SetReleasePolicy(grpc::ServerContext* context, const v1::SetReleasePolicyRequest*,
                                v1::SetReleasePolicyResponse*) override {
    return NotYet(context, "/hosn.keyd.v1.AdminService/SetReleasePolicy", "release policy");
  }

 private:
  // TODO(#5): enrollment, revocation and policy arrive with attested release.
  grpc::Status NotYet(grpc::ServerContext* context, std::string_view method,
                      std::string_view what) {
    return runner_->Run(context, method, {Role::kOperator}, [&](const PeerIdentity&) {
      return absl::UnimplementedError(absl::StrCat(ToAbsl(what), ": not yet available"));
    });
  }

  const RpcRunner* const runner_;
  KeyBackend* const backend_;
};

class AuditServiceImpl final : public v1::AuditService::Service {
 public:
  explicit AuditServiceImpl(const RpcRunner* runner) : runner_(runner) {}

  grpc::Status StreamAuditLog(grpc::ServerContext* context, const v1::StreamAuditLogRequest*,
                              grpc::ServerWriter<v1::StreamAuditLogResponse>*) override {
    // TODO(#7): stream the hash-chained audit log.
    return runner_->Run(context, "/hosn.keyd.v1.AuditService/StreamAuditLog", {Role::kAuditor},
                        [](const PeerIdentity&) {
                          return absl::UnimplementedError("audit log: not yet available");
                        });
  }

  grpc::Status GetCheckpoint(grpc::ServerContext* context, const v1::GetCheckpointRequest*,
                             v1::GetCheckpointResponse*) override {
    // TODO(#7): signed checkpoints.
    return runner_->Run(context, "/hosn.keyd.v1.AuditService/GetCheckpoint", {Role::kAuditor},
                        [](const PeerIdentity&) {
                          return absl::UnimplementedError("audit checkpoint: not yet available");
                        });
  }

 private:
  const RpcRunner* const runner_;
};

}  // namespace

struct ApiServer::Services {
  Services(ApiMetrics* metrics, std::function<void(const RpcRecord&)> observer, KeyBackend* backend)
      : runner(metrics, std::move(observer)),
        key_release(&runner),
        signing(&runner, backend),
        admin(&runner, backend),
        audit(&runner) {}

  RpcRunner runner;
  KeyReleaseServiceImpl key_release;
  SigningServiceImpl signing;
  AdminServiceImpl admin;
  AuditServiceImpl audit;
};

std::vector<std::string> ApiServer::ServiceNames() {
  return {v1::KeyReleaseService::service_full_name(), v1::SigningService::service_full_name(),
          v1::AdminService::service_full_name(), v1::AuditService::service_full_name()};
}

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiServerOptions& options,
                                                            KeyBackend* backend,
                                                            ApiMetrics* metrics) {
  if (options.listen_address.empty()) return absl::InvalidArgumentError("listen address: empty");
  if (options.credentials == nullptr) return absl::InvalidArgumentError("credentials: missing");
  if (backend == nullptr) return absl::InvalidArgumentError("backend: missing");
  if (options.max_request_bytes <= 0 || options.max_concurrent_streams <= 0) {
    return absl::InvalidArgumentError("limits: must be positive");
  }

  // Health and reflection are process-wide switches read by the builder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Referencing the health schema keeps its descriptor linked in, so that
  // reflection can describe grpc.health.v1.Health.
  (void)grpc::health::v1::HealthCheckResponse::descriptor();

  std::unique_ptr<ApiServer> server(new ApiServer());
  server->services_ = std::make_unique<Services>(metrics, options.observer, backend);

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, options.credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  builder.SetMaxSendMessageSize(options.max_request_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  builder.RegisterService(&server->services_->key_release);
  builder.RegisterService(&server->services_->signing);
  builder.RegisterService(&server->services_->admin);
  builder.RegisterService(&server->services_->audit);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("listen ", options.listen_address, ": cannot bind"));
  }
  server->SetServing(false);
  return server;
}

ApiServer::~ApiServer() { Shutdown(absl::ZeroDuration()); }

void ApiServer::SetServing(bool serving) {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const std::string& name : ServiceNames()) health->SetServingStatus(name, serving);
}

void ApiServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
}

}  // namespace hosn::api
