// The fixture of the attested-release tests: a real hosn-keyd process over
// loopback mTLS, a SoftHSM token provisioned as deploy/dev-token.sh does
// (KEK, signer, release key, challenge MAC key) plus the fixed test KEK of
// tests/common/bundle, a manifest PKI, and one real swtpm per node.
//
// Helpers run the node's side with the agent's own code (TpmDevice,
// EphemeralKey) and the operator's side with plain gRPC stubs. Test-only;
// one fixture per test, not thread-safe.
#ifndef HOSN_TESTS_SERVER_RELEASE_RELEASE_FIXTURE_H_
#define HOSN_TESTS_SERVER_RELEASE_RELEASE_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/agent/release/dek_opener.h"
#include "client/agent/tpm/tpm_device.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"
#include "hosn/keyd/v1/key_release.grpc.pb.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/server/api/test_pki.h"
#include "tests/testing/keyd_process.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/swtpm_process.h"
#include "tests/testing/test_paths.h"

namespace hosn::release::testing {

namespace v1 = ::hosn::keyd::v1;

// A node: its swtpm and the agent's TpmDevice on it.
struct Node {
  std::unique_ptr<hosn::testing::SwtpmProcess> swtpm;
  std::unique_ptr<agent::TpmDevice> tpm;
  std::string tcti;
  agent::EkAlgorithm ek_algorithm = agent::EkAlgorithm::kEccP256;
};

// One release attempt as a node builds it.
struct Attempt {
  v1::GetChallengeResponse challenge;
  std::unique_ptr<agent::EphemeralKey> key;
  v1::ReleaseKeyRequest request;
};

class ReleaseFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts hosn-keyd; `challenge_ttl` seconds per challenge.
  void StartKeyd(int challenge_ttl_seconds = 5);
  // A second hosn-keyd on the same token (own folder, own audit chain), and
  // which replica the helpers below talk to (1 or 2; StartKeyd selects 1).
  void StartSecondReplica(int challenge_ttl_seconds = 5);
  // The second replica on `module_path` (the fault-injecting module of
  // tests/server/hsm) with $HOSN_FAULT_PKCS11_SPEC = `fault_spec` in its
  // environment, so that only that replica's PKCS#11 calls fail.
  void StartFaultyReplica(const std::string& module_path, const std::string& fault_spec);
  void UseReplica(int replica);
  // A new swtpm-backed node whose EK follows `ek_algorithm`'s template.
  Node NewNode(const std::string& name,
               agent::EkAlgorithm ek_algorithm = agent::EkAlgorithm::kEccP256);
  // Closes and reopens the node's TPM connection (so that tpm2-tools can use
  // the swtpm meanwhile); the keys are the same primaries.
  void Reconnect(Node& node);
  // tpm2_pcrextend of `pcr` in the sha256 bank with a fixed digest.
  void ExtendPcr(Node& node, int pcr);

  // TPM2B_PUBLIC of a marshalled TPMT_PUBLIC.
  static std::string To2b(const std::vector<uint8_t>& tpmt);

  // Enrollment: BeginEnrollment -> ActivateCredential -> EnrollNode, with
  // `ek_certificate` (DER) if not empty and the TPM's EK public unless
  // `send_ek_public` is false.
  grpc::Status Enroll(Node& node, const std::string& node_id, const std::string& node_class,
                      const std::string& ek_certificate = "", bool send_ek_public = true);
  // Policy for `node_class`: the node's current sha256 PCRs 0-7 as golden.
  grpc::Status SetPolicyFromNode(Node& node, const std::string& node_class,
                                 const std::vector<std::string>& models,
                                 v1::SetReleasePolicyResponse* response = nullptr);
  grpc::Status RevokeNode(const std::string& node_id);

  // A canonical manifest of `model` whose wrapped DEK is the test DEK under
  // the imported test KEK, and its CMS signature by `pki`'s signer.
  std::string Manifest(const std::string& model);
  std::string Sign(const std::string& manifest, const bundle::testing::TestPki& pki);

  grpc::Status GetChallenge(const std::string& client, v1::GetChallengeResponse* response);
  // Challenge (as `client`), fresh ephemeral key, quote over sha256 PCRs
  // `pcrs` (plus sha1 PCRs `sha1_pcrs` if any) with the bound
  // qualifyingData, manifest of `model` signed by the manifest PKI.
  absl::StatusOr<Attempt> Prepare(Node& node, const std::string& client,
                                  const std::string& model = "embeddings-en",
                                  const std::vector<uint32_t>& pcrs = {0, 1, 2, 3, 4, 5, 6, 7},
                                  const std::vector<uint32_t>& sha1_pcrs = {});
  grpc::Status Release(const std::string& client, const v1::ReleaseKeyRequest& request,
                       v1::ReleaseKeyResponse* response);

  // The DEK `response` opens to with `key`, or the opener's error.
  absl::StatusOr<std::string> Open(const agent::EphemeralKey& key,
                                   const v1::ReleaseKeyResponse& response);

  std::unique_ptr<hosn::testing::KeydProcess> Launch(
      int challenge_ttl_seconds, const std::string& folder, const std::string& audit_dir,
      const std::string& module_path = hosn::testing::SoftHsmToken::kModulePath);

  // The audit logs' text (both replicas), and the active replica's scrape.
  std::string AuditText() const;
  std::string Metrics() const;

  // The daemon's audit directory: below the test's folder unless a test
  // sets audit_dir_ (the benchmark compares a tmpfs log).
  std::string AuditDir() const { return audit_dir_.empty() ? dir_.Join("audit") : audit_dir_; }

  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& client) const {
    return pki_.Channel(active_->grpc_port(), client);
  }

  hosn::testing::ScopedTempDir dir_;
  hosn::testing::DevPki pki_;
  std::unique_ptr<hosn::testing::SoftHsmToken> token_;
  bundle::testing::TestPki manifest_pki_;
  bundle::testing::TestPki other_pki_;
  std::unique_ptr<hosn::testing::KeydProcess> keyd_;
  std::unique_ptr<hosn::testing::KeydProcess> keyd2_;
  hosn::testing::KeydProcess* active_ = nullptr;
  std::string audit_dir_;
  // release.ek_ca_bundle_path of daemons started from now on, if not empty.
  std::string ek_ca_bundle_path_;
  // release.ek_crl_bundle_path of daemons started from now on, if not empty.
  std::string ek_crl_bundle_path_;
};

// The fixed test DEK as bytes.
std::string KnownDek();

}  // namespace hosn::release::testing

#endif  // HOSN_TESTS_SERVER_RELEASE_RELEASE_FIXTURE_H_
