// KeydManifestSigner: a ManifestSigner whose private key lives in hosn-keyd's
// HSM. hosnctl connects to the daemon over mTLS (client certificate with URI
// SAN hosn://signer/<name>), fetches the signing certificate chain once with
// GetSigningCertificates, and signs the CMS signed attributes that
// common/bundle builds with SignManifest. The daemon refuses attributes whose
// messageDigest is not SHA-256 of the manifest it is sent, so SignRaw sends
// the exact manifest bytes beside the attributes.
//
// Every RPC carries a deadline. Errors name the daemon address, the RPC and
// the gRPC status; they carry the payload kKeydErrorPayload so that callers
// can tell daemon errors from local ones (IsKeydError). No key material or
// file content ever appears in an error.
//
// The same connection also carries AdminService.CreateModelKey for a packing
// station that asks the HSM for a new model key (station_model_key.h); that
// RPC needs the operator role.
//
// Thread-compatible: one caller at a time. The channel is owned by the
// signer.
#ifndef HOSN_CLIENT_CTL_KEYD_SIGNER_H_
#define HOSN_CLIENT_CTL_KEYD_SIGNER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/bundle/signature.h"
#include "hosn/keyd/v1/admin.pb.h"
#include "hosn/keyd/v1/signing.pb.h"

namespace hosn::ctl {

// Type URL of the payload on every status that came from (or failed to reach)
// hosn-keyd.
inline constexpr char kKeydErrorPayload[] = "type.hosn/hosnctl.KeydError";

// True if `status` carries kKeydErrorPayload.
bool IsKeydError(const absl::Status& status);

// `status` with kKeydErrorPayload set: for an answer of hosn-keyd that the
// caller finds unusable after the RPC succeeded.
absl::Status AsKeydError(absl::Status status);

struct KeydSignerOptions {
  std::string address;            // HOST:PORT of hosn-keyd
  std::string tls_cert_path;      // client certificate chain, PEM
  std::string tls_key_reference;  // client private key: file:/path or credential:NAME
  std::string tls_ca_path;        // CA bundle that issued the daemon's certificate, PEM
  std::string server_name;        // TLS name to check; empty: the host of `address`
  std::string key_label;          // signing key on the daemon; empty: its configured key
  absl::Duration deadline = absl::Seconds(30);  // per RPC
};

// The options from hosnctl's flags: `flag(name)` is the value of --name or
// "" (keyd, tls-cert, tls-key, tls-ca, tls-server-name, signer-label,
// keyd-timeout). InvalidArgument if --keyd-timeout is not a positive number
// of seconds.
absl::StatusOr<KeydSignerOptions> KeydOptionsFromFlags(
    const std::function<std::string(const std::string&)>& flag);

class KeydManifestSigner : public bundle::ManifestSigner {
 public:
  // Reads the TLS files, connects, and fetches the signing certificates.
  // InvalidArgument for an empty address or a bad option; the errors of
  // ReadFile/ReadSecretReference for unreadable files (FailedPrecondition for
  // a key file readable by others); for a daemon error the gRPC status code
  // (e.g. Unavailable when it is down, PermissionDenied for a caller without
  // the signer role) with IsKeydError true; FailedPrecondition if the daemon
  // returns no chain or an algorithm other than ECDSA P-256 or RSA PKCS#1.
  static absl::StatusOr<std::unique_ptr<KeydManifestSigner>> Create(
      const KeydSignerOptions& options);
  ~KeydManifestSigner() override;

  bundle::SignatureAlgorithm algorithm() const override { return algorithm_; }
  std::string CertificateChainPem() const override { return chain_pem_; }
  // Calls SignManifest with `manifest_bytes` and `signed_attributes`;
  // returns raw r||s for ECDSA. Daemon errors as in Create (InvalidArgument
  // when the attributes do not match the manifest); Internal for a malformed
  // signature or a different algorithm than announced.
  absl::StatusOr<std::string> SignRaw(std::string_view manifest_bytes,
                                      std::string_view signed_attributes) override;

  // Calls SignStatement: a DSSE signature over PAE(payload_type, payload) by
  // the daemon's key, which first checks that the payload is a canonical
  // lineage statement (docs/lineage.md). Daemon errors as in Create
  // (InvalidArgument for a payload it refuses); Internal for an algorithm
  // other than ECDSA P-256 or an empty chain.
  absl::StatusOr<keyd::v1::SignStatementResponse> SignStatement(std::string_view payload_type,
                                                                std::string_view payload);

  // Calls AdminService.CreateModelKey on the same channel (caller role
  // operator; docs/api.md). Daemon errors as in Create: PermissionDenied for
  // a certificate without the operator role, FailedPrecondition when the
  // request names a station key and the daemon has no release section.
  absl::StatusOr<keyd::v1::CreateModelKeyResponse> CreateModelKey(
      const keyd::v1::CreateModelKeyRequest& request);

 private:
  struct Connection;
  KeydManifestSigner() = default;

  std::unique_ptr<Connection> connection_;
  KeydSignerOptions options_;
  bundle::SignatureAlgorithm algorithm_ = bundle::SignatureAlgorithm::kEcdsaSha256;
  std::string chain_pem_;
};

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_KEYD_SIGNER_H_
