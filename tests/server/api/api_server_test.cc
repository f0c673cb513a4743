// The gRPC server over real loopback mTLS with certificates from
// deploy/pki/dev-pki.sh: handshake refusals (case G1), role authorization,
// node self-only requests (case G2), limits, health and TLS reload.
#include "server/api/api_server.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"
#include "hosn/keyd/v1/audit.grpc.pb.h"
#include "hosn/keyd/v1/key_release.grpc.pb.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"
#include "prometheus/text_serializer.h"
#include "server/api/grpc_log.h"
#include "server/api/tls_material.h"
#include "server/attest/denial.h"
#include "tests/server/api/grpc_test_util.h"
#include "tests/server/api/test_pki.h"
#include "tests/testing/status_matchers.h"

namespace hosn::api {
namespace {

namespace v1 = ::hosn::keyd::v1;
using ::hosn::testing::DevPki;
using ::testing::HasSubstr;

// Answers every call and counts them, so tests can tell that no handler ran.
class FakeBackend : public KeyBackend {
 public:
  bool Ready() const override { return true; }
  absl::StatusOr<v1::SignManifestResponse> SignManifest(
      const PeerIdentity& caller, const v1::SignManifestRequest& request) override {
    ++calls;
    v1::SignManifestResponse response;
    response.set_signature("sig:" + caller.uri);
    response.set_key_label("fake");
    return response;
  }
  absl::StatusOr<v1::GetSigningCertificatesResponse> GetSigningCertificates(
      const PeerIdentity&, const v1::GetSigningCertificatesRequest&) override {
    ++calls;
    return v1::GetSigningCertificatesResponse();
  }
  absl::StatusOr<v1::CreateModelKeyResponse> CreateModelKey(
      const PeerIdentity&, const v1::CreateModelKeyRequest&) override {
    ++calls;
    return v1::CreateModelKeyResponse();
  }
  absl::StatusOr<v1::CreateKekResponse> CreateKek(const PeerIdentity&,
                                                  const v1::CreateKekRequest&) override {
    ++calls;
    return v1::CreateKekResponse();
  }
  absl::StatusOr<v1::RotateKeyResponse> RotateKey(const PeerIdentity&,
                                                  const v1::RotateKeyRequest&) override {
    ++calls;
    return v1::RotateKeyResponse();
  }
  absl::StatusOr<v1::ListKeysResponse> ListKeys(const PeerIdentity&,
                                                const v1::ListKeysRequest&) override {
    ++calls;
    v1::ListKeysResponse response;
    response.add_keys()->set_label("kek");
    return response;
  }
  std::atomic<int> calls{0};
};

// Keeps what the API layer appends, as the audit log would; `fail` makes
// every append fail, the fault a full or broken disk produces.
class RecordingAuditSink : public AuditSink {
 public:
  absl::StatusOr<uint64_t> Append(v1::AuditRecord record) override {
    if (fail) return absl::UnavailableError("disk full");
    absl::MutexLock lock(&mu);
    record.set_sequence(records.size() + 1);
    records.push_back(std::move(record));
    return records.size();
  }
  std::vector<v1::AuditRecord> Records() {
    absl::MutexLock lock(&mu);
    return records;
  }
  std::atomic<bool> fail{false};
  absl::Mutex mu;
  std::vector<v1::AuditRecord> records;
};

// A release backend whose every release is denied for a named reason.
class DenyingReleaseBackend : public ReleaseBackend {
 public:
  absl::StatusOr<v1::GetChallengeResponse> GetChallenge(const PeerIdentity&,
                                                        const v1::GetChallengeRequest&) override {
    return v1::GetChallengeResponse();
  }
  absl::StatusOr<v1::ReleaseKeyResponse> ReleaseKey(const PeerIdentity&,
                                                    const v1::ReleaseKeyRequest&,
                                                    AuditNote* audit) override {
    audit->Add("model", "m");
    return attest::Denied(attest::DenialReason::kPcrMismatch, "pcr 7 mismatch");
  }
  absl::StatusOr<v1::BeginEnrollmentResponse> BeginEnrollment(const PeerIdentity&,
                                                              const v1::BeginEnrollmentRequest&,
                                                              AuditNote*) override {
    return absl::UnimplementedError("no");
  }
  absl::StatusOr<v1::EnrollNodeResponse> EnrollNode(const PeerIdentity&,
                                                    const v1::EnrollNodeRequest&,
                                                    AuditNote*) override {
    return absl::UnimplementedError("no");
  }
  absl::StatusOr<v1::RevokeNodeResponse> RevokeNode(const PeerIdentity&,
                                                    const v1::RevokeNodeRequest&,
                                                    AuditNote*) override {
    return absl::UnimplementedError("no");
  }
  absl::StatusOr<v1::SetReleasePolicyResponse> SetReleasePolicy(const PeerIdentity&,
                                                                const v1::SetReleasePolicyRequest&,
                                                                AuditNote*) override {
    return absl::UnimplementedError("no");
  }
};

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The handshake-failure counter hangs off gRPC's process-wide log hook, as
    // in the daemon; its metrics object lives as long as the process.
    RouteGrpcLogs(nullptr, ProcessMetrics());
    HOSN_ASSERT_OK_AND_ASSIGN(
        watcher_,
        TlsMaterialWatcher::Create({pki_.Cert("server"), pki_.Key("server"), pki_.Cert("ca")},
                                   staging_.path() + "/tls", absl::ZeroDuration(), nullptr));
    ApiServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.credentials = watcher_->ServerCredentials(absl::Seconds(1));
    options.max_request_bytes = 64 * 1024;
    HOSN_ASSERT_OK_AND_ASSIGN(
        server_, ApiServer::Start(options, ApiBackends{.keys = &backend_, .audit_sink = &audit_},
                                  &metrics_));
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& client, const std::string& ca = "ca") {
    return pki_.Channel(server_->port(), client, ca);
  }

  static void Deadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  grpc::Status Sign(const std::string& client, v1::SignManifestResponse* response,
                    const std::string& manifest = "{}") {
    auto stub = v1::SigningService::NewStub(Channel(client));
    grpc::ClientContext context;
    Deadline(&context);
    v1::SignManifestRequest request;
    request.set_manifest(manifest);
    return stub->SignManifest(&context, request, response);
  }

  grpc::Status Challenge(const std::string& client, const std::string& node_id) {
    auto stub = v1::KeyReleaseService::NewStub(Channel(client));
    grpc::ClientContext context;
    Deadline(&context);
    v1::GetChallengeRequest request;
    request.set_node_id(node_id);
    v1::GetChallengeResponse response;
    return stub->GetChallenge(&context, request, &response);
  }

  static ApiMetrics* ProcessMetrics() {
    static ApiMetrics* metrics = new ApiMetrics(std::make_shared<prometheus::Registry>());
    return metrics;
  }

  double MetricValue(const std::string& line_prefix, const ApiMetrics* metrics = nullptr) {
    if (metrics == nullptr) metrics = &metrics_;
    const std::string text = prometheus::TextSerializer().Serialize(metrics->registry()->Collect());
    const std::string needle = "\n" + line_prefix + " ";
    const size_t at = text.find(needle);
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + needle.size()));
  }

  DevPki pki_;
  hosn::testing::ScopedTempDir staging_;
  ApiMetrics metrics_{std::make_shared<prometheus::Registry>()};
  FakeBackend backend_;
  RecordingAuditSink audit_;
  std::unique_ptr<TlsMaterialWatcher> watcher_;
  std::unique_ptr<ApiServer> server_;
};

// A signer with a valid certificate gets its answer; identity comes from the SAN.
TEST_F(ApiServerTest, ValidSignerIsServed) {
  v1::SignManifestResponse response;
  grpc::Status status = Sign("signer", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.signature(), "sig:hosn://signer/ci");
  EXPECT_EQ(backend_.calls.load(), 1);
}

// G1: without a client certificate the handshake fails and no handler runs.
TEST_F(ApiServerTest, NoClientCertificateFailsHandshake) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// G1: a self-signed client certificate fails the handshake.
TEST_F(ApiServerTest, SelfSignedClientFailsHandshake) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("bad-selfsigned", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// G1: an expired client certificate from the right CA fails the handshake.
TEST_F(ApiServerTest, ExpiredClientFailsHandshake) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("bad-expired", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// G1: a certificate with only the serverAuth usage is refused as a client.
TEST_F(ApiServerTest, ServerAuthOnlyClientFailsHandshake) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("bad-serverauth", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// G1: a certificate from an unrelated CA fails the handshake.
TEST_F(ApiServerTest, OtherCaClientFailsHandshake) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("bad-otherca", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// Failed handshakes are counted in hosn_keyd_tls_handshake_failures_total.
TEST_F(ApiServerTest, HandshakeFailuresAreCounted) {
  const double before = MetricValue("hosn_keyd_tls_handshake_failures_total", ProcessMetrics());
  v1::SignManifestResponse response;
  EXPECT_FALSE(Sign("bad-selfsigned", &response).ok());
  EXPECT_FALSE(Sign("", &response).ok());
  EXPECT_GE(MetricValue("hosn_keyd_tls_handshake_failures_total", ProcessMetrics()), before + 2);
}

// A CA-signed client certificate without a hosn:// URI is unauthenticated.
TEST_F(ApiServerTest, CertificateWithoutHosnUriIsUnauthenticated) {
  v1::SignManifestResponse response;
  grpc::Status status = Sign("bad-nouri", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// G2: node b asking for node a is denied; identity comes from the certificate alone.
TEST_F(ApiServerTest, NodeCannotActForAnotherNode) {
  grpc::Status status = Challenge("node-b", "a");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("only act for itself"));
}

// A node naming itself (or nobody) passes authorization.
TEST_F(ApiServerTest, NodeMayActForItself) {
  EXPECT_EQ(Challenge("node-a", "a").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(Challenge("node-a", "").error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// Roles: a node may not sign, an operator may not fetch node challenges.
TEST_F(ApiServerTest, RolesAreEnforcedPerRpc) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("node-a", &response).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Challenge("operator", "").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// Admin RPCs are for operators only; auditors and signers are denied.
TEST_F(ApiServerTest, AdminIsOperatorOnly) {
  for (const char* client : {"auditor", "signer", "node-a"}) {
    auto stub = v1::AdminService::NewStub(Channel(client));
    grpc::ClientContext context;
    Deadline(&context);
    v1::ListKeysResponse response;
    EXPECT_EQ(stub->ListKeys(&context, v1::ListKeysRequest(), &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << client;
  }
  auto stub = v1::AdminService::NewStub(Channel("operator"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::ListKeysResponse response;
  ASSERT_TRUE(stub->ListKeys(&context, v1::ListKeysRequest(), &response).ok());
  EXPECT_EQ(response.keys_size(), 1);
}

// The audit service is for auditors; it answers UNIMPLEMENTED until issue #7.
TEST_F(ApiServerTest, AuditIsAuditorOnly) {
  for (auto [client, code] : {std::pair{"auditor", grpc::StatusCode::UNIMPLEMENTED},
                              std::pair{"operator", grpc::StatusCode::PERMISSION_DENIED}}) {
    auto stub = v1::AuditService::NewStub(Channel(client));
    grpc::ClientContext context;
    Deadline(&context);
    v1::GetCheckpointResponse response;
    EXPECT_EQ(stub->GetCheckpoint(&context, v1::GetCheckpointRequest(), &response).error_code(),
              code)
        << client;
  }
}

// A request above the size limit is refused before any handler runs.
TEST_F(ApiServerTest, OversizedRequestIsRefused) {
  v1::SignManifestResponse response;
  grpc::Status status = Sign("signer", &response, std::string(128 * 1024, 'm'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(backend_.calls.load(), 0);
}

// Health is NOT_SERVING until the daemon says so, then SERVING, per service too.
TEST_F(ApiServerTest, HealthFollowsSetServing) {
  grpc::Status status;
  EXPECT_EQ(hosn::testing::HealthCheck(Channel("operator"), "", &status), 2)
      << status.error_message();
  server_->SetServing(true);
  EXPECT_EQ(hosn::testing::HealthCheck(Channel("operator"), "", &status), 1);
  EXPECT_EQ(
      hosn::testing::HealthCheck(Channel("node-a"), "hosn.keyd.v1.KeyReleaseService", &status), 1);
  server_->SetServing(false);
  EXPECT_EQ(hosn::testing::HealthCheck(Channel("operator"), "", &status), 2);
}

// RPCs are counted by method and code.
TEST_F(ApiServerTest, RpcsAreCountedByMethodAndCode) {
  v1::SignManifestResponse response;
  ASSERT_TRUE(Sign("signer", &response).ok());
  EXPECT_EQ(Sign("node-a", &response).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(MetricValue("hosn_keyd_rpcs_total{code=\"OK\",method=\"/hosn.keyd.v1."
                        "SigningService/SignManifest\"}"),
            1);
  EXPECT_EQ(MetricValue("hosn_keyd_rpcs_total{code=\"PERMISSION_DENIED\",method=\"/hosn."
                        "keyd.v1.SigningService/SignManifest\"}"),
            1);
}

// Rotated server certificate and CA are served to new connections without a restart.
TEST_F(ApiServerTest, ReloadsRotatedCertificatesLive) {
  DevPki next;  // a whole new CA, server and client certificates
  std::filesystem::copy_file(next.Cert("server"), pki_.Cert("server"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(next.Key("server"), pki_.Key("server"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(next.Cert("ca"), pki_.Cert("ca"),
                             std::filesystem::copy_options::overwrite_existing);
  HOSN_ASSERT_OK(watcher_->CheckNow());

  // gRPC rereads the staging files once a second; wait for the new identity.
  grpc::Status status;
  for (int i = 0; i < 50; ++i) {
    auto stub = v1::SigningService::NewStub(next.Channel(server_->port(), "signer"));
    grpc::ClientContext context;
    Deadline(&context);
    v1::SignManifestRequest request;
    request.set_manifest("{}");
    v1::SignManifestResponse response;
    status = stub->SignManifest(&context, request, &response);
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// A mismatched certificate and key are refused and the old pair keeps serving.
TEST_F(ApiServerTest, MismatchedReloadKeepsOldPair) {
  DevPki next;
  std::filesystem::copy_file(next.Cert("server"), pki_.Cert("server"),
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_THAT(watcher_->CheckNow(), hosn::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                            HasSubstr("does not match")));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  v1::SignManifestResponse response;
  EXPECT_TRUE(Sign("signer", &response).ok());
}

// A decision is appended to the audit sink with the caller's identity.
TEST_F(ApiServerTest, SigningIsAudited) {
  v1::SignManifestResponse response;
  ASSERT_TRUE(Sign("signer", &response).ok());
  std::vector<v1::AuditRecord> records = audit_.Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].event(), "manifest.sign");
  EXPECT_EQ(records[0].actor(), "hosn://signer/ci");
  EXPECT_EQ(records[0].outcome(), "ok");
}

// Reads that are not decisions leave no entry.
TEST_F(ApiServerTest, ReadsAreNotAudited) {
  auto stub = v1::AdminService::NewStub(Channel("operator"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::ListKeysResponse response;
  ASSERT_TRUE(stub->ListKeys(&context, v1::ListKeysRequest(), &response).ok());
  EXPECT_TRUE(audit_.Records().empty());
}

// A wrong role is an audited authentication failure, and no handler runs.
TEST_F(ApiServerTest, AuthorizationFailureIsAudited) {
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign("node-a", &response).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  std::vector<v1::AuditRecord> records = audit_.Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].event(), "auth.failure");
  EXPECT_EQ(records[0].actor(), "hosn://node/a");
  EXPECT_EQ(records[0].outcome(), "denied");
  EXPECT_EQ(backend_.calls.load(), 0);
}

// If the audit entry cannot be made durable the caller gets UNAVAILABLE, not
// its answer, and the failure is counted.
TEST_F(ApiServerTest, AuditFailureWithholdsTheAnswer) {
  audit_.fail = true;
  v1::SignManifestResponse response;
  grpc::Status status = Sign("signer", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("audit log unavailable"));
  EXPECT_TRUE(response.signature().empty());
  EXPECT_EQ(MetricValue("hosn_keyd_audit_write_failures_total"), 1);
}

// A denied release tells the node only "denied"; the reason goes to the audit
// entry and to the denial metric's label.
TEST_F(ApiServerTest, DenialReasonIsAuditedNotTold) {
  DenyingReleaseBackend release;
  ApiServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.credentials = watcher_->ServerCredentials(absl::Seconds(1));
  HOSN_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ApiServer> server,
      ApiServer::Start(options,
                       ApiBackends{.keys = &backend_, .release = &release, .audit_sink = &audit_},
                       &metrics_));
  auto stub = v1::KeyReleaseService::NewStub(pki_.Channel(server->port(), "node-a"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::ReleaseKeyResponse response;
  grpc::Status status = stub->ReleaseKey(&context, v1::ReleaseKeyRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), "denied");
  std::vector<v1::AuditRecord> records = audit_.Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].event(), "key.release");
  EXPECT_EQ(records[0].outcome(), "denied");
  EXPECT_EQ(records[0].reason(), "pcr 7 mismatch");
  EXPECT_EQ(records[0].actor(), "hosn://node/a");
  ASSERT_EQ(records[0].attributes_size(), 2);
  EXPECT_EQ(records[0].attributes(1).value(), "m");
  EXPECT_EQ(MetricValue("hosn_keyd_release_denials_total{reason=\"pcr mismatch\"}"), 1);
}

}  // namespace
}  // namespace hosn::api
