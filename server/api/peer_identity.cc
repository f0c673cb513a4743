#include "server/api/peer_identity.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/sync.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/server_context.h"

namespace hosn::api {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};

constexpr std::string_view kScheme = "hosn://";
constexpr size_t kMaxNameLength = 128;

std::optional<Role> RoleFromName(std::string_view name) {
  if (name == "node") return Role::kNode;
  if (name == "operator") return Role::kOperator;
  if (name == "signer") return Role::kSigner;
  if (name == "auditor") return Role::kAuditor;
  return std::nullopt;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status Denied(std::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("peer certificate: ", ToAbsl(why)));
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kNode:
      return "node";
    case Role::kOperator:
      return "operator";
    case Role::kSigner:
      return "signer";
    case Role::kAuditor:
      return "auditor";
  }
  return "unknown";
}

absl::StatusOr<PeerIdentity> PeerIdentityFromPem(std::string_view leaf_pem) {
  if (leaf_pem.empty()) return Denied("absent");
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(leaf_pem.data(), static_cast<int>(leaf_pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("peer certificate: out of memory");
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return Denied("unparsable");

  // Extended key usage must be present and allow clientAuth.
  const uint32_t xku = X509_get_extended_key_usage(cert.get());
  if ((X509_get_extension_flags(cert.get()) & EXFLAG_XKUSAGE) == 0 || (xku & XKU_SSL_CLIENT) == 0) {
    return Denied("no clientAuth usage");
  }

  // Exactly one hosn:// URI SAN.
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return Denied("no subject alternative name");
  std::vector<std::string> uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<size_t>(ASN1_STRING_length(uri)));
    if (value.starts_with(kScheme)) uris.push_back(std::move(value));
  }
  if (uris.empty()) return Denied("no hosn:// uri");
  if (uris.size() > 1) return Denied("several hosn:// uris");

  // hosn://<role>/<name>
  std::string_view rest = std::string_view(uris[0]).substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return Denied("malformed hosn:// uri");
  const std::optional<Role> role = RoleFromName(rest.substr(0, slash));
  if (!role.has_value()) return Denied("unknown role");
  const std::string_view name = rest.substr(slash + 1);
  if (!IsValidName(name)) return Denied("malformed name");
  return PeerIdentity{*role, std::string(name), uris[0]};
}

absl::StatusOr<PeerIdentity> PeerIdentityFromContext(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return Denied("absent");
  const std::vector<grpc::string_ref> pems =
      auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.size() != 1) return Denied("absent");
  const std::string_view pem(pems[0].data(), pems[0].size());

  // Parsing a certificate costs about 0.2 ms with OpenSSL 3, and a channel
  // presents the same verified leaf on every call: remember identities by
  // the exact PEM bytes. The bytes decide the identity completely, so an
  // entry can never be stale; only successes are kept, at most
  // kMaxRememberedPeers (then the cache starts over).
  static constexpr size_t kMaxRememberedPeers = 4096;
  static Mutex mu;
  static auto* remembered = new absl::flat_hash_map<std::string, PeerIdentity>();
  {
    MutexLock lock(&mu);
    auto it = remembered->find(ToAbsl(pem));
    if (it != remembered->end()) return it->second;
  }
  absl::StatusOr<PeerIdentity> identity = PeerIdentityFromPem(pem);
  if (identity.ok()) {
    MutexLock lock(&mu);
    if (remembered->size() >= kMaxRememberedPeers) remembered->clear();
    remembered->insert_or_assign(std::string(pem), *identity);
  }
  return identity;
}

absl::Status Authorize(const PeerIdentity& identity, std::string_view method,
                       std::initializer_list<Role> allowed) {
  for (Role role : allowed) {
    if (identity.role == role) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("role ", ToAbsl(RoleName(identity.role)), " may not call ", ToAbsl(method)));
}

}  // namespace hosn::api
