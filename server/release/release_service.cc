// The release backend of hosn-keyd; see release_service.h and docs/release.md.
#include "server/release/release_service.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/base/secret_bytes.h"
#include "common/base/status_macros.h"
#include "common/bundle/signature.h"
#include "common/tpm/marshal.h"
#include "common/tpm/qualifying_data.h"
#include "server/attest/attestation.h"
#include "server/attest/denial.h"
#include "server/attest/ek_certificate.h"
#include "server/attest/quote_verifier.h"
#include "server/enroll/make_credential.h"
#include "server/release/challenge_token.h"
#include "server/release/enrollment_proof.h"
#include "server/release/evidence.h"
#include "server/release/fleet_store.h"
#include "server/release/release_policy.h"

namespace hosn::release {
namespace {

namespace v1 = ::hosn::keyd::v1;
using attest::DenialReason;
using attest::Denied;

constexpr char kWrapScheme[] = "ecdh-p256-kwp";

std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string AsString(const tpm::Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

int64_t NowUnix() { return absl::ToUnixSeconds(absl::Now()); }

// The node id cross-check of GetChallenge and ReleaseKey.
absl::Status CheckNodeId(const api::PeerIdentity& caller, const std::string& node_id) {
  if (caller.role != api::Role::kNode) {
    return absl::PermissionDeniedError("only nodes obtain challenges and keys");
  }
  if (!node_id.empty() && node_id != caller.name) {
    return Denied(DenialReason::kNodeIdMismatch,
                  absl::StrCat("node id mismatch: request names ", node_id));
  }
  return absl::OkStatus();
}

// The AK and EK of an enrollment request, checked.
struct EnrollmentKeys {
  TPMT_PUBLIC ak = {};
  TPMT_PUBLIC ek = {};
  std::string ak_public;  // marshalled TPMT_PUBLIC, as stored
  std::string ak_name;
  std::string ek_digest;
};

// Both enrollment requests carry the same five fields; the AK's name goes to
// the audit entry (the API layer records node and class). The EK comes from
// ek_public, from a verified ek_certificate, or from both when they hold the
// same key.
template <typename Request>
absl::StatusOr<EnrollmentKeys> ParseEnrollmentKeys(const Request& request,
                                                   const attest::EkCertificateVerifier* ek_ca,
                                                   const std::function<absl::Status()>& crls,
                                                   api::AuditNote* audit) {
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_id", request.node_id()));
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_class", request.node_class()));
  const std::string& ak_public = request.ak_public();
  const std::string& ek_public = request.ek_public();
  const std::string& ek_certificate = request.ek_certificate();
  EnrollmentKeys keys;
  absl::StatusOr<TPMT_PUBLIC> ak = tpm::Unmarshal2bPublic(AsSpan(ak_public));
  if (!ak.ok()) return absl::InvalidArgumentError("ak_public: not a TPM2B_PUBLIC");
  keys.ak = *ak;
  // restricted, sign, fixedTPM, fixedParent, not decrypt (T1).
  HOSN_RETURN_IF_ERROR(attest::AcceptAk(keys.ak).status());
  if (ek_public.empty() && ek_certificate.empty()) {
    return absl::InvalidArgumentError("ek_public: missing (send it, ek_certificate or both)");
  }

  // The certificate, if any, must chain to the configured manufacturer CAs.
  std::optional<attest::CertifiedEk> certified;
  if (!ek_certificate.empty()) {
    if (ek_ca == nullptr) {
      return absl::FailedPreconditionError(
          "ek_certificate: no EK CA bundle configured (release.ek_ca_bundle_path)");
    }
    HOSN_RETURN_IF_ERROR(crls());
    HOSN_ASSIGN_OR_RETURN(certified, ek_ca->Verify(AsSpan(ek_certificate)));
    audit->Add("ek_certificate_issuer", certified->issuer);
  }
  if (ek_public.empty()) {
    keys.ek = certified->ek;
  } else {
    absl::StatusOr<TPMT_PUBLIC> ek = tpm::Unmarshal2bPublic(AsSpan(ek_public));
    if (!ek.ok()) return absl::InvalidArgumentError("ek_public: not a TPM2B_PUBLIC");
    keys.ek = *ek;
    if (certified.has_value()) {
      HOSN_RETURN_IF_ERROR(attest::CheckEkMatchesCertificate(*certified, keys.ek));
    }
  }
  HOSN_ASSIGN_OR_RETURN(tpm::Bytes ak_tpmt, tpm::MarshalPublic(keys.ak));
  keys.ak_public = AsString(ak_tpmt);
  HOSN_ASSIGN_OR_RETURN(tpm::Bytes ak_name, enroll::ObjectName(keys.ak));
  keys.ak_name = AsString(ak_name);
  HOSN_ASSIGN_OR_RETURN(tpm::Bytes ek_tpmt, tpm::MarshalPublic(keys.ek));
  keys.ek_digest.resize(SHA256_DIGEST_LENGTH);
  SHA256(ek_tpmt.data(), ek_tpmt.size(), reinterpret_cast<unsigned char*>(keys.ek_digest.data()));
  audit->Add("ak_name", HexEncode(keys.ak_name));
  return keys;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReleaseService>> ReleaseService::Create(
    ReleaseServiceOptions options, KeyStoreProvider store) {
  if (options.release_key_label.empty()) {
    return absl::InvalidArgumentError("release: release_key_label missing");
  }
  if (options.challenge_mac_key_label.empty()) {
    return absl::InvalidArgumentError("release: challenge_mac_key_label missing");
  }
  if (options.kdf != "null" && options.kdf != "x963-sha256") {
    return absl::InvalidArgumentError("release: kdf must be null or x963-sha256");
  }
  if (options.challenge_ttl <= absl::ZeroDuration() ||
      options.enrollment_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("release: TTLs must be positive");
  }
  if (options.manifest_ca_pem.empty()) {
    return absl::InvalidArgumentError("release: manifest CA bundle empty");
  }
  std::unique_ptr<attest::EkCertificateVerifier> ek_ca;
  if (!options.ek_ca_pem.empty()) {
    absl::StatusOr<std::unique_ptr<attest::EkCertificateVerifier>> created =
        attest::EkCertificateVerifier::Create(options.ek_ca_pem);
    if (!created.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("release: ek CA bundle: ", created.status().message()));
    }
    ek_ca = *std::move(created);
  } else if (!options.ek_crl_bundle_path.empty()) {
    return absl::InvalidArgumentError("release: ek_crl_bundle_path needs ek_ca_bundle_path");
  }
  std::unique_ptr<ReleaseService> service(
      new ReleaseService(std::move(options), std::move(store), std::move(ek_ca)));
  if (absl::Status crls = service->RefreshEkCrls(/*force=*/true); !crls.ok()) {
    return absl::InvalidArgumentError(crls.message());
  }
  return service;
}

absl::Status ReleaseService::ReloadEkCrls() { return RefreshEkCrls(/*force=*/true); }

absl::Status ReleaseService::RefreshEkCrls(bool force) {
  const std::string& path = options_.ek_crl_bundle_path;
  if (path.empty()) return absl::OkStatus();
  absl::MutexLock lock(&crl_mu_);
  // Runs with crl_mu_ held (taken above); the analysis cannot see into the
  // lambda.
  auto refused = [&](const absl::Status& why) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // Fail closed: a CRL file that changed but cannot be used refuses every
    // EK certificate until it is fixed, rather than trusting the old set.
    crl_stamp_.clear();
    crl_usable_ = false;
    return absl::FailedPreconditionError(
        absl::StrCat("release.ek_crl_bundle_path: ", why.message()));
  };
  struct stat info = {};
  if (stat(path.c_str(), &info) != 0) return refused(absl::NotFoundError("cannot stat " + path));
  const std::string stamp = absl::StrCat(info.st_dev, ":", info.st_ino, ":", info.st_size, ":",
                                         info.st_mtim.tv_sec, ".", info.st_mtim.tv_nsec);
  if (!force && crl_usable_ && stamp == crl_stamp_) return absl::OkStatus();
  absl::StatusOr<std::string> pem = ReadFile(path, kMaxCrlBundleBytes);
  if (!pem.ok()) return refused(pem.status());
  if (absl::Status replaced = ek_ca_->ReplaceCrls(*pem); !replaced.ok()) return refused(replaced);
  crl_stamp_ = stamp;
  crl_usable_ = true;
  return absl::OkStatus();
}

ReleaseService::ReleaseService(ReleaseServiceOptions options, KeyStoreProvider store,
                               std::unique_ptr<attest::EkCertificateVerifier> ek_ca)
    : options_(std::move(options)),
      store_(std::move(store)),
      ek_ca_(std::move(ek_ca)),
      manifests_(options_.manifest_ca_pem, options_.manifest_cache_ttl) {}

hsm::KeyRef ReleaseService::MacKey() const {
  return hsm::KeyRef::MacKey(options_.challenge_mac_key_label);
}

hsm::KeyRef ReleaseService::ReleaseKeyRef() const {
  return hsm::KeyRef::ReleaseKey(options_.release_key_label);
}

absl::StatusOr<std::string> ReleaseService::ReleasePublicKey(hsm::KeyStore& store) {
  {
    absl::MutexLock lock(&public_key_mu_);
    if (release_public_key_.has_value()) return *release_public_key_;
  }
  HOSN_ASSIGN_OR_RETURN(std::string der, store.ExportPublicKey(ReleaseKeyRef()));
  absl::MutexLock lock(&public_key_mu_);
  release_public_key_ = der;
  return der;
}

absl::StatusOr<v1::GetChallengeResponse> ReleaseService::GetChallenge(
    const api::PeerIdentity& caller, const v1::GetChallengeRequest& request) {
  HOSN_RETURN_IF_ERROR(CheckNodeId(caller, request.node_id()));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, store_());
  ChallengeClaims claims;
  claims.identity_digest = IdentityDigest(caller.uri);
  if (RAND_bytes(claims.nonce.data(), static_cast<int>(claims.nonce.size())) != 1) {
    return absl::InternalError("challenge: random generator failed");
  }
  claims.expires_at_unix_seconds = absl::ToUnixSeconds(absl::Now() + options_.challenge_ttl);
  HOSN_ASSIGN_OR_RETURN(std::string mac, store->Mac(MacKey(), ChallengeMacInput(claims)));
  HOSN_ASSIGN_OR_RETURN(std::string token, EncodeChallengeToken(claims, mac));
  v1::GetChallengeResponse response;
  response.set_challenge(std::move(token));
  response.set_nonce(claims.nonce.data(), claims.nonce.size());
  response.set_expires_at_unix_seconds(claims.expires_at_unix_seconds);
  return response;
}

absl::StatusOr<v1::ReleaseKeyResponse> ReleaseService::ReleaseKey(
    const api::PeerIdentity& caller, const v1::ReleaseKeyRequest& request, api::AuditNote* audit) {
  audit->Add("node", caller.name);
  HOSN_RETURN_IF_ERROR(CheckNodeId(caller, request.node_id()));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, store_());

  // 1. The node: enrolled and not revoked (read from the HSM every time).
  HOSN_ASSIGN_OR_RETURN(std::optional<v1::NodeRecord> node, ReadNode(*store, caller.name));
  if (!node.has_value()) return Denied(DenialReason::kUnknownNode);
  audit->Add("node_class", node->node_class());
  if (node->revoked()) return Denied(DenialReason::kNodeRevoked);

  // 2. The challenge: ours (HSM MAC), this caller's, not expired.
  HOSN_ASSIGN_OR_RETURN(ParsedChallengeToken token, ParseChallengeToken(request.challenge()));
  if (absl::Status mac = store->VerifyMac(MacKey(), token.mac_input, token.mac); !mac.ok()) {
    if (mac.code() == absl::StatusCode::kPermissionDenied) {
      return Denied(DenialReason::kChallengeInvalid, "challenge invalid: mac mismatch");
    }
    return mac;
  }
  const Digest32 caller_digest = IdentityDigest(caller.uri);
  if (CRYPTO_memcmp(caller_digest.data(), token.claims.identity_digest.data(),
                    caller_digest.size()) != 0) {
    return Denied(DenialReason::kChallengeNotForCaller);
  }
  if (token.claims.expires_at_unix_seconds < NowUnix()) {
    return Denied(DenialReason::kStaleChallenge);
  }

  // 3. The class policy.
  HOSN_ASSIGN_OR_RETURN(std::optional<v1::ReleasePolicy> policy,
                        ReadPolicy(*store, node->node_class()));
  if (!policy.has_value()) return Denied(DenialReason::kNoPolicy);
  audit->Add("policy_version", absl::StrCat(policy->version()));
  // A stored policy that does not convert is the daemon's fault, not the
  // node's request.
  absl::StatusOr<attest::BootPolicy> boot_policy = ToBootPolicy(*policy);
  if (!boot_policy.ok()) {
    return absl::DataLossError(absl::StrCat("policy ", node->node_class(),
                                            ": unusable: ", boot_policy.status().message()));
  }

  // 4. The quote, bound to the nonce and the ephemeral key, and the boot.
  HOSN_RETURN_IF_ERROR(CheckEphemeralKey(request.ephemeral_public_key()));
  HOSN_ASSIGN_OR_RETURN(
      tpm::Bytes qualifying_data,
      tpm::ComputeQualifyingData(token.claims.nonce, AsSpan(request.ephemeral_public_key())));
  absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> ak =
      attest::AcceptAk(AsSpan(node->ak_public()));
  if (!ak.ok()) {
    return absl::DataLossError(absl::StrCat("node record ", caller.name, ": stored AK unusable"));
  }
  attest::AttestationEvidence evidence;
  evidence.attest = AsSpan(request.quote());
  evidence.signature = AsSpan(request.quote_signature());
  HOSN_ASSIGN_OR_RETURN(evidence.pcr_values, PcrValuesFromRequest(request.pcr_values()));
  if (!request.event_log().empty()) evidence.event_log = AsSpan(request.event_log());
  HOSN_ASSIGN_OR_RETURN(attest::AttestationResult attested,
                        attest::VerifyAttestation(**ak, evidence, qualifying_data, *boot_policy));
  audit->Add("reference_set", attested.match.reference_set);

  // 5. The manifest: signed under the pinned CA, naming a model this class
  // may receive.
  absl::StatusOr<std::shared_ptr<const bundle::VerifiedManifest>> manifest =
      manifests_.Verify(request.manifest(), request.manifest_signature());
  if (!manifest.ok()) {
    return Denied(DenialReason::kManifestSignatureInvalid,
                  absl::StrCat("manifest signature invalid: ", manifest.status().message()));
  }
  const v1::ModelIdentity& model = (*manifest)->manifest.model();
  audit->Add("model", model.name());
  audit->Add("model_version", model.version());
  if (std::find(policy->allowed_models().begin(), policy->allowed_models().end(), model.name()) ==
      policy->allowed_models().end()) {
    return Denied(
        DenialReason::kModelNotAllowed,
        absl::StrCat("model ", model.name(), " not allowed for class ", node->node_class()));
  }

  // 6. Inside the HSM: unwrap under the manifest's KEK, wrap to the node.
  const v1::BundleEncryption& encryption = (*manifest)->manifest.encryption();
  std::optional<std::string> kek_id;
  if (!encryption.kek_id().empty()) {
    absl::StatusOr<std::vector<uint8_t>> id = HexDecode(encryption.kek_id());
    if (!id.ok()) return absl::InvalidArgumentError("manifest: kek_id is not hex");
    kek_id = std::string(id->begin(), id->end());
  }
  hsm::WrappedKey wrapped{
      .algorithm = "aes-kwp", .dek_type = hsm::KeyType::kAes, .wrapped = encryption.wrapped_dek()};
  const std::string shared_info =
      options_.kdf == "null" ? std::string() : AsString(qualifying_data);
  HOSN_ASSIGN_OR_RETURN(
      std::string wrapped_to_node,
      store->WrapDekToPeer(hsm::KeyRef::Kek(encryption.kek_label(), kek_id), wrapped,
                           ReleaseKeyRef(), request.ephemeral_public_key(), options_.kdf,
                           shared_info));
  HOSN_ASSIGN_OR_RETURN(std::string release_public_key, ReleasePublicKey(*store));

  v1::ReleaseKeyResponse response;
  response.set_wrapped_dek(std::move(wrapped_to_node));
  response.set_wrap_scheme(kWrapScheme);
  response.set_wrap_kdf(options_.kdf);
  response.set_releaser_public_key(std::move(release_public_key));
  return response;
}

absl::StatusOr<v1::BeginEnrollmentResponse> ReleaseService::BeginEnrollment(
    const api::PeerIdentity&, const v1::BeginEnrollmentRequest& request, api::AuditNote* audit) {
  HOSN_ASSIGN_OR_RETURN(
      EnrollmentKeys keys,
      ParseEnrollmentKeys(
          request, ek_ca_.get(), [this] { return RefreshEkCrls(/*force=*/false); }, audit));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, store_());
  EnrollmentClaims claims{request.node_id(), request.node_class(), keys.ak_name, keys.ek_digest,
                          absl::ToUnixSeconds(absl::Now() + options_.enrollment_ttl)};
  HOSN_ASSIGN_OR_RETURN(std::string mac, store->Mac(MacKey(), EnrollmentMacInput(claims)));
  const SecretBytes credential = SecretBytes::CopyOf(mac);
  OPENSSL_cleanse(mac.data(), mac.size());
  absl::StatusOr<enroll::CredentialChallenge> challenge =
      enroll::MakeCredential(keys.ek, keys.ak, credential);
  if (!challenge.ok()) {
    // The EK is what the request named, so its shortcomings name the field.
    if (challenge.status().code() == absl::StatusCode::kUnimplemented ||
        challenge.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::Status(challenge.status().code(),
                          absl::StrCat("ek_public: ", challenge.status().message()));
    }
    return challenge.status();
  }
  v1::BeginEnrollmentResponse response;
  response.set_credential_blob(AsString(challenge->credential_blob));
  response.set_encrypted_secret(AsString(challenge->encrypted_secret));
  response.set_enrollment_token(EncodeEnrollmentToken(claims.expires_at_unix_seconds));
  response.set_expires_at_unix_seconds(claims.expires_at_unix_seconds);
  return response;
}

absl::StatusOr<v1::EnrollNodeResponse> ReleaseService::EnrollNode(
    const api::PeerIdentity&, const v1::EnrollNodeRequest& request, api::AuditNote* audit) {
  HOSN_ASSIGN_OR_RETURN(
      EnrollmentKeys keys,
      ParseEnrollmentKeys(
          request, ek_ca_.get(), [this] { return RefreshEkCrls(/*force=*/false); }, audit));
  HOSN_ASSIGN_OR_RETURN(int64_t expiry, ParseEnrollmentToken(request.enrollment_token()));
  if (expiry < NowUnix()) {
    return Denied(DenialReason::kEnrollmentProofInvalid, "enrollment challenge expired");
  }
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, store_());
  EnrollmentClaims claims{request.node_id(), request.node_class(), keys.ak_name, keys.ek_digest,
                          expiry};
  // C_Verify in the HSM: the comparison never happens in this process.
  if (absl::Status proof =
          store->VerifyMac(MacKey(), EnrollmentMacInput(claims), request.activation_secret());
      !proof.ok()) {
    if (proof.code() == absl::StatusCode::kPermissionDenied) {
      return Denied(DenialReason::kEnrollmentProofInvalid,
                    "enrollment proof invalid: activation secret does not match");
    }
    return proof;
  }

  absl::MutexLock lock(&admin_mu_);
  HOSN_ASSIGN_OR_RETURN(std::optional<v1::NodeRecord> existing,
                        ReadNode(*store, request.node_id()));
  if (existing.has_value() && !existing->revoked() && existing->ak_name() != keys.ak_name) {
    return absl::AlreadyExistsError(
        absl::StrCat("node ", request.node_id(), ": enrolled with another AK; revoke it first"));
  }
  if (existing.has_value()) audit->Add("replaces", existing->revoked() ? "revoked" : "same ak");
  v1::NodeRecord record;
  record.set_node_id(request.node_id());
  record.set_node_class(request.node_class());
  record.set_ak_public(keys.ak_public);
  record.set_ak_name(keys.ak_name);
  record.set_ek_digest(keys.ek_digest);
  record.set_enrolled_at_unix_seconds(NowUnix());
  HOSN_RETURN_IF_ERROR(WriteNode(*store, record));
  v1::EnrollNodeResponse response;
  response.set_ak_name(keys.ak_name);
  return response;
}

absl::StatusOr<v1::RevokeNodeResponse> ReleaseService::RevokeNode(
    const api::PeerIdentity&, const v1::RevokeNodeRequest& request, api::AuditNote* audit) {
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, store_());
  absl::MutexLock lock(&admin_mu_);
  HOSN_ASSIGN_OR_RETURN(std::optional<v1::NodeRecord> record, ReadNode(*store, request.node_id()));
  if (!record.has_value()) {
    return absl::NotFoundError(absl::StrCat("node ", request.node_id(), ": not enrolled"));
  }
  if (!record->revoked()) {
    record->set_revoked(true);
    record->set_revocation_reason(request.reason());
    record->set_revoked_at_unix_seconds(NowUnix());
  }
  // Written even when already revoked: an earlier revocation whose put failed
  // midway may have left the unrevoked version on the token beside the
  // revoked one, and a replica that remembered its handle would keep
  // releasing to the node; a put destroys every older version.
  HOSN_RETURN_IF_ERROR(WriteNode(*store, *record));
  return v1::RevokeNodeResponse();
}

absl::StatusOr<v1::SetReleasePolicyResponse> ReleaseService::SetReleasePolicy(
    const api::PeerIdentity&, const v1::SetReleasePolicyRequest& request, api::AuditNote* audit) {
  HOSN_RETURN_IF_ERROR(CheckFleetName("node_class", request.node_class()));
  HOSN_ASSIGN_OR_RETURN(std::shared_ptr<hsm::KeyStore> store, store_());
  absl::MutexLock lock(&admin_mu_);
  HOSN_ASSIGN_OR_RETURN(std::optional<v1::ReleasePolicy> previous,
                        ReadPolicy(*store, request.node_class()));
  const uint64_t version = previous.has_value() ? previous->version() + 1 : 1;
  HOSN_ASSIGN_OR_RETURN(v1::ReleasePolicy policy, PolicyFromRequest(request, version, NowUnix()));
  HOSN_RETURN_IF_ERROR(WritePolicy(*store, policy));
  audit->Add("policy_version", absl::StrCat(version));
  for (const v1::PcrReferenceSet& set : policy.reference_sets()) {
    audit->Add("reference_set", set.name());
  }
  for (const std::string& model : policy.allowed_models()) audit->Add("allowed_model", model);
  v1::SetReleasePolicyResponse response;
  response.set_policy_version(version);
  return response;
}

}  // namespace hosn::release
