// hosn-keyd as a real process: SoftHSM token, dev PKI certificates, loopback
// mTLS, Prometheus scrape, reflection through buf curl, HSM outage and
// recovery, graceful SIGTERM, exit codes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/bundle/signature.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"
#include "hosn/keyd/v1/key_release.grpc.pb.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"
#include "server/hsm/key_store.h"
#include "tests/server/api/grpc_test_util.h"
#include "tests/server/api/test_pki.h"
#include "tests/server/keyd/cms_attributes.h"
#include "tests/testing/keyd_process.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::keyd {
namespace {

namespace v1 = ::hosn::keyd::v1;
using ::hosn::testing::DevPki;
using ::hosn::testing::KeydProcess;
using ::hosn::testing::RunCommand;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::SoftHsmToken;
using ::testing::HasSubstr;

constexpr char kHealthServing = 1;
constexpr char kHealthNotServing = 2;

void Deadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

class KeydTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-keyd"));
    ASSERT_NO_FATAL_FAILURE(Provision());
  }

  // A KEK and an EC P-256 signing key on the token, and a dev-CA certificate
  // for the signing key's public half.
  void Provision() {
    hsm::KeyStoreOptions options;
    options.uri = token_->uri();
    options.module_path = SoftHsmToken::kModulePath;
    options.pin_reference = token_->pin_reference();
    options.pool_size = 1;
    HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<hsm::KeyStore> store, hsm::KeyStore::Create(options));
    HOSN_ASSERT_OK(store->GenerateKek("hosn-kek", "k1").status());
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
  }

  // Writes a text-format config for `token_label` and returns its path.
  std::string WriteConfig(const std::string& token_label, const std::string& extra = "") {
    const std::string path = dir_.Join("keyd.textproto");
    std::ofstream(path) << absl::StrCat(R"(
listen_address: "127.0.0.1:0"
tls {
  server_certificate_path: ")",
                                        pki_.Cert("server"), R"("
  server_private_key_path: ")",
                                        pki_.Key("server"), R"("
  client_ca_bundle_path: ")",
                                        pki_.Cert("ca"), R"("
  reload_interval_seconds: 1
}
hsm {
  module_path: ")",
                                        SoftHsmToken::kModulePath, R"("
  token_uri: "pkcs11:token=)",
                                        token_label, R"("
  pin_reference: ")",
                                        token_->pin_reference(), R"("
  pool_size: 4
  kek_label: "hosn-kek"
  )",
                                        SigningFields(), R"(
  health_check_interval_seconds: 1
}
metrics { listen_address: "127.0.0.1:0" }
logging { level: "info" format: "json" }
audit { directory: ")",
                                        dir_.Join("audit"), R"(" checkpoint_interval: 50 )",
                                        audit_fields_, R"( }
)",
                                        extra);
    return path;
  }

  // The signing key fields of the hsm section: signing_fields_, or key A
  // ("hosn-signer") with its dev-CA certificate.
  std::string SigningFields() const {
    if (!signing_fields_.empty()) return signing_fields_;
    return absl::StrCat("signing_key_label: \"hosn-signer\" signing_certificate_chain_path: \"",
                        pki_.Cert("hsm-signer"), "\"");
  }

  // The rotation procedure's first two steps (docs/daemon.md, "Signing
  // keys"): a new EC P-256 signing key `label` made in the HSM by
  // hosn-hsm-selftest, and its certificate <pki>/<label>.pem issued by the
  // dev CA for the public key the HSM exported.
  void CreateCertifiedSigningKey(const std::string& label) {
    const std::string der = dir_.Join(label + ".der");
    HOSN_ASSERT_OK(
        RunCommand(absl::StrCat(hosn::testing::BinaryPath("server/hsm/tools/hosn-hsm-selftest"),
                                " create-key --kind=signing --key_label=", label,
                                " --key_id=", label, " --uri=pkcs11:token=", token_->label(),
                                " --module=", SoftHsmToken::kModulePath,
                                " --pin=", token_->pin_reference(), " --public_key_out=", der))
            .status());
    HOSN_ASSERT_OK(RunCommand(absl::StrCat("openssl pkey -pubin -inform DER -in ", der, " -out ",
                                           dir_.Join(label + ".pub.pem")))
                       .status());
    HOSN_ASSERT_OK(
        RunCommand(absl::StrCat("bash ", hosn::testing::SourcePath("deploy/pki/dev-pki.sh"), " ",
                                pki_.dir(), " --hsm-signer ", dir_.Join(label + ".pub.pem"), " ",
                                label))
            .status());
  }

  std::unique_ptr<KeydProcess> StartKeyd(const std::string& config) {
    auto keyd = std::make_unique<KeydProcess>(config, dir_.path());
    absl::Status ready = keyd->WaitReady(absl::Seconds(30));
    EXPECT_TRUE(ready.ok()) << ready;
    return keyd;
  }

  int Health(const KeydProcess& keyd) {
    grpc::Status status;
    return hosn::testing::HealthCheck(pki_.Channel(keyd.grpc_port(), "operator"), "", &status);
  }

  bool WaitHealth(const KeydProcess& keyd, int want, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (Health(keyd) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // `sent_attributes`, if given, receives the CMS attributes the request
  // carried (they hold a signing time, so building them again may differ).
  grpc::Status Sign(const KeydProcess& keyd, const std::string& manifest,
                    v1::SignManifestResponse* response, std::string* sent_attributes = nullptr) {
    auto stub = v1::SigningService::NewStub(pki_.Channel(keyd.grpc_port(), "signer"));
    grpc::ClientContext context;
    Deadline(&context);
    v1::SignManifestRequest request;
    request.set_manifest(manifest);
    request.set_cms_signed_attributes(hosn::testing::CmsAttributesFor(
        manifest, hosn::testing::ReadTestFile(pki_.Cert("hsm-signer"))));
    if (sent_attributes != nullptr) *sent_attributes = request.cms_signed_attributes();
    return stub->SignManifest(&context, request, response);
  }

  // buf (npm @bufbuild/buf), installed once into the build tree.
  std::string Buf() {
    const std::string tools = hosn::testing::BinaryPath("tools/buf");
    const std::string buf = tools + "/node_modules/.bin/buf";
    if (access(buf.c_str(), X_OK) != 0) {
      EXPECT_TRUE(RunCommand("mkdir -p " + tools + " && npm install --prefix " + tools +
                             " --no-audit --no-fund @bufbuild/buf >/dev/null 2>&1")
                      .ok());
    }
    return buf;
  }

  ScopedTempDir dir_;
  DevPki pki_;
  std::unique_ptr<SoftHsmToken> token_;
  std::string signing_fields_;  // see SigningFields()
  std::string audit_fields_;    // added to the audit section
};

// Signs the CMS attributes of a manifest in the HSM; the signature verifies
// under the returned certificate.
TEST_F(KeydTest, SignsManifestVerifiableWithReturnedChain) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10))) << keyd->Log();

  const std::string manifest = R"({"format_version":1,"model":{"name":"m"}})";
  v1::SignManifestResponse response;
  std::string attributes;
  grpc::Status status = Sign(*keyd, manifest, &response, &attributes);
  ASSERT_TRUE(status.ok()) << status.error_message() << keyd->Log();
  EXPECT_EQ(response.signature_algorithm(), v1::SIGNATURE_ALGORITHM_ECDSA_P256_SHA256);
  EXPECT_EQ(response.key_label(), "hosn-signer");
  ASSERT_EQ(response.certificate_chain_size(), 1);
  ASSERT_FALSE(attributes.empty());

  const unsigned char* der =
      reinterpret_cast<const unsigned char*>(response.certificate_chain(0).data());
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      d2i_X509(nullptr, &der, static_cast<long>(response.certificate_chain(0).size())), X509_free);
  ASSERT_NE(cert, nullptr);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  ASSERT_EQ(
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, X509_get0_pubkey(cert.get())),
      1);
  EXPECT_EQ(EVP_DigestVerify(
                ctx.get(), reinterpret_cast<const unsigned char*>(response.signature().data()),
                response.signature().size(),
                reinterpret_cast<const unsigned char*>(attributes.data()), attributes.size()),
            1);
}

// Without CMS signed attributes nothing is signed: the daemon never signs the
// request's bytes as they are.
TEST_F(KeydTest, RawSigningRefused) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10))) << keyd->Log();
  auto stub = v1::SigningService::NewStub(pki_.Channel(keyd->grpc_port(), "signer"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::SignManifestRequest request;
  request.set_manifest("any bytes at all");
  v1::SignManifestResponse response;
  grpc::Status status = stub->SignManifest(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("cms_signed_attributes"));
  EXPECT_TRUE(response.signature().empty());
}

// A ManifestSigner whose key is the daemon's: the CMS code of common/bundle
// builds the signed attributes, the daemon checks and signs them.
class DaemonSigner : public bundle::ManifestSigner {
 public:
  DaemonSigner(v1::SigningService::Stub* stub, std::string chain_pem, std::string key_label = "")
      : stub_(stub), chain_pem_(std::move(chain_pem)), key_label_(std::move(key_label)) {}
  bundle::SignatureAlgorithm algorithm() const override {
    return bundle::SignatureAlgorithm::kEcdsaSha256;
  }
  std::string CertificateChainPem() const override { return chain_pem_; }
  absl::StatusOr<std::string> SignRaw(std::string_view manifest,
                                      std::string_view message) override {
    grpc::ClientContext context;
    Deadline(&context);
    v1::SignManifestRequest request;
    request.set_manifest(std::string(manifest));
    request.set_cms_signed_attributes(std::string(message));
    request.set_key_label(key_label_);
    v1::SignManifestResponse response;
    grpc::Status status = stub_->SignManifest(&context, request, &response);
    if (!status.ok())
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    return bundle::EcdsaDerToRaw(response.signature(), 32);
  }

 private:
  v1::SigningService::Stub* const stub_;
  const std::string chain_pem_;
  const std::string key_label_;
};

std::string DerToPem(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (cert == nullptr || PEM_write_bio_X509(bio.get(), cert.get()) != 1) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// hosnctl's flow: a detached CMS built by common/bundle and signed through the daemon verifies.
TEST_F(KeydTest, CmsSignatureThroughDaemonVerifies) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));
  auto stub = v1::SigningService::NewStub(pki_.Channel(keyd->grpc_port(), "signer"));
  v1::GetSigningCertificatesResponse certificates;
  {
    grpc::ClientContext context;
    Deadline(&context);
    ASSERT_TRUE(
        stub->GetSigningCertificates(&context, v1::GetSigningCertificatesRequest(), &certificates)
            .ok());
  }
  ASSERT_EQ(certificates.certificate_chain_size(), 1);
  const std::string manifest = R"({"format_version":1})";
  DaemonSigner signer(stub.get(), DerToPem(certificates.certificate_chain(0)));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string cms, bundle::SignManifest(manifest, signer));

  bundle::TrustOptions trust;
  trust.ca_bundle_pem = hosn::testing::ReadTestFile(pki_.Cert("ca"));
  HOSN_EXPECT_OK(bundle::VerifyManifestSignature(manifest, cms, trust));
  EXPECT_FALSE(bundle::VerifyManifestSignature(manifest + " ", cms, trust).ok());
}

// Signed attributes whose messageDigest is not the manifest's are refused before signing.
TEST_F(KeydTest, CmsAttributesForAnotherManifestAreRefused) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));
  auto stub = v1::SigningService::NewStub(pki_.Channel(keyd->grpc_port(), "signer"));
  // Capture the attributes the CMS code builds for manifest A...
  hosn::testing::CmsAttributeCapture capture(hosn::testing::ReadTestFile(pki_.Cert("hsm-signer")));
  EXPECT_FALSE(bundle::SignManifest("manifest A", capture).ok());
  ASSERT_FALSE(capture.attributes().empty());
  // ...and send them with manifest B.
  grpc::ClientContext context;
  Deadline(&context);
  v1::SignManifestRequest request;
  request.set_manifest("manifest B");
  request.set_cms_signed_attributes(capture.attributes());
  v1::SignManifestResponse response;
  grpc::Status status = stub->SignManifest(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("does not match manifest"));
  request.set_cms_signed_attributes("\x31\x00garbage");
  grpc::ClientContext context2;
  Deadline(&context2);
  EXPECT_EQ(stub->SignManifest(&context2, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// hosnctl's flow with the key `key_label` (empty: the default): the chain
// from GetSigningCertificates, a detached CMS built by common/bundle and
// signed through the daemon. Sets *signed_by to the label the daemon used.
absl::StatusOr<std::string> CmsThroughDaemon(v1::SigningService::Stub& stub,
                                             const std::string& manifest,
                                             const std::string& key_label, std::string* signed_by) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::GetSigningCertificatesRequest request;
  request.set_key_label(key_label);
  v1::GetSigningCertificatesResponse certificates;
  grpc::Status status = stub.GetSigningCertificates(&context, request, &certificates);
  if (!status.ok()) return absl::InternalError(status.error_message());
  if (certificates.certificate_chain_size() != 1) return absl::InternalError("want one cert");
  *signed_by = certificates.key_label();
  DaemonSigner signer(&stub, DerToPem(certificates.certificate_chain(0)), key_label);
  return bundle::SignManifest(manifest, signer);
}

// SHA-256 fingerprint of a PEM certificate file, through the openssl CLI.
std::string Fingerprint(const std::string& pem_path) {
  absl::StatusOr<std::string> out =
      RunCommand(absl::StrCat("openssl x509 -noout -fingerprint -sha256 -in ", pem_path));
  return out.ok() ? *out : "unreadable " + pem_path;
}

// The signing-key rotation of docs/daemon.md on a real daemon: key A signs;
// key B is made in the HSM, certified by the CA and configured as the default
// with A kept; after a restart B signs by default, A can still be named, an
// unconfigured label is refused, and the signatures of both verify with
// `openssl cms -verify` and common/bundle against the pinned CA.
TEST_F(KeydTest, SigningKeyRotationKeepsOldSignaturesVerifying) {
  const std::string manifest = R"({"format_version":1,"model":{"name":"m","version":"1"}})";
  std::string signed_by;

  // 1. Before: key A ("hosn-signer") is the only, default, key.
  std::string cms_a;
  {
    auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
    ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10))) << keyd->Log();
    auto stub = v1::SigningService::NewStub(pki_.Channel(keyd->grpc_port(), "signer"));
    HOSN_ASSERT_OK_AND_ASSIGN(cms_a, CmsThroughDaemon(*stub, manifest, "", &signed_by));
    EXPECT_EQ(signed_by, "hosn-signer");
    HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd->Stop(SIGTERM, absl::Seconds(20)));
    ASSERT_EQ(code, 0) << keyd->Log();
  }

  // 2. Rotation: key B in the HSM, its certificate, B the default, A kept,
  // and audit checkpoints still signed by A (one chain verifies the log).
  ASSERT_NO_FATAL_FAILURE(CreateCertifiedSigningKey("hosn-signer-2"));
  audit_fields_ =
      absl::StrCat(R"(checkpoint_key_label: "hosn-signer" checkpoint_certificate_chain_path: ")",
                   pki_.Cert("hsm-signer"), R"(")");
  signing_fields_ = absl::StrCat(R"(signing_key_label: "hosn-signer-2"
  signing_certificate_chain_path: ")",
                                 pki_.Cert("hosn-signer-2"), R"("
  signing_keys { label: "hosn-signer" certificate_chain_path: ")",
                                 pki_.Cert("hsm-signer"), R"(" })");
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10))) << keyd->Log();
  auto stub = v1::SigningService::NewStub(pki_.Channel(keyd->grpc_port(), "signer"));

  // 3. After: B signs by default, A when named.
  HOSN_ASSERT_OK_AND_ASSIGN(std::string cms_b, CmsThroughDaemon(*stub, manifest, "", &signed_by));
  EXPECT_EQ(signed_by, "hosn-signer-2");
  HOSN_ASSERT_OK_AND_ASSIGN(std::string cms_a_named,
                            CmsThroughDaemon(*stub, manifest, "hosn-signer", &signed_by));
  EXPECT_EQ(signed_by, "hosn-signer");

  // 4. A label that is not configured is refused by all three signing RPCs,
  // even though the key exists on the token ("hosn-kek" is a KEK).
  for (const std::string label : {"hosn-signer-3", "hosn-kek"}) {
    v1::SignManifestRequest sign;
    sign.set_manifest(manifest);
    sign.set_key_label(label);
    sign.set_cms_signed_attributes(hosn::testing::CmsAttributesFor(
        manifest, hosn::testing::ReadTestFile(pki_.Cert("hsm-signer"))));
    v1::SignManifestResponse signed_response;
    grpc::ClientContext c1;
    Deadline(&c1);
    grpc::Status status = stub->SignManifest(&c1, sign, &signed_response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(),
              absl::StrCat("key_label: signing key ", label, " is not configured"));
    EXPECT_TRUE(signed_response.signature().empty());
    v1::GetSigningCertificatesRequest get;
    get.set_key_label(label);
    v1::GetSigningCertificatesResponse certificates;
    grpc::ClientContext c2;
    Deadline(&c2);
    EXPECT_EQ(stub->GetSigningCertificates(&c2, get, &certificates).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    v1::SignStatementRequest statement;
    statement.set_payload_type("application/vnd.in-toto+json");
    statement.set_payload("{}");
    statement.set_key_label(label);
    v1::SignStatementResponse statement_response;
    grpc::ClientContext c3;
    Deadline(&c3);
    status = stub->SignStatement(&c3, statement, &statement_response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("key_label"));
  }

  // 5. Every signature verifies against the CA, with our verifier and with
  // openssl cms, and each names the certificate of the key that made it.
  bundle::TrustOptions trust;
  trust.ca_bundle_pem = hosn::testing::ReadTestFile(pki_.Cert("ca"));
  const std::string manifest_path = dir_.Join("manifest.json");
  std::ofstream(manifest_path, std::ios::binary) << manifest;
  const struct {
    std::string name;
    const std::string& cms;
    std::string certificate;
  } signatures[] = {{"a", cms_a, pki_.Cert("hsm-signer")},
                    {"b", cms_b, pki_.Cert("hosn-signer-2")},
                    {"a-named", cms_a_named, pki_.Cert("hsm-signer")}};
  for (const auto& signature : signatures) {
    SCOPED_TRACE(signature.name);
    HOSN_EXPECT_OK(bundle::VerifyManifestSignature(manifest, signature.cms, trust));
    EXPECT_FALSE(bundle::VerifyManifestSignature(manifest + " ", signature.cms, trust).ok());
    const std::string cms_path = dir_.Join("manifest." + signature.name + ".sig");
    std::ofstream(cms_path, std::ios::binary) << signature.cms;
    const std::string signer_path = dir_.Join("signer." + signature.name + ".pem");
    HOSN_EXPECT_OK(
        RunCommand(absl::StrCat("openssl cms -verify -binary -inform DER -in ", cms_path,
                                " -content ", manifest_path, " -CAfile ", pki_.Cert("ca"),
                                " -purpose any -signer ", signer_path, " -out /dev/null 2>&1"))
            .status());
    EXPECT_EQ(Fingerprint(signer_path), Fingerprint(signature.certificate));
  }
  EXPECT_NE(Fingerprint(pki_.Cert("hsm-signer")), Fingerprint(pki_.Cert("hosn-signer-2")));
  // 6. The audit log across the rotation verifies with A's chain: the
  // checkpoint key stayed A, as the procedure pins it.
  HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd->Stop(SIGTERM, absl::Seconds(20)));
  EXPECT_EQ(code, 0) << keyd->Log();
  const auto audit_verify = [&](const std::string& chain) {
    return RunCommand(absl::StrCat(hosn::testing::BinaryPath("client/ctl/hosnctl"),
                                   " audit verify --log ", dir_.Join("audit"), " --ca ",
                                   pki_.Cert("ca"), " --signer-chain ", chain,
                                   " --checkpoint-interval 50 2>&1"))
        .status();
  };
  HOSN_EXPECT_OK(audit_verify(pki_.Cert("hsm-signer")));
  EXPECT_FALSE(audit_verify(pki_.Cert("hosn-signer-2")).ok());
  // openssl cms refuses the same signature over other bytes.
  std::ofstream(dir_.Join("other.json"), std::ios::binary) << manifest << " ";
  EXPECT_FALSE(
      RunCommand(absl::StrCat("openssl cms -verify -binary -inform DER -in ",
                              dir_.Join("manifest.b.sig"), " -content ", dir_.Join("other.json"),
                              " -CAfile ", pki_.Cert("ca"), " -purpose any -out /dev/null 2>&1"))
          .ok());
}

// A configured signing key whose certificate holds another public key, or
// that is missing from the token, stops the daemon at start (exit 78) with
// an error naming the key.
TEST_F(KeydTest, SigningCertificateOfAnotherKeyStopsTheDaemon) {
  ASSERT_NO_FATAL_FAILURE(CreateCertifiedSigningKey("hosn-signer-2"));
  const struct {
    std::string fields;
    std::string error;
  } cases[] = {
      // B listed with A's certificate.
      {absl::StrCat(SigningFields(),
                    R"( signing_keys { label: "hosn-signer-2" certificate_chain_path: ")",
                    pki_.Cert("hsm-signer"), R"(" })"),
       "signing key hosn-signer-2: certificate does not match the hsm key's public key"},
      // The default key with a certificate of a software key.
      {absl::StrCat(R"(signing_key_label: "hosn-signer" signing_certificate_chain_path: ")",
                    pki_.Cert("signer"), R"(")"),
       "signing key hosn-signer: certificate does not match the hsm key's public key"},
      // A key that is not on the token.
      {absl::StrCat(SigningFields(),
                    R"( signing_keys { label: "hosn-signer-9" certificate_chain_path: ")",
                    pki_.Cert("hosn-signer-2"), R"(" })"),
       "signing key hosn-signer-9: no such ec key pair on the token"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.error);
    signing_fields_ = c.fields;
    KeydProcess keyd(WriteConfig("hosn-keyd"), dir_.path());
    HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd.WaitExit(absl::Seconds(20)));
    EXPECT_EQ(code, 78) << keyd.Log();
    EXPECT_THAT(keyd.Log(), HasSubstr("\"event\":\"hsm_config_invalid\""));
    EXPECT_THAT(keyd.Log(), HasSubstr(c.error));
  }
  // The same keys with their own certificates start.
  signing_fields_ =
      absl::StrCat("signing_key_label: \"hosn-signer\" signing_certificate_chain_path: \"",
                   pki_.Cert("hsm-signer"),
                   "\" signing_keys { label: \"hosn-signer-2\" certificate_chain_path: \"",
                   pki_.Cert("hosn-signer-2"), "\" }");
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  EXPECT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10))) << keyd->Log();
}

// Operators create, rotate and list KEKs and create wrapped model keys.
TEST_F(KeydTest, AdminCreatesRotatesAndListsKeys) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));
  auto stub = v1::AdminService::NewStub(pki_.Channel(keyd->grpc_port(), "operator"));

  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::CreateKekRequest request;
    request.set_label("tenant-kek");
    v1::CreateKekResponse response;
    ASSERT_TRUE(stub->CreateKek(&context, request, &response).ok()) << keyd->Log();
    EXPECT_EQ(response.key().label(), "tenant-kek");
    EXPECT_EQ(response.key().kind(), v1::KEY_KIND_KEK);
    EXPECT_EQ(response.key().id().size(), 16u);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::CreateKekRequest request;
    request.set_label("tenant-kek");
    v1::CreateKekResponse response;
    EXPECT_EQ(stub->CreateKek(&context, request, &response).error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::RotateKeyRequest request;
    request.set_label("tenant-kek");
    v1::RotateKeyResponse response;
    ASSERT_TRUE(stub->RotateKey(&context, request, &response).ok());
    EXPECT_EQ(response.previous_key().label(), "tenant-kek");
    EXPECT_EQ(response.new_key().label(), "tenant-kek.v1");
    EXPECT_EQ(response.new_key().version(), 1u);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::CreateModelKeyRequest request;
    request.set_model_name("llama");
    v1::CreateModelKeyResponse response;
    ASSERT_TRUE(stub->CreateModelKey(&context, request, &response).ok());
    EXPECT_EQ(response.kek_label(), "hosn-kek");
    EXPECT_EQ(response.kek_wrapped_dek().size(), 40u);  // RFC 5649 of 32 bytes
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::ListKeysResponse response;
    ASSERT_TRUE(stub->ListKeys(&context, v1::ListKeysRequest(), &response).ok());
    // Every key on the token, the ones made through the daemon included.
    std::vector<std::string> listed;
    for (const v1::KeyDescription& key : response.keys()) {
      listed.push_back(absl::StrCat(key.label(), " ", v1::KeyKind_Name(key.kind()), " ",
                                    key.algorithm(), " v", key.version()));
    }
    EXPECT_THAT(listed, ::testing::ElementsAre("hosn-kek KEY_KIND_KEK AES-256 v0",
                                               "tenant-kek KEY_KIND_KEK AES-256 v0",
                                               "tenant-kek.v1 KEY_KIND_KEK AES-256 v1",
                                               "hosn-signer KEY_KIND_SIGNING EC-P256 v0"));
    EXPECT_EQ(response.keys(3).public_key_sha256().size(), 32u);
  }
  {
    // The kind filter.
    grpc::ClientContext context;
    Deadline(&context);
    v1::ListKeysRequest request;
    request.set_kind(v1::KEY_KIND_SIGNING);
    v1::ListKeysResponse response;
    ASSERT_TRUE(stub->ListKeys(&context, request, &response).ok());
    ASSERT_EQ(response.keys_size(), 1);
    EXPECT_EQ(response.keys(0).label(), "hosn-signer");
  }
}

// G2 against the daemon: node b asking as node a is denied.
TEST_F(KeydTest, NodeCannotAskForAnotherNode) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  auto stub = v1::KeyReleaseService::NewStub(pki_.Channel(keyd->grpc_port(), "node-b"));
  grpc::ClientContext context;
  Deadline(&context);
  v1::GetChallengeRequest request;
  request.set_node_id("a");
  v1::GetChallengeResponse response;
  EXPECT_EQ(stub->GetChallenge(&context, request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(keyd->Log(), HasSubstr("node may only act for itself"));
}

// The scrape has RPC, TLS, certificate and pool metrics and passes promtool.
TEST_F(KeydTest, MetricsScrapePassesPromtool) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));
  v1::SignManifestResponse response;
  ASSERT_TRUE(Sign(*keyd, "{}", &response).ok());
  grpc::Status refused;
  EXPECT_EQ(
      hosn::testing::HealthCheck(pki_.Channel(keyd->grpc_port(), "bad-selfsigned"), "", &refused),
      -1);  // a failed handshake, counted below
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);

  HOSN_ASSERT_OK_AND_ASSIGN(std::string text,
                            hosn::testing::HttpGet(keyd->metrics_port(), "/metrics"));
  EXPECT_THAT(text, HasSubstr("hosn_keyd_rpcs_total{code=\"OK\",method=\"/"
                              "hosn.keyd.v1.SigningService/SignManifest\"} 1"));
  EXPECT_THAT(text, HasSubstr("hosn_keyd_rpc_duration_seconds_bucket"));
  EXPECT_THAT(text,
              HasSubstr("hosn_keyd_certificate_expiry_timestamp_seconds{certificate=\"server\"}"));
  EXPECT_THAT(text, HasSubstr("hosn_keyd_hsm_ready 1"));
  EXPECT_THAT(text, HasSubstr("hosn_keyd_hsm_ops_total{kind=\"sign\",result=\"ok\"} 1"));
  EXPECT_THAT(text, HasSubstr("hosn_keyd_hsm_pool_sessions 4"));
  EXPECT_THAT(text, ::testing::ContainsRegex("hosn_keyd_tls_handshake_failures_total [1-9]"));

  std::ofstream(dir_.Join("scrape.txt")) << text;
  absl::StatusOr<std::string> promtool =
      RunCommand("promtool check metrics < " + dir_.Join("scrape.txt") + " 2>&1");
  EXPECT_TRUE(promtool.ok()) << promtool.status();
}

// A real Prometheus server (loopback only) scrapes the daemon: target up, HSM ready.
TEST_F(KeydTest, RealPrometheusScrapesDaemon) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));

  // A free loopback port for Prometheus' own web listener.
  const int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int prometheus_port = ntohs(address.sin_port);
  close(probe);

  std::ofstream(dir_.Join("prometheus.yml")) << absl::StrCat(
      "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: keyd\n"
      "    static_configs:\n      - targets: ['127.0.0.1:",
      keyd->metrics_port(), "']\n");
  const pid_t prometheus = fork();
  if (prometheus == 0) {
    const int log = open(dir_.Join("prometheus.log").c_str(), O_WRONLY | O_CREAT, 0600);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    const std::string config = "--config.file=" + dir_.Join("prometheus.yml");
    const std::string storage = "--storage.tsdb.path=" + dir_.Join("tsdb");
    const std::string listen = absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port);
    execlp("prometheus", "prometheus", config.c_str(), storage.c_str(), listen.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(prometheus, 0);

  // Wait until Prometheus has scraped the target and stored hosn_keyd_hsm_ready.
  std::string answer;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> body = hosn::testing::HttpGet(
        prometheus_port, "/api/v1/query?query=hosn_keyd_hsm_ready%7Bjob%3D%22keyd%22%7D");
    if (body.ok() && body->find("\"value\"") != std::string::npos) {
      answer = *body;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  absl::StatusOr<std::string> up =
      hosn::testing::HttpGet(prometheus_port, "/api/v1/query?query=up%7Bjob%3D%22keyd%22%7D");
  kill(prometheus, SIGTERM);
  waitpid(prometheus, nullptr, 0);
  EXPECT_THAT(answer, HasSubstr("\"1\"]")) << answer;
  ASSERT_TRUE(up.ok());
  EXPECT_THAT(*up, HasSubstr("\"1\"]"));
}

// Rotated certificates are served after SIGHUP; a half-written key is refused and the old pair
// stays.
TEST_F(KeydTest, ReloadsCertificatesOnSighupWithoutRestart) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));

  // 1. A half-written key: refused, the old pair keeps serving.
  const std::string key = hosn::testing::ReadTestFile(pki_.Key("server"));
  std::ofstream(pki_.Key("server"), std::ios::trunc) << key.substr(0, key.size() / 2);
  kill(keyd->pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_THAT(keyd->Log(), HasSubstr("tls_reload_refused"));
  EXPECT_EQ(Health(*keyd), kHealthServing);

  // 2. A whole new CA, server pair and client bundle: served after SIGHUP.
  DevPki next;
  for (const char* name : {"server.pem", "server.key", "ca.pem"}) {
    std::ofstream(pki_.dir() + "/" + name, std::ios::trunc)
        << hosn::testing::ReadTestFile(next.dir() + "/" + name);
  }
  kill(keyd->pid(), SIGHUP);
  grpc::Status status;
  int health = -1;
  for (int i = 0; i < 50 && health != kHealthServing; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    health = hosn::testing::HealthCheck(next.Channel(keyd->grpc_port(), "operator"), "", &status);
  }
  EXPECT_EQ(health, kHealthServing) << status.error_message() << keyd->Log();
  EXPECT_EQ(keyd->pid() > 0, true);
}

// Readiness is false while the token is missing and turns true when it appears, without restart.
// The late token gets the start-up check of the signing key when it appears: serving only once
// its key pair is the one the configured certificate holds.
TEST_F(KeydTest, HealthFollowsTokenAndRecovers) {
  // The signing key of the late token is imported from a software key, so its
  // certificate exists before the token does.
  signing_fields_ =
      absl::StrCat(R"(signing_key_label: "hosn-signer" signing_certificate_chain_path: ")",
                   pki_.Cert("signer"), R"(")");
  auto keyd = StartKeyd(WriteConfig("late-token"));
  EXPECT_EQ(Health(*keyd), kHealthNotServing);
  v1::SignManifestResponse response;
  EXPECT_EQ(Sign(*keyd, "{}", &response).error_code(), grpc::StatusCode::UNAVAILABLE);

  // A token without the signing key keeps the daemon unready.
  HOSN_ASSERT_OK(token_->AddToken("late-token").status());
  EXPECT_FALSE(WaitHealth(*keyd, kHealthServing, absl::Seconds(3)));
  EXPECT_THAT(keyd->Log(), HasSubstr("signing key hosn-signer: no such ec key pair on the token"));

  HOSN_ASSERT_OK(RunCommand(absl::StrCat("softhsm2-util --import ", pki_.Key("signer"),
                                         " --token late-token --label hosn-signer --id 02 --pin ",
                                         SoftHsmToken::kUserPin, " >/dev/null"))
                     .status());
  EXPECT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(15))) << keyd->Log();
  EXPECT_THAT(keyd->Log(), HasSubstr("\"event\":\"hsm_ready\""));
}

// SIGTERM drains, closes the HSM and exits 0; core dumps are off.
TEST_F(KeydTest, SigtermExitsCleanlyAndCoreDumpsAreOff) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string limits,
                            RunCommand(absl::StrCat("cat /proc/", keyd->pid(), "/limits")));
  EXPECT_THAT(limits, ::testing::ContainsRegex("Max core file size +0 +0"));
  HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd->Stop(SIGTERM, absl::Seconds(20)));
  EXPECT_EQ(code, 0) << keyd->Log();
  EXPECT_THAT(keyd->Log(), HasSubstr("\"event\":\"stopped\""));
  EXPECT_EQ(access(dir_.Join("tls/identity.pem").c_str(), F_OK), -1);  // staged key removed
}

// A bad config exits 78, a missing --config exits 64, --check_config exits 0.
TEST_F(KeydTest, ExitCodes) {
  const std::string good = WriteConfig("hosn-keyd");
  {
    KeydProcess keyd(good, dir_.path(), {"--check_config"});
    HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd.WaitExit(absl::Seconds(10)));
    EXPECT_EQ(code, 0) << keyd.Log();
  }
  {
    std::ofstream(dir_.Join("bad.textproto")) << "listen_address: \"nope\"\n";
    KeydProcess keyd(dir_.Join("bad.textproto"), dir_.path());
    HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd.WaitExit(absl::Seconds(10)));
    EXPECT_EQ(code, 78);
    EXPECT_THAT(keyd.Log(), HasSubstr("config listen_address"));
  }
  {
    KeydProcess keyd("", dir_.path());
    HOSN_ASSERT_OK_AND_ASSIGN(int code, keyd.WaitExit(absl::Seconds(10)));
    EXPECT_EQ(code, 64);
  }
}

// An operator drives the daemon through reflection with buf curl, as with grpcurl.
TEST_F(KeydTest, BufCurlThroughReflection) {
  auto keyd = StartKeyd(WriteConfig("hosn-keyd"));
  ASSERT_TRUE(WaitHealth(*keyd, kHealthServing, absl::Seconds(10)));
  const std::string curl =
      absl::StrCat(Buf(), " curl --protocol grpc --cacert ", pki_.Cert("ca"), " --cert ",
                   pki_.Cert("operator"), " --key ", pki_.Key("operator"), " ");
  const std::string url = absl::StrCat("https://127.0.0.1:", keyd->grpc_port());

  HOSN_ASSERT_OK_AND_ASSIGN(std::string methods,
                            RunCommand(curl + "--list-methods " + url + " 2>&1"));
  EXPECT_THAT(methods, HasSubstr("hosn.keyd.v1.AdminService/CreateKek"));
  EXPECT_THAT(methods, HasSubstr("hosn.keyd.v1.SigningService/SignManifest"));
  EXPECT_THAT(methods, HasSubstr("hosn.keyd.v1.KeyReleaseService/ReleaseKey"));

  HOSN_ASSERT_OK_AND_ASSIGN(std::string created,
                            RunCommand(curl + "-d '{\"label\":\"buf-kek\"}' " + url +
                                       "/hosn.keyd.v1.AdminService/CreateKek 2>&1"));
  EXPECT_THAT(created, HasSubstr("\"label\": \"buf-kek\""));
  EXPECT_THAT(created, HasSubstr("KEY_KIND_KEK"));

  HOSN_ASSERT_OK_AND_ASSIGN(std::string health, RunCommand(curl + "-d '{}' " + url +
                                                           "/grpc.health.v1.Health/Check 2>&1"));
  EXPECT_THAT(health, HasSubstr("\"status\": \"SERVING\""));
}

}  // namespace
}  // namespace hosn::keyd
