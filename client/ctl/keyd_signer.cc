#include "client/ctl/keyd_signer.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"

namespace hosn::ctl {
namespace v1 = ::hosn::keyd::v1;

struct KeydManifestSigner::Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SigningService::Stub> stub;
  std::unique_ptr<v1::AdminService::Stub> admin;
};

namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

absl::Status KeydError(absl::StatusCode code, const std::string& message) {
  return AsKeydError(absl::Status(code, message));
}

// "hosn-keyd at ADDR: RPC: CODE_NAME: message", with the gRPC code kept.
absl::Status FromGrpc(const std::string& address, const char* rpc, const grpc::Status& status) {
  auto code = static_cast<absl::StatusCode>(status.error_code());
  std::string name = absl::StatusCodeToString(code);
  for (char& c : name) c = c == ' ' ? '_' : static_cast<char>(std::toupper(c));
  return KeydError(code, absl::StrCat("hosn-keyd at ", address, ": ", rpc, ": ", name, ": ",
                                      status.error_message()));
}

void SetDeadline(grpc::ClientContext* context, absl::Duration deadline) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(absl::ToInt64Microseconds(deadline)));
}

absl::StatusOr<std::string> DerToPem(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (cert == nullptr || bio == nullptr || PEM_write_bio_X509(bio.get(), cert.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError("hosn-keyd: malformed certificate in the signing chain");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

bool IsKeydError(const absl::Status& status) {
  return status.GetPayload(kKeydErrorPayload).has_value();
}

absl::Status AsKeydError(absl::Status status) {
  status.SetPayload(kKeydErrorPayload, absl::Cord("1"));
  return status;
}

absl::StatusOr<KeydSignerOptions> KeydOptionsFromFlags(
    const std::function<std::string(const std::string&)>& flag) {
  KeydSignerOptions options;
  options.address = flag("keyd");
  options.tls_cert_path = flag("tls-cert");
  options.tls_key_reference = flag("tls-key");
  options.tls_ca_path = flag("tls-ca");
  options.server_name = flag("tls-server-name");
  options.key_label = flag("signer-label");
  if (!flag("keyd-timeout").empty()) {
    int seconds = 0;
    if (!absl::SimpleAtoi(flag("keyd-timeout"), &seconds) || seconds <= 0) {
      return absl::InvalidArgumentError("--keyd-timeout must be a positive number of seconds");
    }
    options.deadline = absl::Seconds(seconds);
  }
  return options;
}

KeydManifestSigner::~KeydManifestSigner() = default;

absl::StatusOr<std::unique_ptr<KeydManifestSigner>> KeydManifestSigner::Create(
    const KeydSignerOptions& options) {
  if (options.address.empty()) return absl::InvalidArgumentError("keyd: empty address");
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("keyd: the deadline must be positive");
  }
  auto cert = ReadFile(options.tls_cert_path, kMaxPemBytes);
  if (!cert.ok()) return cert.status();
  auto ca = ReadFile(options.tls_ca_path, kMaxPemBytes);
  if (!ca.ok()) return ca.status();
  // The key never comes from argv: a secret reference, permission-checked.
  auto key = ReadSecretReference(options.tls_key_reference);
  if (!key.ok()) return key.status();

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = *ca;
  tls.pem_cert_chain = *cert;
  {
    auto view = RevealSecret(*key);
    // ReadSecretFile drops the trailing newline; PEM wants it back.
    tls.pem_private_key.assign(reinterpret_cast<const char*>(view.data()), view.size());
    tls.pem_private_key.push_back('\n');
  }
  grpc::ChannelArguments args;
  if (!options.server_name.empty()) {
    args.SetSslTargetNameOverride(options.server_name);
  }
  auto signer = std::unique_ptr<KeydManifestSigner>(new KeydManifestSigner());
  signer->options_ = options;
  signer->connection_ = std::make_unique<Connection>();
  signer->connection_->channel =
      grpc::CreateCustomChannel(options.address, grpc::SslCredentials(tls), args);
  // Best effort: the key copy inside the options struct is not needed any more.
  std::fill(tls.pem_private_key.begin(), tls.pem_private_key.end(), '\0');
  signer->connection_->stub = v1::SigningService::NewStub(signer->connection_->channel);
  signer->connection_->admin = v1::AdminService::NewStub(signer->connection_->channel);

  grpc::ClientContext context;
  SetDeadline(&context, options.deadline);
  v1::GetSigningCertificatesRequest request;
  request.set_key_label(options.key_label);
  v1::GetSigningCertificatesResponse response;
  grpc::Status status =
      signer->connection_->stub->GetSigningCertificates(&context, request, &response);
  if (!status.ok()) return FromGrpc(options.address, "GetSigningCertificates", status);
  if (response.certificate_chain_size() == 0) {
    return KeydError(absl::StatusCode::kFailedPrecondition,
                     absl::StrCat("hosn-keyd at ", options.address,
                                  ": GetSigningCertificates: no certificate chain"));
  }
  switch (response.signature_algorithm()) {
    case v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256:
      signer->algorithm_ = bundle::SignatureAlgorithm::kEcdsaSha256;
      break;
    case v1::SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256:
      signer->algorithm_ = bundle::SignatureAlgorithm::kRsaPkcs1Sha256;
      break;
    default:
      return KeydError(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("hosn-keyd at ", options.address,
                                    ": signing key algorithm not usable for bundles"));
  }
  for (const std::string& der : response.certificate_chain()) {
    auto pem = DerToPem(der);
    if (!pem.ok()) return pem.status();
    signer->chain_pem_ += *pem;
  }
  return signer;
}

absl::StatusOr<std::string> KeydManifestSigner::SignRaw(std::string_view manifest_bytes,
                                                        std::string_view signed_attributes) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.deadline);
  v1::SignManifestRequest request;
  request.set_manifest(std::string(manifest_bytes));
  request.set_key_label(options_.key_label);
  request.set_cms_signed_attributes(std::string(signed_attributes));
  v1::SignManifestResponse response;
  grpc::Status status = connection_->stub->SignManifest(&context, request, &response);
  if (!status.ok()) return FromGrpc(options_.address, "SignManifest", status);
  const bool ec = algorithm_ == bundle::SignatureAlgorithm::kEcdsaSha256;
  const auto want =
      ec ? v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256 : v1::SIGNATURE_ALGORITHM_RSA_PKCS1_SHA256;
  if (response.signature_algorithm() != want) {
    return absl::InternalError(absl::StrCat("hosn-keyd at ", options_.address,
                                            ": SignManifest: unexpected signature algorithm"));
  }
  if (!ec) return response.signature();
  auto raw = bundle::EcdsaDerToRaw(response.signature(), 32);
  if (!raw.ok()) {
    return absl::InternalError(absl::StrCat("hosn-keyd at ", options_.address,
                                            ": SignManifest: malformed ECDSA signature"));
  }
  return raw;
}

absl::StatusOr<v1::SignStatementResponse> KeydManifestSigner::SignStatement(
    std::string_view payload_type, std::string_view payload) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.deadline);
  v1::SignStatementRequest request;
  request.set_payload_type(std::string(payload_type));
  request.set_payload(std::string(payload));
  request.set_key_label(options_.key_label);
  v1::SignStatementResponse response;
  grpc::Status status = connection_->stub->SignStatement(&context, request, &response);
  if (!status.ok()) return FromGrpc(options_.address, "SignStatement", status);
  if (response.signature_algorithm() != v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256 ||
      response.certificate_chain_size() == 0 || response.signature().empty()) {
    return absl::InternalError(
        absl::StrCat("hosn-keyd at ", options_.address, ": SignStatement: unexpected answer"));
  }
  return response;
}

absl::StatusOr<v1::CreateModelKeyResponse> KeydManifestSigner::CreateModelKey(
    const v1::CreateModelKeyRequest& request) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.deadline);
  v1::CreateModelKeyResponse response;
  grpc::Status status = connection_->admin->CreateModelKey(&context, request, &response);
  if (!status.ok()) return FromGrpc(options_.address, "CreateModelKey", status);
  return response;
}

}  // namespace hosn::ctl
