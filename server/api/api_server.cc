#include "server/api/api_server.h"

#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/call_deadline.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
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
#include "server/attest/denial.h"

namespace hosn::api {
namespace {

namespace v1 = ::hosn::keyd::v1;

// The single path every RPC takes: identify, authorize, run, audit, count,
// report. Audited methods (a non-empty event) append one entry, durably,
// before the reply is sent; if that append fails the caller gets UNAVAILABLE
// instead of its answer. Failed identification or authorization is audited
// as "auth.failure" for every method. A node told PERMISSION_DENIED learns
// only "denied": the reason goes to the audit entry and a metric label.
// Codes that describe the daemon's own state rather than the caller's
// request or a transient condition worth retrying.
bool IsServerSideFailure(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::OUT_OF_RANGE:
      return true;
    default:
      return false;
  }
}

class RpcRunner {
 public:
  RpcRunner(ApiMetrics* metrics, AuditSink* audit, std::function<void(const RpcRecord&)> observer)
      : metrics_(metrics), audit_(audit), observer_(std::move(observer)) {}

  // `event` names the audit entry ("key.release"); empty for reads that are
  // not decisions. `note` collects the handler's facts and, on return, holds
  // the entry's sequence number.
  template <typename Fn>
  grpc::Status Run(grpc::ServerContext* context, std::string_view method,
                   std::initializer_list<Role> allowed, std::string_view event, AuditNote* note,
                   Fn&& fn) const {
    const absl::Time start = absl::Now();
    std::string peer_uri;
    bool authenticated = false;
    bool caller_is_node = false;
    absl::Status status = [&]() -> absl::Status {
      absl::StatusOr<PeerIdentity> identity = PeerIdentityFromContext(*context);
      if (!identity.ok()) return identity.status();
      peer_uri = identity->uri;
      caller_is_node = identity->role == Role::kNode;
      absl::Status allowed_status = Authorize(*identity, method, allowed);
      if (!allowed_status.ok()) return allowed_status;
      authenticated = true;
      if (context->IsCancelled()) return absl::CancelledError("cancelled by the caller");
      // Waits below (the HSM session pool) end with the caller's deadline.
      CallDeadlineScope deadline(absl::FromChrono(context->deadline()));
      return fn(*identity);
    }();

    std::optional<attest::DenialReason> denial = attest::GetDenialReason(status);
    if (denial.has_value() && metrics_ != nullptr) {
      metrics_->RecordDenial(attest::DenialReasonLabel(*denial));
    }
    const std::string_view audited_event = authenticated ? event : "auth.failure";
    if (audit_ != nullptr && !audited_event.empty()) {
      absl::Status audited = Audit(audited_event, method, peer_uri, status, note);
      if (!audited.ok()) status = audited;
    }

    grpc::Status result = ToGrpcStatus(status);
    if (denial.has_value() && status.code() == absl::StatusCode::kPermissionDenied) {
      result = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "denied");
    } else if (caller_is_node && IsServerSideFailure(result.error_code())) {
      // A node learns that the daemon failed, not how: the message may name
      // stored records, policies, keys or HSM errors. The audit entry and
      // the daemon's log keep it.
      result = grpc::Status(result.error_code(), "failed; the reason is in hosn-keyd's audit log");
    }
    const absl::Duration latency = absl::Now() - start;
    if (metrics_ != nullptr) metrics_->RecordRpc(method, result.error_code(), latency);
    if (observer_) {
      observer_(RpcRecord{std::string(method), std::move(peer_uri), result.error_code(),
                          result.error_message(), latency});
    }
    return result;
  }

  // For methods without facts to note.
  template <typename Fn>
  grpc::Status Run(grpc::ServerContext* context, std::string_view method,
                   std::initializer_list<Role> allowed, std::string_view event, Fn&& fn) const {
    AuditNote note;
    return Run(context, method, allowed, event, &note, std::forward<Fn>(fn));
  }

 private:
  // Appends the entry; Unavailable if the log refuses it.
  absl::Status Audit(std::string_view event, std::string_view method, const std::string& actor,
                     const absl::Status& status, AuditNote* note) const {
    keyd::v1::AuditRecord record;
    record.set_event(std::string(event));
    record.set_actor(actor.empty() ? "unauthenticated" : actor);
    if (status.ok()) {
      record.set_outcome(event == "key.release" ? "granted" : "ok");
    } else {
      const bool refused = status.code() == absl::StatusCode::kPermissionDenied ||
                           status.code() == absl::StatusCode::kUnauthenticated;
      record.set_outcome(refused ? "denied" : "failed");
      record.set_reason(std::string(status.message()));
    }
    keyd::v1::AuditAttribute* rpc = record.add_attributes();
    rpc->set_name("rpc");
    rpc->set_value(std::string(method));
    for (const auto& [name, value] : note->attributes()) {
      keyd::v1::AuditAttribute* attribute = record.add_attributes();
      attribute->set_name(name);
      attribute->set_value(value);
    }
    absl::StatusOr<uint64_t> sequence = audit_->Append(std::move(record));
    if (!sequence.ok()) {
      if (metrics_ != nullptr) metrics_->RecordAuditFailure();
      return absl::UnavailableError("audit log unavailable");
    }
    note->set_sequence(*sequence);
    return absl::OkStatus();
  }

  ApiMetrics* const metrics_;
  AuditSink* const audit_;
  const std::function<void(const RpcRecord&)> observer_;
};

// A node may name only itself: an empty node_id means "me"; any other value
// must equal the name in its certificate (case G2).
absl::Status CheckNodeSelf(const PeerIdentity& caller, const std::string& node_id) {
  if (node_id.empty() || node_id == caller.name) return absl::OkStatus();
  return absl::PermissionDeniedError("node may only act for itself");
}

// What a service without a backend answers (a daemon built or configured
// without that part).
absl::Status NotConfigured() { return absl::UnimplementedError("not configured on this daemon"); }

// Copies a backend answer into the gRPC response.
template <typename Response>
absl::Status Deliver(absl::StatusOr<Response> answer, Response* response) {
  if (!answer.ok()) return answer.status();
  *response = *std::move(answer);
  return absl::OkStatus();
}

class KeyReleaseServiceImpl final : public v1::KeyReleaseService::Service {
 public:
  KeyReleaseServiceImpl(const RpcRunner* runner, ReleaseBackend* backend)
      : runner_(runner), backend_(backend) {}

  grpc::Status GetChallenge(grpc::ServerContext* context, const v1::GetChallengeRequest* request,
                            v1::GetChallengeResponse* response) override {
    // A challenge is not a decision; it is not audited.
    return runner_->Run(context, "/hosn.keyd.v1.KeyReleaseService/GetChallenge", {Role::kNode}, "",
                        [&](const PeerIdentity& caller) -> absl::Status {
                          HOSN_RETURN_IF_ERROR(CheckNodeSelf(caller, request->node_id()));
                          if (backend_ == nullptr) return NotConfigured();
                          return Deliver(backend_->GetChallenge(caller, *request), response);
                        });
  }

  grpc::Status ReleaseKey(grpc::ServerContext* context, const v1::ReleaseKeyRequest* request,
                          v1::ReleaseKeyResponse* response) override {
    AuditNote note;
    grpc::Status status =
        runner_->Run(context, "/hosn.keyd.v1.KeyReleaseService/ReleaseKey", {Role::kNode},
                     "key.release", &note, [&](const PeerIdentity& caller) -> absl::Status {
                       HOSN_RETURN_IF_ERROR(CheckNodeSelf(caller, request->node_id()));
                       if (backend_ == nullptr) return NotConfigured();
                       return Deliver(backend_->ReleaseKey(caller, *request, &note), response);
                     });
    if (status.ok()) response->set_audit_sequence(note.sequence());
    return status;
  }

 private:
  const RpcRunner* const runner_;
  ReleaseBackend* const backend_;
};

class SigningServiceImpl final : public v1::SigningService::Service {
 public:
  SigningServiceImpl(const RpcRunner* runner, KeyBackend* backend)
      : runner_(runner), backend_(backend) {}

  grpc::Status SignManifest(grpc::ServerContext* context, const v1::SignManifestRequest* request,
                            v1::SignManifestResponse* response) override {
    AuditNote note;
    return runner_->Run(
        context, "/hosn.keyd.v1.SigningService/SignManifest", {Role::kSigner, Role::kOperator},
        "manifest.sign", &note, [&](const PeerIdentity& caller) -> absl::Status {
          if (request->manifest().empty()) {
            return absl::InvalidArgumentError("manifest: empty");
          }
          HOSN_RETURN_IF_ERROR(Deliver(backend_->SignManifest(caller, *request), response));
          note.Add("key_label", response->key_label());
          note.Add("manifest_sha256", HexEncode(response->manifest_sha256()));
          return absl::OkStatus();
        });
  }

  grpc::Status SignStatement(grpc::ServerContext* context, const v1::SignStatementRequest* request,
                             v1::SignStatementResponse* response) override {
    AuditNote note;
    return runner_->Run(
        context, "/hosn.keyd.v1.SigningService/SignStatement", {Role::kSigner, Role::kOperator},
        "lineage.sign", &note, [&](const PeerIdentity& caller) -> absl::Status {
          HOSN_RETURN_IF_ERROR(Deliver(backend_->SignStatement(caller, *request), response));
          note.Add("key_label", response->key_label());
          note.Add("subject_sha256", response->subject_sha256());
          return absl::OkStatus();
        });
  }

  grpc::Status GetSigningCertificates(grpc::ServerContext* context,
                                      const v1::GetSigningCertificatesRequest* request,
                                      v1::GetSigningCertificatesResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.SigningService/GetSigningCertificates",
                        {Role::kSigner, Role::kOperator}, "", [&](const PeerIdentity& caller) {
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
  AdminServiceImpl(const RpcRunner* runner, KeyBackend* keys, ReleaseBackend* release)
      : runner_(runner), keys_(keys), release_(release) {}

  grpc::Status CreateModelKey(grpc::ServerContext* context,
                              const v1::CreateModelKeyRequest* request,
                              v1::CreateModelKeyResponse* response) override {
    AuditNote note;
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/CreateModelKey", {Role::kOperator},
                        "key.create", &note, [&](const PeerIdentity& caller) {
                          note.Add("kind", "model-dek");
                          note.Add("model", request->model_name());
                          note.Add("model_version", request->model_version());
                          return Deliver(keys_->CreateModelKey(caller, *request), response);
                        });
  }

  grpc::Status CreateKek(grpc::ServerContext* context, const v1::CreateKekRequest* request,
                         v1::CreateKekResponse* response) override {
    AuditNote note;
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/CreateKek", {Role::kOperator},
                        "key.create", &note, [&](const PeerIdentity& caller) {
                          note.Add("kind", "kek");
                          note.Add("label", request->label());
                          return Deliver(keys_->CreateKek(caller, *request), response);
                        });
  }

  grpc::Status RotateKey(grpc::ServerContext* context, const v1::RotateKeyRequest* request,
                         v1::RotateKeyResponse* response) override {
    AuditNote note;
    return runner_->Run(
        context, "/hosn.keyd.v1.AdminService/RotateKey", {Role::kOperator}, "key.rotate", &note,
        [&](const PeerIdentity& caller) -> absl::Status {
          note.Add("label", request->label());
          HOSN_RETURN_IF_ERROR(Deliver(keys_->RotateKey(caller, *request), response));
          note.Add("new_label", response->new_key().label());
          return absl::OkStatus();
        });
  }

  grpc::Status ListKeys(grpc::ServerContext* context, const v1::ListKeysRequest* request,
                        v1::ListKeysResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/ListKeys", {Role::kOperator}, "",
                        [&](const PeerIdentity& caller) {
                          return Deliver(keys_->ListKeys(caller, *request), response);
                        });
  }

  grpc::Status BeginEnrollment(grpc::ServerContext* context,
                               const v1::BeginEnrollmentRequest* request,
                               v1::BeginEnrollmentResponse* response) override {
    AuditNote note;
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/BeginEnrollment", {Role::kOperator},
                        "node.enroll.begin", &note, [&](const PeerIdentity& caller) {
                          note.Add("node", request->node_id());
                          note.Add("node_class", request->node_class());
                          if (release_ == nullptr) return NotConfigured();
                          return Deliver(release_->BeginEnrollment(caller, *request, &note),
                                         response);
                        });
  }

  grpc::Status EnrollNode(grpc::ServerContext* context, const v1::EnrollNodeRequest* request,
                          v1::EnrollNodeResponse* response) override {
    AuditNote note;
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/EnrollNode", {Role::kOperator},
                        "node.enroll", &note, [&](const PeerIdentity& caller) {
                          note.Add("node", request->node_id());
                          note.Add("node_class", request->node_class());
                          if (release_ == nullptr) return NotConfigured();
                          return Deliver(release_->EnrollNode(caller, *request, &note), response);
                        });
  }

  grpc::Status RevokeNode(grpc::ServerContext* context, const v1::RevokeNodeRequest* request,
                          v1::RevokeNodeResponse* response) override {
    AuditNote note;
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/RevokeNode", {Role::kOperator},
                        "node.revoke", &note, [&](const PeerIdentity& caller) {
                          note.Add("node", request->node_id());
                          note.Add("why", request->reason());
                          if (release_ == nullptr) return NotConfigured();
                          return Deliver(release_->RevokeNode(caller, *request, &note), response);
                        });
  }

  grpc::Status SetReleasePolicy(grpc::ServerContext* context,
                                const v1::SetReleasePolicyRequest* request,
                                v1::SetReleasePolicyResponse* response) override {
    AuditNote note;
    return runner_->Run(context, "/hosn.keyd.v1.AdminService/SetReleasePolicy", {Role::kOperator},
                        "policy.set", &note, [&](const PeerIdentity& caller) {
                          note.Add("node_class", request->node_class());
                          if (release_ == nullptr) return NotConfigured();
                          return Deliver(release_->SetReleasePolicy(caller, *request, &note),
                                         response);
                        });
  }

 private:
  const RpcRunner* const runner_;
  KeyBackend* const keys_;
  ReleaseBackend* const release_;
};

class AuditServiceImpl final : public v1::AuditService::Service {
 public:
  AuditServiceImpl(const RpcRunner* runner, AuditBackend* backend)
      : runner_(runner), backend_(backend) {}

  grpc::Status StreamAuditLog(grpc::ServerContext* context,
                              const v1::StreamAuditLogRequest* request,
                              grpc::ServerWriter<v1::StreamAuditLogResponse>* writer) override {
    return runner_->Run(
        context, "/hosn.keyd.v1.AuditService/StreamAuditLog", {Role::kAuditor}, "",
        [&](const PeerIdentity& caller) {
          if (backend_ == nullptr) return NotConfigured();
          return backend_->StreamAuditLog(
              caller, *request,
              [writer](const v1::StreamAuditLogResponse& entry) { return writer->Write(entry); },
              [context] { return context->IsCancelled(); });
        });
  }

  grpc::Status GetCheckpoint(grpc::ServerContext* context, const v1::GetCheckpointRequest* request,
                             v1::GetCheckpointResponse* response) override {
    return runner_->Run(context, "/hosn.keyd.v1.AuditService/GetCheckpoint", {Role::kAuditor}, "",
                        [&](const PeerIdentity& caller) {
                          if (backend_ == nullptr) return NotConfigured();
                          return Deliver(backend_->GetCheckpoint(caller, *request), response);
                        });
  }

 private:
  const RpcRunner* const runner_;
  AuditBackend* const backend_;
};

}  // namespace

struct ApiServer::Services {
  Services(ApiMetrics* metrics, std::function<void(const RpcRecord&)> observer,
           const ApiBackends& backends)
      : runner(metrics, backends.audit_sink, std::move(observer)),
        key_release(&runner, backends.release),
        signing(&runner, backends.keys),
        admin(&runner, backends.keys, backends.release),
        audit(&runner, backends.audit) {}

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
                                                            const ApiBackends& backends,
                                                            ApiMetrics* metrics) {
  if (options.listen_address.empty()) return absl::InvalidArgumentError("listen address: empty");
  if (options.credentials == nullptr) return absl::InvalidArgumentError("credentials: missing");
  if (backends.keys == nullptr) return absl::InvalidArgumentError("key backend: missing");
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
  server->services_ = std::make_unique<Services>(metrics, options.observer, backends);

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
