// The attested-release test fixture; see release_fixture.h.
#include "tests/server/release/release_fixture.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/base/secret_bytes.h"
#include "common/base/status_macros.h"
#include "common/bundle/manifest.h"
#include "common/bundle/signature.h"
#include "common/tpm/qualifying_data.h"
#include "server/hsm/key_store.h"
#include "tests/testing/status_matchers.h"

namespace hosn::release::testing {
namespace {

using ::hosn::testing::KeydProcess;
using ::hosn::testing::RunCommand;
using ::hosn::testing::SoftHsmToken;

void Deadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
}

std::string Str(std::span<const uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

std::string KnownDek() { return Str(RevealSecret(bundle::testing::TestDek())); }

void ReleaseFixture::SetUp() {
  HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-keyd"));
  hsm::KeyStoreOptions options;
  options.uri = token_->uri();
  options.module_path = SoftHsmToken::kModulePath;
  options.pin_reference = token_->pin_reference();
  options.pool_size = 1;
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<hsm::KeyStore> store, hsm::KeyStore::Create(options));
  HOSN_ASSERT_OK(store->GenerateKek("hosn-kek", "k1").status());
  HOSN_ASSERT_OK(store->GenerateReleaseKey("hosn-release", "r1").status());
  HOSN_ASSERT_OK(store->GenerateMacKey("hosn-challenge-mac", "m1").status());
  // The KEK of tests/common/bundle's TestWrappedDek: bytes 0..31, id 01.
  std::string kek(32, '\0');
  for (int i = 0; i < 32; ++i) kek[i] = static_cast<char>(i);
  HOSN_ASSERT_OK(store
                     ->ImportSecretKeyForTesting("model-kek", std::string(1, '\x01'),
                                                 hsm::KeyType::kAes, SecretBytes::CopyOf(kek))
                     .status());
  HOSN_ASSERT_OK_AND_ASSIGN(hsm::SigningKey signer,
                            store->GenerateSigningKey("ec-p256", "hosn-signer", "s1"));
  std::ofstream(dir_.Join("signer.der"), std::ios::binary) << signer.public_key_der;
  HOSN_ASSERT_OK(
      RunCommand(absl::StrCat("openssl pkey -pubin -inform DER -in ", dir_.Join("signer.der"),
                              " -out ", dir_.Join("signer.pub.pem")))
          .status());
  HOSN_ASSERT_OK(
      RunCommand(absl::StrCat("bash ", hosn::testing::SourcePath("deploy/pki/dev-pki.sh"), " ",
                              pki_.dir(), " --hsm-signer ", dir_.Join("signer.pub.pem")))
          .status());
  HOSN_ASSERT_OK(
      RunCommand(absl::StrCat("mkdir -p ", dir_.Join("manifest-pki"), " ", dir_.Join("other-pki")))
          .status());
  manifest_pki_ = bundle::testing::MakeTestPki(dir_.Join("manifest-pki"));
  other_pki_ = bundle::testing::MakeTestPki(dir_.Join("other-pki"));
}

void ReleaseFixture::TearDown() {
  if (HasFailure() && keyd_ != nullptr) std::cerr << "keyd log:\n" << keyd_->Log();
}

void ReleaseFixture::StartKeyd(int challenge_ttl_seconds) {
  keyd_ = Launch(challenge_ttl_seconds, dir_.path(), AuditDir());
  active_ = keyd_.get();
}

void ReleaseFixture::StartSecondReplica(int challenge_ttl_seconds) {
  const std::string folder = dir_.Join("replica2");
  ASSERT_TRUE(RunCommand("mkdir -p " + folder).ok());
  keyd2_ = Launch(challenge_ttl_seconds, folder, folder + "/audit");
}

void ReleaseFixture::StartFaultyReplica(const std::string& module_path,
                                        const std::string& fault_spec) {
  const std::string folder = dir_.Join("replica2");
  ASSERT_TRUE(RunCommand("mkdir -p " + folder).ok());
  // The child inherits the environment when it is started.
  ::setenv("HOSN_FAULT_PKCS11_SPEC", fault_spec.c_str(), 1);
  keyd2_ = Launch(5, folder, folder + "/audit", module_path);
  ::unsetenv("HOSN_FAULT_PKCS11_SPEC");
}

void ReleaseFixture::UseReplica(int replica) {
  active_ = replica == 2 ? keyd2_.get() : keyd_.get();
}

std::unique_ptr<KeydProcess> ReleaseFixture::Launch(int challenge_ttl_seconds,
                                                    const std::string& folder,
                                                    const std::string& audit_dir,
                                                    const std::string& module_path) {
  const std::string path = folder + "/keyd.textproto";
  std::ofstream(path) << absl::StrCat(
      R"(
listen_address: "127.0.0.1:0"
tls {
  server_certificate_path: ")",
      pki_.Cert("server"), R"("
  server_private_key_path: ")",
      pki_.Key("server"), R"("
  client_ca_bundle_path: ")",
      pki_.Cert("ca"), R"("
}
hsm {
  module_path: ")",
      module_path, R"("
  token_uri: "pkcs11:token=hosn-keyd"
  pin_reference: ")",
      token_->pin_reference(), R"("
  pool_size: 4
  kek_label: "hosn-kek"
  signing_key_label: "hosn-signer"
  challenge_mac_key_label: "hosn-challenge-mac"
  signing_certificate_chain_path: ")",
      pki_.Cert("hsm-signer"), R"("
}
release {
  release_key_label: "hosn-release"
  kdf: "null"
  challenge_ttl_seconds: )",
      challenge_ttl_seconds, R"(
  manifest_ca_bundle_path: ")",
      manifest_pki_.ca_pem_path, R"(")",
      ek_ca_bundle_path_.empty()
          ? std::string()
          : absl::StrCat("\n  ek_ca_bundle_path: \"", ek_ca_bundle_path_, "\""),
      ek_crl_bundle_path_.empty()
          ? std::string()
          : absl::StrCat("\n  ek_crl_bundle_path: \"", ek_crl_bundle_path_, "\""),
      R"(
}
audit { directory: ")",
      audit_dir, R"(" }
metrics { listen_address: "127.0.0.1:0" }
logging { level: "warn" }
)");
  auto keyd = std::make_unique<KeydProcess>(path, folder);
  absl::Status ready = keyd->WaitReady(absl::Seconds(30));
  EXPECT_TRUE(ready.ok()) << ready << keyd->Log();
  return keyd;
}

Node ReleaseFixture::NewNode(const std::string& name, agent::EkAlgorithm ek_algorithm) {
  Node node;
  node.ek_algorithm = ek_algorithm;
  const std::string state = dir_.Join("tpm-" + name);
  EXPECT_TRUE(RunCommand("mkdir -p " + state).ok());
  absl::StatusOr<std::unique_ptr<hosn::testing::SwtpmProcess>> swtpm =
      hosn::testing::SwtpmProcess::Start(state);
  EXPECT_TRUE(swtpm.ok()) << swtpm.status();
  if (!swtpm.ok()) return node;
  node.swtpm = *std::move(swtpm);
  node.tcti = node.swtpm->tcti();
  Reconnect(node);
  return node;
}

void ReleaseFixture::Reconnect(Node& node) {
  node.tpm.reset();
  absl::StatusOr<std::unique_ptr<agent::TpmDevice>> tpm =
      agent::TpmDevice::Open(node.tcti, agent::AkAlgorithm::kEcdsaP256Sha256, node.ek_algorithm);
  EXPECT_TRUE(tpm.ok()) << tpm.status();
  if (tpm.ok()) node.tpm = *std::move(tpm);
}

void ReleaseFixture::ExtendPcr(Node& node, int pcr) {
  node.tpm.reset();
  absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
      "tpm2_pcrextend -T '", node.tcti, "' ", pcr, ":sha256=", std::string(64, 'a'), " 2>&1"));
  EXPECT_TRUE(out.ok()) << out.status();
  Reconnect(node);
}

std::string ReleaseFixture::To2b(const std::vector<uint8_t>& tpmt) {
  std::string out;
  out.push_back(static_cast<char>(tpmt.size() >> 8));
  out.push_back(static_cast<char>(tpmt.size() & 0xff));
  out.append(tpmt.begin(), tpmt.end());
  return out;
}

grpc::Status ReleaseFixture::Enroll(Node& node, const std::string& node_id,
                                    const std::string& node_class,
                                    const std::string& ek_certificate, bool send_ek_public) {
  auto stub = v1::AdminService::NewStub(ChannelFor("operator"));
  absl::StatusOr<tpm::Bytes> ak = node.tpm->AttestationKeyPublic();
  absl::StatusOr<tpm::Bytes> ek = node.tpm->EndorsementKeyPublic();
  if (!ak.ok() || !ek.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "tpm keys");
  v1::BeginEnrollmentRequest begin;
  begin.set_node_id(node_id);
  begin.set_node_class(node_class);
  begin.set_ak_public(To2b(*ak));
  if (send_ek_public) begin.set_ek_public(To2b(*ek));
  begin.set_ek_certificate(ek_certificate);
  v1::BeginEnrollmentResponse challenge;
  {
    grpc::ClientContext context;
    Deadline(&context);
    grpc::Status status = stub->BeginEnrollment(&context, begin, &challenge);
    if (!status.ok()) return status;
  }
  absl::StatusOr<SecretBytes> secret = node.tpm->ActivateCredential(
      tpm::Bytes(challenge.credential_blob().begin(), challenge.credential_blob().end()),
      tpm::Bytes(challenge.encrypted_secret().begin(), challenge.encrypted_secret().end()));
  if (!secret.ok()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("activate: ", secret.status().message()));
  }
  v1::EnrollNodeRequest enroll;
  enroll.set_node_id(node_id);
  enroll.set_node_class(node_class);
  enroll.set_ak_public(begin.ak_public());
  enroll.set_ek_public(begin.ek_public());
  enroll.set_ek_certificate(begin.ek_certificate());
  enroll.set_activation_secret(Str(RevealSecret(*secret)));
  enroll.set_enrollment_token(challenge.enrollment_token());
  grpc::ClientContext context;
  Deadline(&context);
  v1::EnrollNodeResponse response;
  return stub->EnrollNode(&context, enroll, &response);
}

grpc::Status ReleaseFixture::SetPolicyFromNode(Node& node, const std::string& node_class,
                                               const std::vector<std::string>& models,
                                               v1::SetReleasePolicyResponse* response) {
  absl::StatusOr<tpm::PcrValues> pcrs =
      node.tpm->ReadPcrs({{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7}}});
  if (!pcrs.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "read pcrs");
  v1::SetReleasePolicyRequest request;
  request.set_node_class(node_class);
  v1::PcrReferenceSet* set = request.add_reference_sets();
  set->set_name("golden-swtpm");
  set->set_bank("sha256");
  for (const auto& [index, digest] : (*pcrs)[TPM2_ALG_SHA256]) {
    (*set->mutable_pcrs())[index] = std::string(digest.begin(), digest.end());
  }
  for (const std::string& model : models) request.add_allowed_models(model);
  auto stub = v1::AdminService::NewStub(ChannelFor("operator"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::SetReleasePolicyResponse ignored;
  return stub->SetReleasePolicy(&context, request, response != nullptr ? response : &ignored);
}

grpc::Status ReleaseFixture::RevokeNode(const std::string& node_id) {
  auto stub = v1::AdminService::NewStub(ChannelFor("operator"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::RevokeNodeRequest request;
  request.set_node_id(node_id);
  request.set_reason("test: decommissioned");
  v1::RevokeNodeResponse response;
  return stub->RevokeNode(&context, request, &response);
}

std::string ReleaseFixture::Manifest(const std::string& model) {
  v1::BundleManifest m;
  m.set_format_version(1);
  m.mutable_model()->set_name(model);
  m.mutable_model()->set_version("0.2.0");
  m.set_created_at("2026-12-03T17:00:00Z");
  v1::BundleEncryption* enc = m.mutable_encryption();
  enc->set_aead("AES-256-GCM");
  enc->set_kdf("HKDF-SHA256");
  enc->set_segment_size(1 << 20);
  enc->set_key_wrap("AES-256-KWP");
  enc->set_wrapped_dek(bundle::testing::TestWrappedDek());
  enc->set_kek_label("model-kek");
  enc->set_kek_id("01");
  v1::BundleFile* f = m.add_files();
  f->set_path("weights.bin");
  f->set_size(3);
  f->set_sha256(std::string(64, 'a'));
  f->set_tags_sha256(std::string(64, 'b'));
  absl::StatusOr<std::string> bytes = bundle::SerializeManifest(m);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

std::string ReleaseFixture::Sign(const std::string& manifest, const bundle::testing::TestPki& pki) {
  auto signer = bundle::OpenSslKeySigner::Create(SecretBytes::CopyOf(pki.signer_key_pem),
                                                 pki.signer_cert_pem);
  EXPECT_TRUE(signer.ok()) << signer.status();
  if (!signer.ok()) return "";
  absl::StatusOr<std::string> signature = bundle::SignManifest(manifest, **signer);
  EXPECT_TRUE(signature.ok()) << signature.status();
  return signature.ok() ? *signature : std::string();
}

grpc::Status ReleaseFixture::GetChallenge(const std::string& client,
                                          v1::GetChallengeResponse* response) {
  auto stub = v1::KeyReleaseService::NewStub(ChannelFor(client));
  grpc::ClientContext context;
  Deadline(&context);
  return stub->GetChallenge(&context, v1::GetChallengeRequest(), response);
}

absl::StatusOr<Attempt> ReleaseFixture::Prepare(Node& node, const std::string& client,
                                                const std::string& model,
                                                const std::vector<uint32_t>& pcrs,
                                                const std::vector<uint32_t>& sha1_pcrs) {
  Attempt attempt;
  tpm::PcrSelection selection = {{TPM2_ALG_SHA256, pcrs}};
  if (!sha1_pcrs.empty()) selection.push_back({TPM2_ALG_SHA1, sha1_pcrs});
  grpc::Status status = GetChallenge(client, &attempt.challenge);
  if (!status.ok()) return absl::UnknownError("GetChallenge: " + status.error_message());
  HOSN_ASSIGN_OR_RETURN(attempt.key, agent::EphemeralKey::Generate());
  const std::string& nonce = attempt.challenge.nonce();
  HOSN_ASSIGN_OR_RETURN(
      tpm::Bytes qualifying,
      tpm::ComputeQualifyingData(
          std::span(reinterpret_cast<const uint8_t*>(nonce.data()), nonce.size()),
          std::span(reinterpret_cast<const uint8_t*>(attempt.key->public_key_der().data()),
                    attempt.key->public_key_der().size())));
  HOSN_ASSIGN_OR_RETURN(agent::TpmQuote quote, node.tpm->Quote(selection, qualifying));
  v1::ReleaseKeyRequest& request = attempt.request;
  request.set_challenge(attempt.challenge.challenge());
  request.set_quote(Str(quote.attest));
  request.set_quote_signature(Str(quote.signature));
  for (const auto& [bank, values] : quote.pcr_values) {
    for (const auto& [index, digest] : values) {
      v1::PcrValue* value = request.add_pcr_values();
      value->set_bank(tpm::HashAlgName(bank));
      value->set_index(index);
      value->set_digest(Str(digest));
    }
  }
  request.set_ephemeral_public_key(attempt.key->public_key_der());
  request.set_manifest(Manifest(model));
  request.set_manifest_signature(Sign(request.manifest(), manifest_pki_));
  return attempt;
}

grpc::Status ReleaseFixture::Release(const std::string& client,
                                     const v1::ReleaseKeyRequest& request,
                                     v1::ReleaseKeyResponse* response) {
  auto stub = v1::KeyReleaseService::NewStub(ChannelFor(client));
  grpc::ClientContext context;
  Deadline(&context);
  return stub->ReleaseKey(&context, request, response);
}

absl::StatusOr<std::string> ReleaseFixture::Open(const agent::EphemeralKey& key,
                                                 const v1::ReleaseKeyResponse& response) {
  HOSN_ASSIGN_OR_RETURN(agent::ReleaseKdf kdf, agent::ReleaseKdfFromName(response.wrap_kdf()));
  HOSN_ASSIGN_OR_RETURN(SecretBytes dek, key.OpenWrappedDek(response.releaser_public_key(),
                                                            response.wrapped_dek(), kdf, ""));
  return Str(RevealSecret(dek));
}

std::string ReleaseFixture::AuditText() const {
  absl::StatusOr<std::string> text =
      RunCommand("cat " + AuditDir() + "/audit-*.jsonl " + dir_.Join("replica2") +
                 "/audit/audit-*.jsonl 2>/dev/null; true");
  return text.ok() ? *text : std::string();
}

std::string ReleaseFixture::Metrics() const {
  absl::StatusOr<std::string> body = hosn::testing::HttpGet(active_->metrics_port(), "/metrics");
  return body.ok() ? *body : std::string();
}

}  // namespace hosn::release::testing
