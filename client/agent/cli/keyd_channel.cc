#include "client/agent/cli/keyd_channel.h"

#include <openssl/crypto.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace hosn::agent {
namespace {
constexpr size_t kMaxPem = 1 << 20;
}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeKeydChannel(const KeydEndpoint& endpoint) {
  if (endpoint.address.empty()) return absl::InvalidArgumentError("keyd: empty address");
  grpc::SslCredentialsOptions tls;
  auto ca = ReadFile(endpoint.tls_ca_path, kMaxPem);
  if (!ca.ok()) return ca.status();
  auto chain = ReadFile(endpoint.tls_cert_path, kMaxPem);
  if (!chain.ok()) return chain.status();
  auto key = ReadSecretReference(endpoint.tls_key_ref);
  if (!key.ok()) return key.status();
  tls.pem_root_certs = std::move(*ca);
  tls.pem_cert_chain = std::move(*chain);
  const auto key_bytes = RevealSecret(*key);
  tls.pem_private_key.assign(reinterpret_cast<const char*>(key_bytes.data()), key_bytes.size());
  tls.pem_private_key += '\n';  // the secret reader strips the final newline
  grpc::ChannelArguments args;
  if (!endpoint.server_name.empty()) args.SetSslTargetNameOverride(endpoint.server_name);
  // Reconnect quickly: the agent has its own backoff and deadline.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto credentials = grpc::SslCredentials(tls);
  OPENSSL_cleanse(tls.pem_private_key.data(), tls.pem_private_key.size());
  return grpc::CreateCustomChannel(endpoint.address, credentials, args);
}

std::unique_ptr<grpc::ClientContext> ContextWithTimeout(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  return context;
}

absl::Status FromGrpcStatus(const char* rpc, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(rpc, ": ", status.error_message()));
}

}  // namespace hosn::agent
