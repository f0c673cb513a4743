// Attested key release end to end: a real hosn-keyd with a SoftHSM token,
// real swtpm nodes driven by the agent's TpmDevice, real mTLS identities.
// Each test enrolls through BeginEnrollment -> ActivateCredential ->
// EnrollNode, sets a policy from the swtpm's PCRs, and asks for the model
// key; denials are checked by their audit entry and metric label.
#include <fstream>
#include <thread>

#include <openssl/pem.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/bundle/manifest.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/marshal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/fleet.pb.h"
#include "server/attest/event_log.h"
#include "server/attest/event_rules.h"
#include "tests/server/release/release_fixture.h"
#include "tests/testing/openssl_ca.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::release::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kClass[] = "gpu-a100";
constexpr char kModel[] = "embeddings-en";

class ReleaseTest : public ReleaseFixture {
 protected:
  // Node A enrolled in kClass, whose policy is A's current PCRs and kModel.
  void EnrollNodeA() {
    ASSERT_NO_FATAL_FAILURE(StartKeyd());
    a_ = NewNode("a");
    ASSERT_NE(a_.tpm, nullptr);
    grpc::Status enrolled = Enroll(a_, "a", kClass);
    ASSERT_TRUE(enrolled.ok()) << enrolled.error_message();
    grpc::Status policy = SetPolicyFromNode(a_, kClass, {kModel});
    ASSERT_TRUE(policy.ok()) << policy.error_message();
  }

  // Expects `request` from `client` to be denied, with `audit_text` in the
  // audit log and `label` as a denial metric label.
  void ExpectDenied(const std::string& client, const v1::ReleaseKeyRequest& request,
                    const std::string& audit_text, const std::string& label) {
    v1::ReleaseKeyResponse response;
    grpc::Status status = Release(client, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_EQ(status.error_message(), "denied");
    EXPECT_TRUE(response.wrapped_dek().empty());
    EXPECT_THAT(AuditText(), HasSubstr(audit_text));
    EXPECT_THAT(Metrics(), HasSubstr(absl::StrCat("reason=\"", label, "\"")));
  }

  // An AK from another TPM cannot be enrolled: B's TPM cannot activate a
  // credential made for A's AK under B's EK, and a guessed secret is refused.
  void ExpectForeignAkRefused(agent::EkAlgorithm ek_algorithm) {
    ASSERT_NO_FATAL_FAILURE(StartKeyd());
    Node a = NewNode("a", ek_algorithm);
    Node b = NewNode("b", ek_algorithm);
    ASSERT_NE(a.tpm, nullptr);
    ASSERT_NE(b.tpm, nullptr);
    HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes a_ak, a.tpm->AttestationKeyPublic());
    HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes b_ek, b.tpm->EndorsementKeyPublic());

    auto stub = v1::AdminService::NewStub(ChannelFor("operator"));
    v1::BeginEnrollmentRequest begin;
    begin.set_node_id("a");
    begin.set_node_class(kClass);
    begin.set_ak_public(To2b(a_ak));
    begin.set_ek_public(To2b(b_ek));
    v1::BeginEnrollmentResponse challenge;
    {
      grpc::ClientContext context;
      ASSERT_TRUE(stub->BeginEnrollment(&context, begin, &challenge).ok());
    }
    // B's TPM holds its own AK, whose name differs from A's, and A's TPM
    // lacks B's EK: both refuse.
    const tpm::Bytes blob(challenge.credential_blob().begin(), challenge.credential_blob().end());
    const tpm::Bytes secret(challenge.encrypted_secret().begin(),
                            challenge.encrypted_secret().end());
    EXPECT_FALSE(b.tpm->ActivateCredential(blob, secret).ok());
    EXPECT_FALSE(a.tpm->ActivateCredential(blob, secret).ok());
    v1::EnrollNodeRequest enroll;
    enroll.set_node_id("a");
    enroll.set_node_class(kClass);
    enroll.set_ak_public(begin.ak_public());
    enroll.set_ek_public(begin.ek_public());
    enroll.set_activation_secret(std::string(32, '\x42'));
    enroll.set_enrollment_token(challenge.enrollment_token());
    v1::EnrollNodeResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->EnrollNode(&context, enroll, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(AuditText(), HasSubstr("enrollment proof invalid"));

    // An AK without restricted is refused before any challenge (T1).
    HOSN_ASSERT_OK_AND_ASSIGN(TPMT_PUBLIC ak, tpm::UnmarshalPublic(a_ak));
    ak.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
    HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes weak, tpm::MarshalPublic(ak));
    begin.set_ak_public(To2b(weak));
    grpc::ClientContext weak_context;
    status = stub->BeginEnrollment(&weak_context, begin, &challenge);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(AuditText(), HasSubstr("restricted"));
  }

  Node a_;
};

// KAT: a good boot obtains the manifest's DEK, which opens only with the
// node's ephemeral key; the audit entry names node, class, model, reference
// set and policy version.
TEST_F(ReleaseTest, GoodBootReleasesKnownDek) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  EXPECT_EQ(attempt.challenge.nonce().size(), 32u);
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", attempt.request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.wrap_scheme(), "ecdh-p256-kwp");
  EXPECT_EQ(response.wrap_kdf(), "null");
  EXPECT_GT(response.audit_sequence(), 0u);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*attempt.key, response));
  EXPECT_EQ(dek, KnownDek());
  // The wrapped bytes are not the DEK and not the KEK-wrapped blob.
  EXPECT_THAT(response.wrapped_dek(), Not(HasSubstr(KnownDek())));
  EXPECT_NE(response.wrapped_dek(), bundle::testing::TestWrappedDek());

  const std::string audit = AuditText();
  EXPECT_THAT(audit, HasSubstr("\"outcome\":\"granted\""));
  EXPECT_THAT(audit, HasSubstr("golden-swtpm"));
  EXPECT_THAT(audit, HasSubstr(kModel));
  EXPECT_THAT(audit, HasSubstr(kClass));
  EXPECT_THAT(audit, HasSubstr("policy_version"));
}

// A changed boot (PCR 7 extended after the policy was set) is denied, and
// the audit entry and metric name the PCR.
TEST_F(ReleaseTest, ExtendedPcrIsDenied) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  ExtendPcr(a_, 7);
  ASSERT_NE(a_.tpm, nullptr);
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  ExpectDenied("node-a", attempt.request, "pcr 7 mismatch", "pcr mismatch");
}

// A captured request replayed within the TTL yields a blob that only the
// original ephemeral private key opens; with another ephemeral key in it, the
// quote no longer matches; after the TTL it is refused as stale.
TEST_F(ReleaseTest, ReplayIsUseless) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  v1::ReleaseKeyResponse first;
  ASSERT_TRUE(Release("node-a", attempt.request, &first).ok());

  v1::ReleaseKeyResponse replayed;
  ASSERT_TRUE(Release("node-a", attempt.request, &replayed).ok());
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<agent::EphemeralKey> attacker,
                            agent::EphemeralKey::Generate());
  EXPECT_THAT(Open(*attacker, replayed),
              hosn::testing::StatusIs(absl::StatusCode::kDataLoss, HasSubstr("integrity")));

  v1::ReleaseKeyRequest swapped = attempt.request;
  swapped.set_ephemeral_public_key(attacker->public_key_der());
  ExpectDenied("node-a", swapped, "nonce mismatch", "nonce mismatch");

  // The fixture's TTL is 5 s; the token's expiry has second granularity.
  std::this_thread::sleep_for(std::chrono::milliseconds(6500));
  ExpectDenied("node-a", attempt.request, "stale challenge", "stale challenge");
}

// Node B (its own swtpm, its own certificate, enrolled in the same class)
// cannot obtain node A's key: A's challenge is bound to A's identity, B's own
// challenge does not match A's quote, and an unenrolled identity is unknown.
TEST_F(ReleaseTest, NodeBCannotObtainNodeAKey) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt a_attempt, Prepare(a_, "node-a"));

  // Before B is enrolled: unknown node.
  ExpectDenied("node-b", a_attempt.request, "unknown node", "unknown node");

  Node b = NewNode("b");
  ASSERT_NE(b.tpm, nullptr);
  ASSERT_TRUE(Enroll(b, "b", kClass).ok());
  // A's whole request sent over B's mTLS identity.
  ExpectDenied("node-b", a_attempt.request, "challenge not for caller", "challenge not for caller");
  // B's own challenge with A's quote (bound to A's nonce): B's AK did not
  // sign it.
  v1::GetChallengeResponse b_challenge;
  ASSERT_TRUE(GetChallenge("node-b", &b_challenge).ok());
  v1::ReleaseKeyRequest mixed = a_attempt.request;
  mixed.set_challenge(b_challenge.challenge());
  ExpectDenied("node-b", mixed, "bad signature", "bad signature");
  // A node id in the request that is not the certificate's (refused by the
  // API layer before the release service runs).
  v1::ReleaseKeyRequest claimed = a_attempt.request;
  claimed.set_node_id("a");
  v1::ReleaseKeyResponse response;
  EXPECT_EQ(Release("node-b", claimed, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(response.wrapped_dek().empty());
  EXPECT_THAT(AuditText(), HasSubstr("node may only act for itself"));
}

// An AK from another TPM cannot be enrolled (ECC P-256 EKs).
TEST_F(ReleaseTest, AkFromAnotherTpmCannotBeEnrolled) {
  ExpectForeignAkRefused(agent::EkAlgorithm::kEccP256);
}

// The same with RSA 2048 EKs (MakeCredential with RSA-OAEP).
TEST_F(ReleaseTest, AkFromAnotherTpmCannotBeEnrolledRsaEk) {
  ExpectForeignAkRefused(agent::EkAlgorithm::kRsa2048);
}

// A node whose EK is RSA 2048 (TCG template L-1) enrolls through the daemon
// and obtains the DEK.
TEST_F(ReleaseTest, RsaEkNodeEnrollsAndReleases) {
  ASSERT_NO_FATAL_FAILURE(StartKeyd());
  Node node = NewNode("rsa", agent::EkAlgorithm::kRsa2048);
  ASSERT_NE(node.tpm, nullptr);
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ek, node.tpm->EndorsementKeyPublic());
  HOSN_ASSERT_OK_AND_ASSIGN(TPMT_PUBLIC ek_public, tpm::UnmarshalPublic(ek));
  ASSERT_EQ(ek_public.type, TPM2_ALG_RSA);
  grpc::Status enrolled = Enroll(node, "a", kClass);
  ASSERT_TRUE(enrolled.ok()) << enrolled.error_message();
  ASSERT_TRUE(SetPolicyFromNode(node, kClass, {kModel}).ok());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(node, "node-a"));
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", attempt.request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*attempt.key, response));
  EXPECT_EQ(dek, KnownDek());
}

// EK certificates for the tests: swtpm_setup with swtpm_localca (the real
// TCG layout: critical SAN with TPM manufacturer attributes, subject
// directory attributes, tcg-kp-EKCertificate), and a test CA made with the
// OpenSSL CLI that issues EK certificates for any EK public key.
class EkCertificateTest : public ReleaseTest {
 protected:
  // A swtpm whose state swtpm_setup manufactured with an RSA 2048 EK
  // certificate from a local CA below the test folder; the node's TpmDevice
  // loads the same L-1 EK.
  Node ManufacturedNode(const std::string& name) {
    const std::string ca = dir_.Join("localca");
    const std::string state = dir_.Join("tpm-" + name);
    EXPECT_TRUE(hosn::testing::RunCommand(absl::StrCat("mkdir -p ", ca, " ", state)).ok());
    std::ofstream(dir_.Join("localca.conf"))
        << "statedir = " << ca << "\nsigningkey = " << ca << "/signkey.pem\nissuercert = " << ca
        << "/issuercert.pem\ncertserial = " << ca << "/certserial\n";
    std::ofstream(dir_.Join("swtpm_setup.conf"))
        << "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = "
        << dir_.Join("localca.conf")
        << "\ncreate_certs_tool_options = /etc/swtpm-localca.options\n";
    absl::StatusOr<std::string> setup = hosn::testing::RunCommand(
        absl::StrCat("swtpm_setup --tpm2 --tpmstate ", state, " --create-ek-cert --config ",
                     dir_.Join("swtpm_setup.conf"), " 2>&1"));
    EXPECT_TRUE(setup.ok()) << setup.status();
    Node node = NewNode(name, agent::EkAlgorithm::kRsa2048);
    // The manufacturer CAs: the local root and its signing CA.
    EXPECT_TRUE(
        hosn::testing::RunCommand(absl::StrCat("cat ", ca, "/swtpm-localca-rootca-cert.pem ", ca,
                                               "/issuercert.pem > ", BundlePath()))
            .ok());
    return node;
  }

  // The RSA EK certificate swtpm_setup stored in the TPM's NV index 0x01c00002.
  std::string NvEkCertificate(Node& node) {
    node.tpm.reset();
    const std::string out = dir_.Join("nv-ek.der");
    absl::StatusOr<std::string> read = hosn::testing::RunCommand(
        absl::StrCat("tpm2_nvread -T '", node.tcti, "' 0x1c00002 -o ", out, " 2>&1"));
    EXPECT_TRUE(read.ok()) << read.status();
    Reconnect(node);
    return ReadAll(out);
  }

  // A CA made with the OpenSSL CLI, under dir_/<name>.
  void MakeCa(const std::string& name) {
    HOSN_ASSERT_OK(
        hosn::testing::RunCommand(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt "
                                               "ec_paramgen_curve:P-256 -nodes -keyout ",
                                               dir_.Join(name + ".key"), " -out ",
                                               dir_.Join(name + ".pem"), " -subj /CN=", name,
                                               " -days 30 -addext basicConstraints=critical,"
                                               "CA:TRUE -addext keyUsage=critical,keyCertSign "
                                               "2>&1"))
            .status());
  }

  // An EK certificate (DER) by CA `ca` for `node`'s EK, valid for `days`
  // (negative: already expired), with the extension lines `extensions`.
  std::string IssueEkCertificate(Node& node, const std::string& ca, int days,
                                 const std::string& extensions = "") {
    const std::string pub = EkPublicPem(node);
    const std::string ext = pub + ".ext";
    const std::string der = pub + ".der";
    std::ofstream(ext) << kEkExtensions << extensions;
    absl::StatusOr<std::string> issued = hosn::testing::RunCommand(
        absl::StrCat("openssl x509 -new -force_pubkey ", pub, " -subj /CN=ek -CA ",
                     dir_.Join(ca + ".pem"), " -CAkey ", dir_.Join(ca + ".key"), " -days ", days,
                     " -extfile ", ext, " -outform DER -out ", der, " 2>&1"));
    EXPECT_TRUE(issued.ok()) << issued.status();
    return ReadAll(der);
  }

  // The node's EK public key as a PEM file; its path.
  std::string EkPublicPem(Node& node) {
    absl::StatusOr<tpm::Bytes> ek = node.tpm->EndorsementKeyPublic();
    EXPECT_TRUE(ek.ok());
    absl::StatusOr<TPMT_PUBLIC> area = tpm::UnmarshalPublic(*ek);
    EXPECT_TRUE(area.ok());
    absl::StatusOr<tpm::UniqueEvpPkey> key = tpm::PublicKeyFromTpm(*area);
    EXPECT_TRUE(key.ok());
    const std::string pub = dir_.Join("ek-" + std::to_string(++issued_) + ".pub.pem");
    FILE* f = std::fopen(pub.c_str(), "w");
    EXPECT_EQ(PEM_write_PUBKEY(f, key->get()), 1);
    std::fclose(f);
    return pub;
  }

  static constexpr char kEkExtensions[] =
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\n"
      "extendedKeyUsage=2.23.133.8.1\n";

  std::string BundlePath() const { return dir_.Join("ek-ca-bundle.pem"); }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  int issued_ = 0;
};

// A TPM manufactured by swtpm_setup with an EK certificate from its local CA
// enrolls from the certificate alone (the daemon takes the EK from it), then
// from certificate and EK public together, and obtains the DEK.
TEST_F(EkCertificateTest, ManufacturerCertificateEnrolls) {
  Node node = ManufacturedNode("m");
  ASSERT_NE(node.tpm, nullptr);
  const std::string certificate = NvEkCertificate(node);
  ASSERT_FALSE(certificate.empty());
  ASSERT_NE(node.tpm, nullptr);
  ek_ca_bundle_path_ = BundlePath();
  ASSERT_NO_FATAL_FAILURE(StartKeyd());

  grpc::Status status = Enroll(node, "a", kClass, certificate, /*send_ek_public=*/false);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(AuditText(), HasSubstr("swtpm-localca"));
  status = Enroll(node, "a", kClass, certificate, /*send_ek_public=*/true);
  ASSERT_TRUE(status.ok()) << status.error_message();

  ASSERT_TRUE(SetPolicyFromNode(node, kClass, {kModel}).ok());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(node, "node-a"));
  v1::ReleaseKeyResponse response;
  status = Release("node-a", attempt.request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*attempt.key, response));
  EXPECT_EQ(dek, KnownDek());
}

// Refused: a certificate from a CA outside the bundle, an expired one, one
// for another TPM's EK (alone: the TPM cannot activate; beside this TPM's EK
// public: mismatch), an unknown critical extension; the tolerated critical
// subjectDirectoryAttributes passes.
TEST_F(EkCertificateTest, RefusedCertificates) {
  Node node = ManufacturedNode("m");
  Node other = NewNode("o", agent::EkAlgorithm::kRsa2048);
  ASSERT_NE(node.tpm, nullptr);
  ASSERT_NE(other.tpm, nullptr);
  ASSERT_NO_FATAL_FAILURE(MakeCa("ekca"));
  ASSERT_NO_FATAL_FAILURE(MakeCa("rogue"));
  HOSN_ASSERT_OK(
      hosn::testing::RunCommand(absl::StrCat("cat ", dir_.Join("ekca.pem"), " >> ", BundlePath()))
          .status());
  ek_ca_bundle_path_ = BundlePath();
  ASSERT_NO_FATAL_FAILURE(StartKeyd());

  auto expect_refused = [&](const std::string& certificate, bool send_ek_public,
                            const std::string& audit_text) {
    grpc::Status status = Enroll(node, "a", kClass, certificate, send_ek_public);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << audit_text;
    EXPECT_THAT(AuditText(), HasSubstr(audit_text));
  };
  expect_refused(IssueEkCertificate(node, "rogue", 30), false,
                 "ek certificate invalid: unable to get local issuer certificate");
  expect_refused(IssueEkCertificate(node, "ekca", -1), false,
                 "ek certificate invalid: certificate has expired");
  expect_refused(IssueEkCertificate(node, "ekca", 30, "1.3.6.1.4.1.55555.1=critical,DER:0500\n"),
                 false, "unhandled critical extension 1.3.6.1.4.1.55555.1");
  const std::string foreign = IssueEkCertificate(other, "ekca", 30);
  expect_refused(foreign, true, "ek certificate mismatch");
  grpc::Status status = Enroll(node, "a", kClass, foreign, /*send_ek_public=*/false);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("activate"));
  expect_refused("not a certificate", false, "ek certificate invalid: malformed");
  EXPECT_THAT(Metrics(), HasSubstr("ek certificate invalid"));

  // A critical subjectDirectoryAttributes (TPM spec, assertions) is tolerated.
  status = Enroll(node, "a", kClass,
                  IssueEkCertificate(node, "ekca", 30, "2.5.29.9=critical,DER:3000\n"), false);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// With release.ek_crl_bundle_path (CRLs from `openssl ca -gencrl`): an
// unrevoked EK certificate enrolls; once `openssl ca -revoke` lists it and the
// CRL file is rewritten, the next enrollment is refused without a restart; a
// CRL past its nextUpdate is refused as "crl expired" and counted; a CRL file
// that no longer parses refuses every EK certificate (fail closed).
TEST_F(EkCertificateTest, CrlRevocationThroughTheDaemon) {
  Node node = NewNode("c", agent::EkAlgorithm::kRsa2048);
  ASSERT_NE(node.tpm, nullptr);
  HOSN_ASSERT_OK_AND_ASSIGN(hosn::testing::OpensslTestCa ca,
                            hosn::testing::OpensslTestCa::Create(dir_.path(), "crlca"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string first,
                            ca.Issue(EkPublicPem(node), "ek", 30, kEkExtensions));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string second,
                            ca.Issue(EkPublicPem(node), "ek", 30, kEkExtensions));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string first_der, hosn::testing::ConvertCertificate(first, "DER"));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string second_der,
                            hosn::testing::ConvertCertificate(second, "DER"));
  const std::string crl_path = dir_.Join("ek-crls.pem");
  auto write_crl = [&](int seconds) {
    absl::StatusOr<std::string> crl = ca.Crl(seconds);
    ASSERT_TRUE(crl.ok()) << crl.status();
    std::ofstream(crl_path + ".new") << *crl;
    ASSERT_EQ(std::rename((crl_path + ".new").c_str(), crl_path.c_str()), 0);
  };
  ASSERT_NO_FATAL_FAILURE(write_crl(3600));
  ek_ca_bundle_path_ = ca.certificate_path();
  ek_crl_bundle_path_ = crl_path;
  ASSERT_NO_FATAL_FAILURE(StartKeyd());

  grpc::Status status = Enroll(node, "c", kClass, ReadAll(first_der), /*send_ek_public=*/false);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // Revoked: refused at the next request, the new file picked up unasked.
  HOSN_ASSERT_OK(ca.Revoke(first));
  ASSERT_NO_FATAL_FAILURE(write_crl(3600));
  status = Enroll(node, "c", kClass, ReadAll(first_der), false);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(AuditText(), HasSubstr("ek certificate revoked: depth 0, issuer /CN=crlca"));
  status = Enroll(node, "c", kClass, ReadAll(second_der), false);
  EXPECT_TRUE(status.ok()) << status.error_message();

  // Expired CRL: fail closed, even for the unrevoked certificate.
  ASSERT_NO_FATAL_FAILURE(write_crl(1));
  absl::SleepFor(absl::Seconds(2));
  status = Enroll(node, "c", kClass, ReadAll(second_der), false);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(AuditText(), HasSubstr("crl expired: ek certificate chain depth 0"));
  EXPECT_THAT(Metrics(), HasSubstr("reason=\"crl expired\""));
  EXPECT_THAT(Metrics(), HasSubstr("reason=\"ek certificate revoked\""));

  // An unparsable CRL file: every EK certificate refused until it is fixed.
  std::ofstream(crl_path) << "-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n";
  status = Enroll(node, "c", kClass, ReadAll(second_der), false);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(AuditText(), HasSubstr("release.ek_crl_bundle_path"));
  ASSERT_NO_FATAL_FAILURE(write_crl(3600));
  status = Enroll(node, "c", kClass, ReadAll(second_der), false);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Event-content rules through the daemon: node A's swtpm is extended with the
// PCR 4 and PCR 7 events of the real cos-85 boot log, so that log replays to
// A's quote; a policy pinning only PCR 8 (outside the log) and requiring Secure Boot and
// cos-85's EFI applications releases to it, one without cos-85's kernel
// denies it, and rules without a required event log are refused.
TEST_F(ReleaseTest, EventLogRulesThroughTheDaemon) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(
      std::string log_bytes,
      ReadFile(hosn::testing::SharedDataPath("tpm/go-tpm-tools/eventlogs/cos-85-amd-sev.bin"),
               1 << 20));
  HOSN_ASSERT_OK_AND_ASSIGN(
      attest::EventLog log,
      attest::ParseEventLog(
          {reinterpret_cast<const uint8_t*>(log_bytes.data()), log_bytes.size()}));
  std::vector<std::string> applications;
  a_.tpm.reset();
  for (const attest::Event& event : log.events) {
    if ((event.pcr != 4 && event.pcr != 7) || event.type == attest::kEvNoAction) continue;
    for (const auto& [alg, digest] : event.digests) {
      if (alg != TPM2_ALG_SHA256) continue;
      HOSN_ASSERT_OK(
          hosn::testing::RunCommand(absl::StrCat("tpm2_pcrextend -T '", a_.tcti, "' ", event.pcr,
                                                 ":sha256=", HexEncode(digest), " 2>&1"))
              .status());
      if (event.type == attest::kEvEfiBootServicesApplication) {
        applications.emplace_back(digest.begin(), digest.end());
      }
    }
  }
  Reconnect(a_);
  ASSERT_EQ(applications.size(), 3u);

  auto set_policy = [&](const std::vector<std::string>& apps, bool require_log) {
    absl::StatusOr<tpm::PcrValues> pcrs = a_.tpm->ReadPcrs({{TPM2_ALG_SHA256, {8}}});
    if (!pcrs.ok()) return pcrs.status();
    v1::SetReleasePolicyRequest request;
    request.set_node_class(kClass);
    v1::PcrReferenceSet* set = request.add_reference_sets();
    set->set_name("pcr8-only");
    set->set_bank("sha256");
    const tpm::Bytes& pcr8 = (*pcrs)[TPM2_ALG_SHA256][8];
    (*set->mutable_pcrs())[8] = std::string(pcr8.begin(), pcr8.end());
    request.add_allowed_models(kModel);
    request.set_require_event_log(require_log);
    request.mutable_event_log_rules()->set_require_secure_boot(true);
    for (const std::string& app : apps) {
      request.mutable_event_log_rules()->add_allowed_efi_application_sha256(app);
    }
    auto stub = v1::AdminService::NewStub(ChannelFor("operator"));
    grpc::ClientContext context;
    v1::SetReleasePolicyResponse response;
    grpc::Status status = stub->SetReleasePolicy(&context, request, &response);
    return status.ok() ? absl::OkStatus()
                       : absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                      status.error_message());
  };
  EXPECT_EQ(set_policy(applications, /*require_log=*/false).code(),
            absl::StatusCode::kInvalidArgument);
  HOSN_ASSERT_OK(set_policy(applications, true));

  const std::vector<uint32_t> quoted = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a", kModel, quoted));
  attempt.request.set_event_log(log_bytes);
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", attempt.request, &response);
  ASSERT_TRUE(status.ok()) << AuditText();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*attempt.key, response));
  EXPECT_EQ(dek, KnownDek());

  HOSN_ASSERT_OK(set_policy({applications[0], applications[1]}, true));
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt denied, Prepare(a_, "node-a", kModel, quoted));
  denied.request.set_event_log(log_bytes);
  ExpectDenied("node-a", denied.request, "efi application not allowed: event 41",
               "efi application not allowed");
}

// A revocation takes effect on the very next request.
TEST_F(ReleaseTest, RevokedNodeDeniedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  v1::ReleaseKeyResponse response;
  ASSERT_TRUE(Release("node-a", attempt.request, &response).ok());
  ASSERT_TRUE(RevokeNode("a").ok());
  ExpectDenied("node-a", attempt.request, "node revoked", "node revoked");
}

// A model outside the class's list, a manifest signed under another CA, and
// a manifest altered after signing are denied.
TEST_F(ReleaseTest, ManifestAndModelChecks) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt other_model, Prepare(a_, "node-a", "chat-large"));
  ExpectDenied("node-a", other_model.request, "model chat-large not allowed", "model not allowed");

  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  v1::ReleaseKeyRequest other_ca = attempt.request;
  other_ca.set_manifest_signature(Sign(other_ca.manifest(), other_pki_));
  ExpectDenied("node-a", other_ca, "manifest signature invalid", "manifest signature invalid");

  v1::ReleaseKeyRequest altered = attempt.request;
  altered.set_manifest(Manifest("chat-large"));  // signature still over the original
  ExpectDenied("node-a", altered, "manifest signature invalid", "manifest signature invalid");
}

// Every byte region of the challenge token is covered: altering the version,
// identity, nonce, expiry or MAC, or the length, is denied.
TEST_F(ReleaseTest, TamperedChallengeTokenDenied) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  for (size_t offset : {0, 1, 40, 72, 100}) {
    v1::ReleaseKeyRequest tampered = attempt.request;
    std::string token = tampered.challenge();
    token[offset] ^= 0x01;
    tampered.set_challenge(token);
    SCOPED_TRACE(offset);
    ExpectDenied("node-a", tampered, "challenge invalid", "challenge invalid");
  }
  v1::ReleaseKeyRequest longer = attempt.request;
  longer.set_challenge(attempt.request.challenge() + "x");
  ExpectDenied("node-a", longer, "challenge invalid: wrong length", "challenge invalid");
  // The untouched request still works.
  v1::ReleaseKeyResponse response;
  EXPECT_TRUE(Release("node-a", attempt.request, &response).ok());
}

// T2, T4, T5, T6 and T7 through the daemon (the verifier's own tests cover each
// byte-level case; here the daemon must pass the evidence through intact).
TEST_F(ReleaseTest, QuoteCasesThroughDaemon) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  // T2: one bit of the signature, one of the attest body.
  v1::ReleaseKeyRequest bad_signature = attempt.request;
  std::string signature = bad_signature.quote_signature();
  signature[signature.size() - 5] ^= 0x01;
  bad_signature.set_quote_signature(signature);
  ExpectDenied("node-a", bad_signature, "bad signature", "bad signature");
  v1::ReleaseKeyRequest bad_body = attempt.request;
  std::string body = bad_body.quote();
  body[body.size() - 3] ^= 0x01;
  bad_body.set_quote(body);
  ExpectDenied("node-a", bad_body, "bad signature", "bad signature");
  // T4: PCR values that do not hash to the quote's pcrDigest.
  v1::ReleaseKeyRequest bad_pcr = attempt.request;
  (*bad_pcr.mutable_pcr_values(0)->mutable_digest())[0] ^= 0x01;
  ExpectDenied("node-a", bad_pcr, "digest", "pcr digest mismatch");
  // T4: only PCRs 0-6 quoted.
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt short_quote,
                            Prepare(a_, "node-a", kModel, {0, 1, 2, 3, 4, 5, 6}));
  ExpectDenied("node-a", short_quote.request, "pcr 7", "pcr not quoted");
  // T5: a selection of 0-23 verifies and releases.
  std::vector<uint32_t> all;
  for (uint32_t i = 0; i <= 23; ++i) all.push_back(i);
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt wide, Prepare(a_, "node-a", kModel, all));
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", wide.request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*wide.key, response));
  EXPECT_EQ(dek, KnownDek());
  // T6: a quote that also covers the SHA-1 bank is refused by policy.
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt sha1,
                            Prepare(a_, "node-a", kModel, {0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 2, 3}));
  ExpectDenied("node-a", sha1.request, "sha1", "sha1 bank not allowed");
  // T7: the agent refuses to send more than 32 bytes of qualifyingData.
  EXPECT_THAT(a_.tpm->Quote({{TPM2_ALG_SHA256, {0}}}, std::vector<uint8_t>(33, 1)),
              hosn::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("nonce too large for this TPM")));
}

// A policy change on the token is seen by the next release (no cache), and
// SetReleasePolicy refuses a policy without golden values.
TEST_F(ReleaseTest, PolicyChangesTakeEffectAndAreValidated) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  v1::SetReleasePolicyResponse version;
  ASSERT_TRUE(SetPolicyFromNode(a_, kClass, {"other-model"}, &version).ok());
  EXPECT_EQ(version.policy_version(), 2u);
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  ExpectDenied("node-a", attempt.request, "not allowed", "model not allowed");

  auto stub = v1::AdminService::NewStub(ChannelFor("operator"));
  v1::SetReleasePolicyRequest empty;
  empty.set_node_class(kClass);
  empty.add_allowed_models(kModel);
  v1::SetReleasePolicyResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub->SetReleasePolicy(&context, empty, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace hosn::release::testing

namespace hosn::release::testing {
namespace {

// The whole key life without a plaintext DEK in the daemon: CreateModelKey
// makes a DEK in the HSM and wraps it to the packing station's ephemeral key
// and under the KEK; the station opens its copy; a manifest carrying the
// KEK-wrapped copy is released to node A, whose copy is the same DEK.
TEST_F(ReleaseTest, StationAndNodeReceiveTheSameHsmMadeDek) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<agent::EphemeralKey> station,
                            agent::EphemeralKey::Generate());
  auto admin = v1::AdminService::NewStub(ChannelFor("operator"));
  v1::CreateModelKeyRequest create;
  create.set_model_name(kModel);
  create.set_model_version("0.2.0");
  create.set_station_public_key(station->public_key_der());
  v1::CreateModelKeyResponse created;
  {
    grpc::ClientContext context;
    grpc::Status status = admin->CreateModelKey(&context, create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(created.wrap_scheme(), "ecdh-p256-kwp");
  HOSN_ASSERT_OK_AND_ASSIGN(agent::ReleaseKdf kdf, agent::ReleaseKdfFromName(created.wrap_kdf()));
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes station_dek,
                            station->OpenWrappedDek(created.releaser_public_key(),
                                                    created.station_wrapped_dek(), kdf, ""));
  ASSERT_EQ(station_dek.size(), 32u);

  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  v1::BundleManifest manifest;
  HOSN_ASSERT_OK_AND_ASSIGN(manifest, bundle::ParseManifest(attempt.request.manifest()));
  manifest.mutable_encryption()->set_wrapped_dek(created.kek_wrapped_dek());
  manifest.mutable_encryption()->set_kek_label(created.kek_label());
  manifest.mutable_encryption()->set_kek_id(created.kek_id());
  HOSN_ASSERT_OK_AND_ASSIGN(std::string bytes, bundle::SerializeManifest(manifest));
  attempt.request.set_manifest(bytes);
  attempt.request.set_manifest_signature(Sign(bytes, manifest_pki_));
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", attempt.request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string node_dek, Open(*attempt.key, response));
  const auto station_bytes = RevealSecret(station_dek);
  EXPECT_EQ(node_dek, std::string(station_bytes.begin(), station_bytes.end()));
}

}  // namespace
}  // namespace hosn::release::testing

namespace hosn::release::testing {
namespace {

// Two replicas on one token share nothing but it: a node enrolled through
// replica 1 and a policy set through replica 2 are both seen, a challenge
// from replica 1 is honoured by replica 2, and a revocation made on replica
// 2 holds on replica 1 at once.
TEST_F(ReleaseTest, ReplicasShareOnlyTheHsm) {
  ASSERT_NO_FATAL_FAILURE(StartKeyd());
  ASSERT_NO_FATAL_FAILURE(StartSecondReplica());
  a_ = NewNode("a");
  ASSERT_NE(a_.tpm, nullptr);
  ASSERT_TRUE(Enroll(a_, "a", kClass).ok());
  UseReplica(2);
  ASSERT_TRUE(SetPolicyFromNode(a_, kClass, {kModel}).ok());

  UseReplica(1);
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  UseReplica(2);
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", attempt.request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*attempt.key, response));
  EXPECT_EQ(dek, KnownDek());

  ASSERT_TRUE(RevokeNode("a").ok());
  UseReplica(1);
  ExpectDenied("node-a", attempt.request, "node revoked", "node revoked");
}

// A revocation whose write failed midway on replica 2 (the revoked record was
// created, the old one could not be destroyed) and which the operator then
// retries with success holds on replica 1 too, although replica 1 remembered
// the handle of the old, unrevoked record.
TEST_F(ReleaseTest, RetriedRevocationHoldsOnEveryReplica) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  v1::ReleaseKeyResponse response;
  ASSERT_TRUE(Release("node-a", attempt.request, &response).ok());

  ASSERT_NO_FATAL_FAILURE(StartFaultyReplica(HOSN_FAULT_PKCS11_PATH,
                                             "fn=C_DestroyObject,count=1,rv=CKR_FUNCTION_FAILED"));
  UseReplica(2);
  EXPECT_FALSE(RevokeNode("a").ok());
  ASSERT_TRUE(RevokeNode("a").ok());

  UseReplica(1);
  ExpectDenied("node-a", attempt.request, "node revoked", "node revoked");
}

// A failure on the daemon's side (here the HSM refusing the ECDH derive of
// the re-wrap) reaches the node as a bare code: the message says neither the
// PKCS#11 call nor the key; the audit entry keeps both.
TEST_F(ReleaseTest, ServerSideFailureIsNotDescribedToTheNode) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  ASSERT_NO_FATAL_FAILURE(
      StartFaultyReplica(HOSN_FAULT_PKCS11_PATH, "fn=C_DeriveKey,count=-1,rv=CKR_FUNCTION_FAILED"));
  UseReplica(2);
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(a_, "node-a"));
  v1::ReleaseKeyResponse response;
  grpc::Status status = Release("node-a", attempt.request, &response);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error_message(), "failed; the reason is in hosn-keyd's audit log");
  EXPECT_TRUE(response.wrapped_dek().empty());
  EXPECT_THAT(AuditText(), ::testing::HasSubstr("C_DeriveKey"));
}

// Fleet state is only what a logged-in daemon wrote: a public data object
// (created without the PIN, as any process reaching the module can) with a
// node label and the daemon's application is not a node record, so node B
// stays unknown.
TEST_F(ReleaseTest, PublicDataObjectIsNotFleetState) {
  ASSERT_NO_FATAL_FAILURE(EnrollNodeA());
  Node b = NewNode("b");
  ASSERT_NE(b.tpm, nullptr);
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes b_ak, b.tpm->AttestationKeyPublic());
  v1::NodeRecord forged;
  forged.set_node_id("b");
  forged.set_node_class(kClass);
  forged.set_ak_public(std::string(b_ak.begin(), b_ak.end()));
  std::string stored(8, '\x7f');  // generation far above any real put
  stored += std::string(8, '\0') + forged.SerializeAsString();
  const std::string path = dir_.Join("forged.bin");
  std::ofstream(path, std::ios::binary) << stored;
  HOSN_ASSERT_OK(hosn::testing::RunCommand(
      absl::StrCat("pkcs11-tool --module ", hosn::testing::SoftHsmToken::kModulePath,
                   " --token-label hosn-keyd --write-object ", path,
                   " --type data --label node/b --application-label hosn-keyd 2>&1")));

  Reconnect(b);
  HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(b, "node-b"));
  ExpectDenied("node-b", attempt.request, "unknown node", "unknown node");
}

}  // namespace
}  // namespace hosn::release::testing
