// An mTLS gRPC channel to hosn-keyd for the node agent and for hosnctl's
// operator commands: client certificate and key, pinned CA bundle, optional
// TLS name override. The private key is read from a secret reference
// (file:/path or credential:NAME), never from argv, and the copy handed to
// gRPC is wiped right after the credentials are built.
//
// Also maps gRPC statuses to absl::Status with a message naming the RPC, so
// callers tell "unreachable" from "refused" by status code alone.
//
// Stateless functions; a returned channel is thread-safe (gRPC's).
#ifndef HOSN_CLIENT_AGENT_CLI_KEYD_CHANNEL_H_
#define HOSN_CLIENT_AGENT_CLI_KEYD_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace hosn::agent {

struct KeydEndpoint {
  std::string address;        // HOST:PORT
  std::string tls_cert_path;  // client certificate chain, PEM
  std::string tls_key_ref;    // file:/path or credential:NAME
  std::string tls_ca_path;    // CA bundle of the daemon's certificate, PEM
  std::string server_name;    // empty: the host of `address`
};

// Reads the TLS material and makes a channel (no connection yet).
// InvalidArgument for an empty address; the errors of ReadFile and
// ReadSecretReference (FailedPrecondition for a key file others can read).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeKeydChannel(const KeydEndpoint& endpoint);

// A context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithTimeout(absl::Duration timeout);

// The gRPC status as absl::Status with the same code and the message
// "<rpc>: <message>".
absl::Status FromGrpcStatus(const char* rpc, const grpc::Status& status);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_KEYD_CHANNEL_H_
