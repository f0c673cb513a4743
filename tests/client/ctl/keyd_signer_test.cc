// KeydManifestSigner against a real hosn-keyd process (fixture:
// keyd_fixture.h): the CMS it helps build verifies, and its errors name the
// daemon, carry the gRPC code and never the key.
#include "client/ctl/keyd_signer.h"

#include <signal.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/bundle/signature.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/ctl/keyd_fixture.h"

namespace hosn::ctl {
namespace {

using keyd_fixture::IsOk;
using keyd_fixture::KeydFixture;
using keyd_fixture::ReadFileOrDie;
using ::testing::HasSubstr;
using ::testing::Not;

class KeydManifestSignerTest : public KeydFixture {
 protected:
  KeydSignerOptions Options(const std::string& client) const {
    KeydSignerOptions options;
    options.address = Address();
    options.tls_cert_path = pki_ + "/" + client + ".pem";
    options.tls_key_reference = "file:" + pki_ + "/" + client + ".key";
    options.tls_ca_path = pki_ + "/ca.pem";
    options.deadline = absl::Seconds(10);
    return options;
  }
};

// The chain comes from GetSigningCertificates; a CMS built by common/bundle
// and signed through the daemon verifies against the dev CA, and not for
// other manifest bytes.
TEST_F(KeydManifestSignerTest, SignsCmsThatVerifies) {
  auto signer = KeydManifestSigner::Create(Options("signer"));
  ASSERT_THAT(signer, IsOk());
  EXPECT_EQ((*signer)->algorithm(), bundle::SignatureAlgorithm::kEcdsaSha256);
  EXPECT_EQ((*signer)->CertificateChainPem(), ReadFileOrDie(pki_ + "/hsm-signer.pem"));
  const std::string manifest = "{\"format_version\": 1}\n";
  auto cms = bundle::SignManifest(manifest, **signer);
  ASSERT_THAT(cms, IsOk());
  bundle::TrustOptions trust{ReadFileOrDie(pki_ + "/ca.pem"), std::nullopt};
  EXPECT_THAT(bundle::VerifyManifestSignature(manifest, *cms, trust), IsOk());
  EXPECT_FALSE(bundle::VerifyManifestSignature(manifest + " ", *cms, trust).ok());
}

// Attributes for other bytes than the manifest sent are refused by the
// daemon; the error is a keyd error naming the address, the RPC and the
// gRPC code.
TEST_F(KeydManifestSignerTest, DaemonRefusesAttributesForAnotherManifest) {
  auto signer = KeydManifestSigner::Create(Options("signer"));
  ASSERT_THAT(signer, IsOk());
  // Attributes that SignManifest built over manifest B, sent with manifest A.
  class Capture : public bundle::ManifestSigner {
   public:
    explicit Capture(std::string chain) : chain_(std::move(chain)) {}
    bundle::SignatureAlgorithm algorithm() const override {
      return bundle::SignatureAlgorithm::kEcdsaSha256;
    }
    std::string CertificateChainPem() const override { return chain_; }
    absl::StatusOr<std::string> SignRaw(std::string_view, std::string_view attrs) override {
      attributes = std::string(attrs);
      return absl::InternalError("captured");
    }
    std::string attributes;

   private:
    std::string chain_;
  } capture((*signer)->CertificateChainPem());
  ASSERT_FALSE(bundle::SignManifest("manifest B", capture).ok());
  ASSERT_FALSE(capture.attributes.empty());
  auto cms = (*signer)->SignRaw("manifest A", capture.attributes);
  EXPECT_EQ(cms.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsKeydError(cms.status()));
  EXPECT_THAT(cms.status().message(), HasSubstr(absl::StrCat("hosn-keyd at ", Address(),
                                                             ": SignManifest: INVALID_ARGUMENT")));
}

// A caller with role node is refused at GetSigningCertificates with
// PermissionDenied.
TEST_F(KeydManifestSignerTest, NodeRoleIsPermissionDenied) {
  auto signer = KeydManifestSigner::Create(Options("node-a"));
  EXPECT_EQ(signer.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(IsKeydError(signer.status()));
  EXPECT_THAT(signer.status().message(), HasSubstr("GetSigningCertificates: PERMISSION_DENIED"));
}

// A TLS key given inline instead of as a secret reference is refused before
// connecting, and the error does not echo it.
TEST_F(KeydManifestSignerTest, InlineKeyIsRefused) {
  KeydSignerOptions options = Options("signer");
  options.tls_key_reference = ReadFileOrDie(pki_ + "/signer.key");
  auto signer = KeydManifestSigner::Create(options);
  EXPECT_EQ(signer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsKeydError(signer.status()));
  EXPECT_THAT(signer.status().message(), Not(HasSubstr("PRIVATE KEY")));
}

// With the daemon gone, Create fails within the deadline with a keyd error
// (UNAVAILABLE or DEADLINE_EXCEEDED), not a hang.
TEST_F(KeydManifestSignerTest, DeadlineBoundsAnUnreachableDaemon) {
  KeydSignerOptions options = Options("signer");
  options.deadline = absl::Seconds(2);
  ASSERT_THAT(keyd_->Stop(SIGTERM, absl::Seconds(30)), IsOk());
  const absl::Time start = absl::Now();
  auto signer = KeydManifestSigner::Create(options);
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  EXPECT_TRUE(IsKeydError(signer.status()));
  EXPECT_TRUE(signer.status().code() == absl::StatusCode::kUnavailable ||
              signer.status().code() == absl::StatusCode::kDeadlineExceeded)
      << signer.status();
}

}  // namespace
}  // namespace hosn::ctl
