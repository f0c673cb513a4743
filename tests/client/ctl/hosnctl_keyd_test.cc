// hosnctl bundle pack signing through a real hosn-keyd process: a SoftHSM
// token per test, the dev PKI of deploy/pki/dev-pki.sh, loopback mTLS. The
// token is provisioned with server/hsm's KeyStore (test setup only; hosnctl
// itself never links the HSM layer).
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/keyd_process.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::ctl {
namespace {

namespace fs = std::filesystem;

// Runs a shell command; its exit status.
int Sh(const std::string& command) { return bundle::testing::Run(command); }
using bundle::testing::ReadFileOrDie;
using bundle::testing::WriteFileOrDie;
using ::hosn::testing::BinaryPath;
using ::hosn::testing::IsOk;
using ::hosn::testing::KeydProcess;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::SoftHsmToken;
using ::testing::HasSubstr;

class HosnctlKeydTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosnctl-keyd"));
    pki_ = dir_.Join("pki");
    ASSERT_EQ(Sh(absl::StrCat("bash ", hosn::testing::SourcePath("deploy/pki/dev-pki.sh"), " ",
                              pki_, " >/dev/null 2>&1")),
              0);
    // A KEK and an EC P-256 signing key on the token; a dev-CA code-signing
    // certificate for the signing key's public half.
    hsm::KeyStoreOptions options;
    options.uri = token_->uri();
    options.module_path = SoftHsmToken::kModulePath;
    options.pin_reference = token_->pin_reference();
    options.pool_size = 1;
    {
      HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<hsm::KeyStore> store,
                                hsm::KeyStore::Create(options));
      ASSERT_THAT(store->GenerateKek("hosn-kek", "k1").status(), IsOk());
      HOSN_ASSERT_OK_AND_ASSIGN(hsm::SigningKey key,
                                store->GenerateSigningKey("ec-p256", "hosn-signer", "s1"));
      WriteFileOrDie(dir_.Join("signer.der"), key.public_key_der);
    }
    ASSERT_EQ(Sh(absl::StrCat("openssl pkey -pubin -inform DER -in ", dir_.Join("signer.der"),
                              " -out ", dir_.Join("signer.pub.pem"))),
              0);
    ASSERT_EQ(
        Sh(absl::StrCat("bash ", hosn::testing::SourcePath("deploy/pki/dev-pki.sh"), " ", pki_,
                        " --hsm-signer ", dir_.Join("signer.pub.pem"), " >/dev/null 2>&1")),
        0);

    // The model, the DEK (64 hex digits, 0600) and a wrapped blob.
    ASSERT_EQ(Sh("mkdir -p " + dir_.Join("model/sub")), 0);
    WriteFileOrDie(dir_.Join("model/config.json"), "{\"hidden\": 64}");
    WriteFileOrDie(dir_.Join("model/sub/weights.bin"), bundle::testing::PatternBytes(300000, 7));
    WriteFileOrDie(dir_.Join("dek.hex"), std::string(64, 'a') + "\n");
    ::chmod(dir_.Join("dek.hex").c_str(), 0600);
    WriteFileOrDie(dir_.Join("dek.wrapped"), bundle::testing::TestWrappedDek());

    ASSERT_NO_FATAL_FAILURE(StartKeyd(dir_.path(), ""));
  }

  // Writes a config (plus `extra` text-format fields) into `dir` and starts
  // hosn-keyd there as keyd_.
  void StartKeyd(const std::string& dir, const std::string& extra) {
    const std::string config = dir + "/keyd.textproto";
    std::ofstream(config) << absl::StrCat(
        "listen_address: \"127.0.0.1:0\"\n"
        "tls {\n  server_certificate_path: \"",
        pki_, "/server.pem\"\n  server_private_key_path: \"", pki_,
        "/server.key\"\n  client_ca_bundle_path: \"", pki_,
        "/ca.pem\"\n}\n"
        "hsm {\n  module_path: \"",
        SoftHsmToken::kModulePath, "\"\n  token_uri: \"pkcs11:token=hosnctl-keyd\"\n",
        "  pin_reference: \"", token_->pin_reference(),
        "\"\n  pool_size: 2\n  kek_label: \"hosn-kek\"\n  signing_key_label: \"hosn-signer\"\n"
        "  signing_certificate_chain_path: \"",
        pki_, "/hsm-signer.pem\"\n}\n", "metrics { listen_address: \"127.0.0.1:0\" }\n", extra);
    keyd_ = std::make_unique<KeydProcess>(config, dir);
    absl::Status ready = keyd_->WaitReady(absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << keyd_->Log();
  }

  std::string Address() const { return absl::StrCat("127.0.0.1:", keyd_->grpc_port()); }

  // hosnctl bundle pack --keyd ... as `client` (a dev-pki.sh name); stdout
  // and stderr to out.txt and err.txt.
  int PackThroughKeyd(const std::string& client, const std::string& out,
                      const std::string& address) {
    return Sh(absl::StrCat(
        BinaryPath("client/ctl/hosnctl"), " bundle pack --model ", dir_.Join("model"), " --out ",
        out, " --name embeddings --version 0.2.0 --dek file:", dir_.Join("dek.hex"),
        " --wrapped-dek ", dir_.Join("dek.wrapped"), " --kek-label hosn-kek --keyd ", address,
        " --tls-cert ", pki_, "/", client, ".pem --tls-key file:", pki_, "/", client,
        ".key --tls-ca ", pki_, "/ca.pem --keyd-timeout 10 >", dir_.Join("out.txt"), " 2>",
        dir_.Join("err.txt")));
  }

  std::string Err() { return ReadFileOrDie(dir_.Join("err.txt")); }

  // True if nothing named `out` or `out`.partial-* exists.
  bool NothingLeftBehind(const std::string& out) {
    if (fs::exists(out)) return false;
    for (const auto& entry : fs::directory_iterator(fs::path(out).parent_path())) {
      if (entry.path().string().rfind(out + ".partial-", 0) == 0) return false;
    }
    return true;
  }

  ScopedTempDir dir_;
  std::string pki_;
  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<KeydProcess> keyd_;
};

// hosnctl packs and signs through the daemon's HSM key; the bundle verifies
// with our verifier (library and hosnctl verify) and with openssl cms -verify,
// and no staging directory remains.
TEST_F(HosnctlKeydTest, PacksAndSignsThroughDaemon) {
  const std::string out = dir_.Join("bundle");
  ASSERT_EQ(PackThroughKeyd("signer", out, Address()), 0) << Err() << keyd_->Log();
  EXPECT_THAT(ReadFileOrDie(dir_.Join("out.txt")), HasSubstr("packed 2 files"));

  bundle::TrustOptions trust{ReadFileOrDie(pki_ + "/ca.pem"), std::nullopt};
  auto verified = bundle::VerifyBundle(out, trust);
  ASSERT_THAT(verified, IsOk());
  EXPECT_EQ(verified->verified.manifest.model().name(), "embeddings");
  EXPECT_THAT(verified->verified.signer_subject, HasSubstr("hosn manifest signer"));

  EXPECT_EQ(Sh(absl::StrCat(BinaryPath("client/ctl/hosnctl"), " bundle verify --bundle ", out,
                            " --ca ", pki_, "/ca.pem >/dev/null 2>&1")),
            0);
  EXPECT_EQ(Sh(absl::StrCat("openssl cms -verify -binary -inform DER -in ", out,
                            "/manifest.json.p7s -content ", out, "/manifest.json -CAfile ", pki_,
                            "/ca.pem -purpose any -out /dev/null 2>/dev/null")),
            0);
  // The embedded signer certificate is the daemon's HSM key certificate.
  EXPECT_EQ(Sh(absl::StrCat("openssl pkcs7 -print_certs -inform DER -in ", out,
                            "/manifest.json.p7s 2>/dev/null | openssl x509 -noout -pubkey",
                            " | cmp -s - ", dir_.Join("signer.pub.pem"))),
            0);
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().string().find(".partial-"), std::string::npos) << entry.path();
  }
}

// A client certificate with role node (hosn://node/a) is refused by the
// daemon: exit 5, the error names the daemon and PERMISSION_DENIED, and no
// bundle is written.
TEST_F(HosnctlKeydTest, NodeRoleIsRefusedWithExitFive) {
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackThroughKeyd("node-a", out, Address()), 5);
  EXPECT_THAT(Err(), HasSubstr("hosn-keyd at " + Address()));
  EXPECT_THAT(Err(), HasSubstr("PERMISSION_DENIED"));
  EXPECT_TRUE(NothingLeftBehind(out));
}

// With the daemon stopped, pack fails fast with exit 6, an error naming the
// address and UNAVAILABLE, and nothing under the bundle's name.
TEST_F(HosnctlKeydTest, DaemonDownExitsSixAndLeavesNoBundle) {
  const std::string address = Address();
  auto stopped = keyd_->Stop(SIGTERM, absl::Seconds(30));
  ASSERT_THAT(stopped, IsOk());
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackThroughKeyd("signer", out, address), 6);
  EXPECT_THAT(Err(), HasSubstr("hosn-keyd at " + address));
  EXPECT_THAT(Err(), HasSubstr("UNAVAILABLE"));
  EXPECT_TRUE(NothingLeftBehind(out));
}

// The TLS client key must be a secret reference to a file others cannot
// read: a world-readable key file is refused before connecting (exit 1),
// and the key's bytes never appear in the error.
TEST_F(HosnctlKeydTest, WorldReadableClientKeyIsRefused) {
  ASSERT_EQ(::chmod((pki_ + "/signer.key").c_str(), 0644), 0);
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackThroughKeyd("signer", out, Address()), 1);
  EXPECT_THAT(Err(), HasSubstr("signer.key"));
  EXPECT_THAT(Err(), ::testing::Not(HasSubstr("PRIVATE KEY")));
  EXPECT_TRUE(NothingLeftBehind(out));
}

// A failure after the model is encrypted (here the daemon's request size
// limit refuses the large manifest at SignManifest) exits 6, names the RPC,
// and leaves neither the bundle nor its staging directory behind.
TEST_F(HosnctlKeydTest, SigningFailureAfterPackingLeavesNoBundle) {
  ASSERT_THAT(keyd_->Stop(SIGTERM, absl::Seconds(30)), IsOk());
  ASSERT_EQ(Sh("mkdir -p " + dir_.Join("small")), 0);
  ASSERT_NO_FATAL_FAILURE(StartKeyd(dir_.Join("small"), "limits { max_request_bytes: 4096 }\n"));
  for (int i = 0; i < 80; ++i) {
    WriteFileOrDie(dir_.Join(absl::StrCat("model/sub/shard-", i, ".bin")), "x");
  }
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackThroughKeyd("signer", out, Address()), 6);
  EXPECT_THAT(Err(), HasSubstr("hosn-keyd at " + Address() + ": SignManifest: "));
  EXPECT_TRUE(NothingLeftBehind(out));
}

}  // namespace
}  // namespace hosn::ctl
