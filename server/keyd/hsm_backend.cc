#include "server/keyd/hsm_backend.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/lineage/lineage.h"
#include "server/keyd/config.h"

namespace hosn::keyd {
namespace {

namespace v1 = ::hosn::keyd::v1;

constexpr char kSignatureAlgorithm[] = "ecdsa-p256-sha256";
constexpr char kProbeLabel[] = "hosn-keyd-probe";

// DER certificates of a PEM chain file, in file order.
absl::StatusOr<std::vector<std::string>> ReadChainDer(const std::string& path) {
  HOSN_ASSIGN_OR_RETURN(std::string pem, ReadFile(path, 1 << 20));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::vector<std::string> chain;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    unsigned char* der = nullptr;
    const int length = i2d_X509(cert, &der);
    X509_free(cert);
    if (length <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad certificate"));
    }
    chain.emplace_back(reinterpret_cast<const char*>(der), static_cast<size_t>(length));
    OPENSSL_free(der);
  }
  if (chain.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no certificate"));
  return chain;
}

// "EC-P256", "EC-P384", "RSA-3072", "ED25519"... from a DER SubjectPublicKeyInfo.
std::string PublicKeyAlgorithmName(const std::string& spki) {
  const unsigned char* cursor = reinterpret_cast<const unsigned char*>(spki.data());
  EVP_PKEY* key = d2i_PUBKEY(nullptr, &cursor, static_cast<long>(spki.size()));
  if (key == nullptr) return "unknown";
  std::string name;
  char group[64] = {};
  size_t group_length = 0;
  if (EVP_PKEY_is_a(key, "EC") &&
      EVP_PKEY_get_group_name(key, group, sizeof(group), &group_length) == 1) {
    const std::string_view curve(group, group_length);
    name = curve == "prime256v1"  ? "EC-P256"
           : curve == "secp384r1" ? "EC-P384"
           : curve == "secp521r1" ? "EC-P521"
                                  : absl::StrCat("EC-", ToAbsl(curve));
  } else if (EVP_PKEY_is_a(key, "RSA")) {
    name = absl::StrCat("RSA-", EVP_PKEY_get_bits(key));
  } else {
    name = EVP_PKEY_get0_type_name(key) != nullptr ? EVP_PKEY_get0_type_name(key) : "unknown";
  }
  EVP_PKEY_free(key);
  return name;
}

std::string Sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(digest), length);
}

// Key labels: 1-64 of [A-Za-z0-9._-].
absl::Status CheckLabel(std::string_view label) {
  if (label.empty() || label.size() > 64) return absl::InvalidArgumentError("label: bad length");
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return absl::InvalidArgumentError("label: bad character");
  }
  return absl::OkStatus();
}

// "<base>.v<N>" -> (base, N); anything else -> (label, 0).
std::pair<std::string, uint32_t> SplitVersion(const std::string& label) {
  const size_t dot = label.rfind(".v");
  uint32_t version = 0;
  if (dot != std::string::npos && absl::SimpleAtoi(label.substr(dot + 2), &version)) {
    return {label.substr(0, dot), version};
  }
  return {label, 0};
}

absl::Status BadAttributes(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("cms_signed_attributes: ", ToAbsl(why)));
}

// Reads one DER header at *p (within `end`); the content is [*p, *p + length).
bool ReadHeader(const unsigned char** p, const unsigned char* end, int want_tag, long* length) {
  int tag = 0;
  int cls = 0;
  const int flags = ASN1_get_object(p, length, &tag, &cls, end - *p);
  // 0x80: error; 0x21: constructed with indefinite length (not DER).
  if ((flags & 0x80) != 0 || flags == 0x21) return false;
  return tag == want_tag && cls == V_ASN1_UNIVERSAL && *length <= end - *p;
}

// OK if the public key of the DER certificate `leaf` equals the DER
// SubjectPublicKeyInfo `spki`; FailedPrecondition otherwise.
absl::Status LeafMatchesPublicKey(const std::string& leaf, const std::string& spki) {
  const auto* cert_der = reinterpret_cast<const unsigned char*>(leaf.data());
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      d2i_X509(nullptr, &cert_der, static_cast<long>(leaf.size())), X509_free);
  const auto* key_der = reinterpret_cast<const unsigned char*>(spki.data());
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      d2i_PUBKEY(nullptr, &key_der, static_cast<long>(spki.size())), EVP_PKEY_free);
  if (cert == nullptr || key == nullptr) {
    return absl::FailedPreconditionError("certificate or hsm public key unreadable");
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) != 1) {
    return absl::FailedPreconditionError("certificate does not match the hsm key's public key");
  }
  return absl::OkStatus();
}

hsm::KeyRef SigningKeyRef(const std::string& label) {
  return hsm::KeyRef{hsm::KeyClass::kPrivateKey, hsm::KeyType::kEc, label, std::nullopt};
}

bool IsTransient(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

std::string RandomId() {
  unsigned char id[8];
  if (RAND_bytes(id, sizeof(id)) != 1) return {};
  return std::string(reinterpret_cast<const char*>(id), sizeof(id));
}

}  // namespace

absl::Status CheckCmsMessageDigest(std::string_view signed_attributes, std::string_view digest) {
  const auto* p = reinterpret_cast<const unsigned char*>(signed_attributes.data());
  const unsigned char* const end = p + signed_attributes.size();
  long length = 0;
  if (!ReadHeader(&p, end, V_ASN1_SET, &length) || p + length != end) {
    return BadAttributes("not a der set");
  }
  int found = 0;
  while (p < end) {
    // Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF ANY }
    if (!ReadHeader(&p, end, V_ASN1_SEQUENCE, &length)) return BadAttributes("bad attribute");
    const unsigned char* const attribute_end = p + length;
    std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> type(
        d2i_ASN1_OBJECT(nullptr, &p, attribute_end - p), ASN1_OBJECT_free);
    if (type == nullptr) return BadAttributes("bad attribute type");
    if (!ReadHeader(&p, attribute_end, V_ASN1_SET, &length) || p + length != attribute_end) {
      return BadAttributes("bad attribute values");
    }
    if (OBJ_obj2nid(type.get()) == NID_pkcs9_messageDigest) {
      ++found;
      std::unique_ptr<ASN1_OCTET_STRING, decltype(&ASN1_OCTET_STRING_free)> value(
          d2i_ASN1_OCTET_STRING(nullptr, &p, attribute_end - p), ASN1_OCTET_STRING_free);
      if (value == nullptr || p != attribute_end) return BadAttributes("bad message digest");
      const std::string_view got(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value.get())),
                                 static_cast<size_t>(ASN1_STRING_length(value.get())));
      if (got != digest) return BadAttributes("message digest does not match manifest");
    }
    p = attribute_end;
  }
  if (found != 1) return BadAttributes("want exactly one message digest");
  return absl::OkStatus();
}

HsmBackend::HsmBackend(v1::HsmConfig config, hsm::KeyStoreOptions options,
                       std::map<std::string, std::vector<std::string>> chains,
                       ReadinessCallback callback)
    : config_(std::move(config)),
      options_(std::move(options)),
      chains_(std::move(chains)),
      callback_(std::move(callback)) {}

absl::StatusOr<std::unique_ptr<HsmBackend>> HsmBackend::Create(const v1::HsmConfig& config,
                                                               absl::Duration max_wait,
                                                               ReadinessCallback callback) {
  std::map<std::string, std::vector<std::string>> chains;
  for (const v1::SigningKey& key : ConfiguredSigningKeys(config)) {
    absl::StatusOr<std::vector<std::string>> chain = ReadChainDer(key.certificate_chain_path());
    if (!chain.ok()) {
      return absl::Status(chain.status().code(), absl::StrCat("signing key ", key.label(), ": ",
                                                              chain.status().message()));
    }
    chains[key.label()] = *std::move(chain);
  }
  hsm::KeyStoreOptions options;
  options.uri = config.token_uri();
  options.module_path = config.module_path();
  options.pin_reference = config.pin_reference();
  options.pool_size = static_cast<int>(config.pool_size());
  options.acquire_timeout = max_wait;

  std::unique_ptr<HsmBackend> backend(
      new HsmBackend(config, std::move(options), std::move(chains), std::move(callback)));

  // First attempt: configuration mistakes are fatal now rather than retried
  // forever (and a wrong PIN is not retried into a locked token), and so is a
  // signing certificate that is not the HSM key's.
  absl::StatusOr<std::unique_ptr<hsm::KeyStore>> store = hsm::KeyStore::Create(backend->options_);
  if (store.ok()) {
    const absl::Status keys = backend->CheckSigningKeys(**store);
    if (!keys.ok() && !IsTransient(keys)) return keys;
    absl::MutexLock lock(&backend->mu_);
    if (keys.ok()) backend->store_ = std::move(*store);
  } else if (store.status().code() != absl::StatusCode::kNotFound &&
             store.status().code() != absl::StatusCode::kUnavailable) {
    return store.status();
  }
  backend->CheckOnce();
  backend->monitor_ = std::thread([b = backend.get()] { b->MonitorLoop(); });
  return backend;
}

HsmBackend::~HsmBackend() { Shutdown(); }

void HsmBackend::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (monitor_.joinable()) monitor_.join();
  std::shared_ptr<hsm::KeyStore> store;
  {
    absl::MutexLock lock(&mu_);
    store = std::move(store_);
    ready_ = false;
  }
  // The last reference closes the sessions and finalizes the module; running
  // RPCs holding a reference finish first.
  store.reset();
}

std::optional<hsm::PoolMetrics> HsmBackend::PoolMetrics() const {
  absl::MutexLock lock(&mu_);
  if (store_ == nullptr) return std::nullopt;
  return store_->Metrics();
}

absl::StatusOr<std::vector<std::string>> ReadCertificateChainDer(const std::string& path) {
  return ReadChainDer(path);
}

absl::Status HsmBackend::CheckSigningKeys(hsm::KeyStore& store) const {
  for (const auto& [label, chain] : chains_) {
    absl::StatusOr<std::string> spki = store.ExportPublicKey(SigningKeyRef(label));
    absl::Status match = spki.ok() ? LeafMatchesPublicKey(chain[0], *spki) : spki.status();
    if (match.ok()) continue;
    if (IsTransient(match)) return match;
    if (match.code() == absl::StatusCode::kNotFound) {
      return absl::FailedPreconditionError(
          absl::StrCat("signing key ", label, ": no such ec key pair on the token"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("signing key ", label, ": ", match.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<HsmBackend::SigningKeyChoice> HsmBackend::ChooseSigningKey(
    const std::string& key_label) const {
  if (chains_.empty()) return absl::FailedPreconditionError("signing: no signing key configured");
  const std::string& label = key_label.empty() ? config_.signing_key_label() : key_label;
  const auto found = chains_.find(label);
  if (found == chains_.end()) {
    // A caller's label is echoed only if it is one a key could have.
    return absl::InvalidArgumentError(
        CheckLabel(label).ok()
            ? absl::StrCat("key_label: signing key ", label, " is not configured")
            : std::string("key_label: not a configured signing key"));
  }
  return SigningKeyChoice{&found->first, &found->second};
}

absl::StatusOr<std::string> HsmBackend::SignForDaemon(const std::string& label,
                                                      std::string_view message) {
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  return store->Sign(SigningKeyRef(label), kSignatureAlgorithm, message,
                     hsm::SignatureFormat::kDer);
}

bool HsmBackend::Ready() const {
  absl::MutexLock lock(&mu_);
  return ready_;
}

absl::StatusOr<std::shared_ptr<hsm::KeyStore>> HsmBackend::Store() const {
  absl::MutexLock lock(&mu_);
  if (store_ == nullptr || !ready_) return absl::UnavailableError("hsm: token unreachable");
  return store_;
}

void HsmBackend::SetReady(bool ready, const absl::Status& why) {
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    // A new reason for staying unready is reported too (a token that
    // appeared with a wrong signing key after one that was missing).
    const std::string reason(why.message());
    changed = !reported_ || ready_ != ready || (!ready && reason != unready_reason_);
    ready_ = ready;
    reported_ = true;
    unready_reason_ = ready ? std::string() : reason;
  }
  if (changed && callback_) callback_(ready, why);
}

void HsmBackend::CheckOnce() {
  std::shared_ptr<hsm::KeyStore> store;
  {
    absl::MutexLock lock(&mu_);
    store = store_;
  }
  // 1. Not connected: try to connect.
  if (store == nullptr) {
    absl::StatusOr<std::unique_ptr<hsm::KeyStore>> created = hsm::KeyStore::Create(options_);
    if (!created.ok()) {
      SetReady(false, created.status());
      return;
    }
    // A token that appeared after start gets the start-up check now; while
    // a certificate does not match, the daemon stays unready.
    if (absl::Status keys = CheckSigningKeys(**created); !keys.ok()) {
      SetReady(false, keys);
      return;
    }
    store = std::move(*created);
    absl::MutexLock lock(&mu_);
    store_ = store;
  }
  // 2. Connected: a lookup proves the token answers. NotFound is an answer.
  const std::string label = !config_.kek_label().empty() ? config_.kek_label() : kProbeLabel;
  absl::StatusOr<hsm::KeyInfo> probe = store->FindKey(hsm::KeyRef::Kek(label));
  const absl::StatusCode code = probe.status().code();
  if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
      code == absl::StatusCode::kInternal) {
    SetReady(false, probe.status());
  } else {
    SetReady(true, absl::OkStatus());
  }
}

void HsmBackend::MonitorLoop() {
  const absl::Duration interval = absl::Seconds(config_.health_check_interval_seconds());
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    CheckOnce();
  }
}

absl::StatusOr<v1::SignManifestResponse> HsmBackend::SignManifest(
    const api::PeerIdentity&, const v1::SignManifestRequest& request) {
  HOSN_ASSIGN_OR_RETURN(const SigningKeyChoice signer, ChooseSigningKey(request.key_label()));
  // Sign only CMS signed attributes, and only for this manifest. Signing the
  // request's bytes as they are would make the manifest key an oracle for
  // any data, including attributes that name another manifest's digest.
  if (request.cms_signed_attributes().empty()) {
    return absl::InvalidArgumentError("cms_signed_attributes: required");
  }
  const std::string manifest_sha256 = Sha256(request.manifest());
  HOSN_RETURN_IF_ERROR(CheckCmsMessageDigest(request.cms_signed_attributes(), manifest_sha256));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  HOSN_ASSIGN_OR_RETURN(std::string signature,
                        store->Sign(SigningKeyRef(*signer.label), kSignatureAlgorithm,
                                    request.cms_signed_attributes(), hsm::SignatureFormat::kDer));
  v1::SignManifestResponse response;
  response.set_signature(std::move(signature));
  response.set_signature_algorithm(v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256);
  for (const std::string& der : *signer.chain) response.add_certificate_chain(der);
  response.set_key_label(*signer.label);
  response.set_manifest_sha256(manifest_sha256);
  return response;
}

absl::StatusOr<v1::GetSigningCertificatesResponse> HsmBackend::GetSigningCertificates(
    const api::PeerIdentity&, const v1::GetSigningCertificatesRequest& request) {
  HOSN_ASSIGN_OR_RETURN(const SigningKeyChoice signer, ChooseSigningKey(request.key_label()));
  v1::GetSigningCertificatesResponse response;
  for (const std::string& der : *signer.chain) response.add_certificate_chain(der);
  response.set_signature_algorithm(v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256);
  response.set_key_label(*signer.label);
  return response;
}

absl::StatusOr<v1::SignStatementResponse> HsmBackend::SignStatement(
    const api::PeerIdentity&, const v1::SignStatementRequest& request) {
  HOSN_ASSIGN_OR_RETURN(const SigningKeyChoice signer, ChooseSigningKey(request.key_label()));
  // The daemon knows what it signs: only a canonical lineage Statement. The
  // PAE starts with "DSSEv1", never a DER SET, so no PAE can pass as CMS
  // signed attributes (SignManifest) and the reverse (docs/lineage.md).
  if (request.payload_type() != lineage::kPayloadType) {
    return absl::InvalidArgumentError("payload_type: not an in-toto Statement");
  }
  HOSN_ASSIGN_OR_RETURN(v1::LineageStatement statement, lineage::ParseStatement(request.payload()));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  HOSN_ASSIGN_OR_RETURN(std::string signature,
                        store->Sign(SigningKeyRef(*signer.label), kSignatureAlgorithm,
                                    lineage::Pae(request.payload_type(), request.payload()),
                                    hsm::SignatureFormat::kDer));
  v1::SignStatementResponse response;
  response.set_signature(std::move(signature));
  response.set_signature_algorithm(v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256);
  HOSN_ASSIGN_OR_RETURN(*response.mutable_key_id(),
                        lineage::KeyIdOfCertificate(signer.chain->front()));
  for (const std::string& der : *signer.chain) response.add_certificate_chain(der);
  response.set_key_label(*signer.label);
  response.set_subject_sha256(statement.predicate().output().manifest_sha256());
  return response;
}

absl::StatusOr<v1::KeyDescription> HsmBackend::DescribeKek(hsm::KeyStore& store,
                                                           const std::string& label) {
  HOSN_ASSIGN_OR_RETURN(hsm::KeyInfo info, store.FindKey(hsm::KeyRef::Kek(label)));
  v1::KeyDescription description;
  description.set_label(info.label);
  description.set_id(HexEncode(info.id));
  description.set_kind(v1::KEY_KIND_KEK);
  description.set_algorithm("AES-256");
  description.set_version(SplitVersion(info.label).second);
  return description;
}

absl::StatusOr<v1::CreateModelKeyResponse> HsmBackend::CreateModelKey(
    const api::PeerIdentity&, const v1::CreateModelKeyRequest& request) {
  if (request.model_name().empty()) return absl::InvalidArgumentError("model_name: empty");
  if (!request.station_public_key().empty() && station_release_key_label_.empty()) {
    return absl::FailedPreconditionError(
        "station_public_key: no release key configured (release.release_key_label)");
  }
  const std::string kek_label =
      request.kek_label().empty() ? config_.kek_label() : request.kek_label();
  HOSN_RETURN_IF_ERROR(CheckLabel(kek_label));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  HOSN_ASSIGN_OR_RETURN(v1::KeyDescription kek, DescribeKek(*store, kek_label));
  HOSN_ASSIGN_OR_RETURN(hsm::WrappedKey wrapped,
                        store->GenerateWrappedDek(hsm::KeyRef::Kek(kek_label), "aes-kwp", 32));
  v1::CreateModelKeyResponse response;
  if (!request.station_public_key().empty()) {
    // Unwrapped again as a session object and wrapped to the station inside
    // the HSM; the DEK never reaches this process.
    const hsm::KeyRef release_key = hsm::KeyRef::ReleaseKey(station_release_key_label_);
    std::string station_wrapped;
    HOSN_RETURN_IF_ERROR(store->WithUnwrappedDek(
        hsm::KeyRef::Kek(kek_label), wrapped, [&](const hsm::UnwrappedDek& dek) -> absl::Status {
          HOSN_ASSIGN_OR_RETURN(
              station_wrapped,
              dek.WrapToPeer(release_key, request.station_public_key(), station_kdf_, ""));
          return absl::OkStatus();
        }));
    HOSN_ASSIGN_OR_RETURN(std::string release_public, store->ExportPublicKey(release_key));
    response.set_station_wrapped_dek(std::move(station_wrapped));
    response.set_wrap_scheme("ecdh-p256-kwp");
    response.set_wrap_kdf(station_kdf_);
    response.set_releaser_public_key(std::move(release_public));
  }
  response.set_kek_wrapped_dek(std::move(wrapped.wrapped));
  response.set_kek_label(kek.label());
  response.set_kek_id(kek.id());
  return response;
}

absl::StatusOr<v1::CreateKekResponse> HsmBackend::CreateKek(const api::PeerIdentity&,
                                                            const v1::CreateKekRequest& request) {
  HOSN_RETURN_IF_ERROR(CheckLabel(request.label()));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  absl::MutexLock lock(&admin_mu_);
  if (store->FindKey(hsm::KeyRef::Kek(request.label())).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("kek ", request.label(), ": exists"));
  }
  HOSN_RETURN_IF_ERROR(store->GenerateKek(request.label(), RandomId()).status());
  v1::CreateKekResponse response;
  HOSN_ASSIGN_OR_RETURN(*response.mutable_key(), DescribeKek(*store, request.label()));
  return response;
}

absl::StatusOr<v1::RotateKeyResponse> HsmBackend::RotateKey(const api::PeerIdentity&,
                                                            const v1::RotateKeyRequest& request) {
  HOSN_RETURN_IF_ERROR(CheckLabel(request.label()));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  absl::MutexLock lock(&admin_mu_);
  // Find the newest version of the family: <base>, <base>.v1, <base>.v2...
  // KEKs only: a signing key needs a certificate issued outside the daemon,
  // so its rotation is an operator procedure (docs/daemon.md, "Signing keys").
  const std::string base = SplitVersion(request.label()).first;
  std::string current;
  uint32_t version = 0;
  if (store->FindKey(hsm::KeyRef::Kek(base)).ok()) current = base;
  for (uint32_t v = 1; v < 10000; ++v) {
    const std::string label = absl::StrCat(base, ".v", v);
    if (!store->FindKey(hsm::KeyRef::Kek(label)).ok()) break;
    current = label;
    version = v;
  }
  if (current.empty()) return absl::NotFoundError(absl::StrCat("kek ", base, ": not found"));
  const std::string next = absl::StrCat(base, ".v", version + 1);
  HOSN_RETURN_IF_ERROR(store->GenerateKek(next, RandomId()).status());
  v1::RotateKeyResponse response;
  HOSN_ASSIGN_OR_RETURN(*response.mutable_previous_key(), DescribeKek(*store, current));
  HOSN_ASSIGN_OR_RETURN(*response.mutable_new_key(), DescribeKek(*store, next));
  return response;
}

absl::StatusOr<v1::ListKeysResponse> HsmBackend::ListKeys(const api::PeerIdentity&,
                                                          const v1::ListKeysRequest& request) {
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, Store());
  const auto wanted = [&](v1::KeyKind kind) {
    return request.kind() == v1::KEY_KIND_UNSPECIFIED || request.kind() == kind;
  };
  v1::ListKeysResponse response;
  // Secret keys: AES keys wrap DEKs (KEKs), generic secrets make challenge MACs.
  HOSN_ASSIGN_OR_RETURN(std::vector<hsm::KeyInfo> secrets,
                        store->ListKeys(hsm::KeyClass::kSecretKey));
  for (const hsm::KeyInfo& key : secrets) {
    const bool aes = key.key_type == hsm::KeyType::kAes;
    const v1::KeyKind kind = aes ? v1::KEY_KIND_KEK : v1::KEY_KIND_CHALLENGE_MAC;
    if (!wanted(kind)) continue;
    v1::KeyDescription* description = response.add_keys();
    description->set_label(key.label);
    description->set_id(HexEncode(key.id));
    description->set_kind(kind);
    description->set_algorithm(absl::StrCat(aes ? "AES-" : "HMAC-SHA256-", key.secret_bytes * 8));
    description->set_version(SplitVersion(key.label).second);
  }
  // Private keys: those that sign are signing keys; derive-only EC keys
  // are release keys. The public key's digest identifies each to auditors.
  HOSN_ASSIGN_OR_RETURN(std::vector<hsm::KeyInfo> privates,
                        store->ListKeys(hsm::KeyClass::kPrivateKey));
  for (const hsm::KeyInfo& key : privates) {
    const v1::KeyKind kind = key.can_sign     ? v1::KEY_KIND_SIGNING
                             : key.can_derive ? v1::KEY_KIND_RELEASE
                                              : v1::KEY_KIND_UNSPECIFIED;
    if (kind == v1::KEY_KIND_UNSPECIFIED || !wanted(kind)) continue;
    const hsm::KeyRef ref{hsm::KeyClass::kPrivateKey, key.key_type, key.label, key.id};
    absl::StatusOr<std::string> spki = store->ExportPublicKey(ref);
    v1::KeyDescription* description = response.add_keys();
    description->set_label(key.label);
    description->set_id(HexEncode(key.id));
    description->set_kind(kind);
    description->set_version(SplitVersion(key.label).second);
    if (spki.ok()) {
      description->set_algorithm(PublicKeyAlgorithmName(*spki));
      description->set_public_key_sha256(Sha256(*spki));
    } else {
      // A private key whose public half is missing is still listed.
      description->set_algorithm(std::string(hsm::KeyTypeName(key.key_type)));
    }
  }
  return response;
}

}  // namespace hosn::keyd
