// Test fixture for hosnctl against a real hosn-keyd: a SoftHSM token per
// test with a KEK and an EC P-256 signing key (provisioned with server/hsm's
// KeyStore: test setup only, hosnctl itself never links the HSM layer), the
// dev PKI of deploy/pki/dev-pki.sh with a code-signing certificate for the
// token key, a small model, and the daemon on loopback mTLS.
//
// Thread-compatible; one fixture per test.
#ifndef HOSN_TESTS_CLIENT_CTL_KEYD_FIXTURE_H_
#define HOSN_TESTS_CLIENT_CTL_KEYD_FIXTURE_H_

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/keyd_process.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::ctl::keyd_fixture {

// Runs a shell command; its exit status.
inline int Sh(const std::string& command) { return bundle::testing::Run(command); }

using bundle::testing::ReadFileOrDie;
using bundle::testing::WriteFileOrDie;
using ::hosn::testing::BinaryPath;
using ::hosn::testing::IsOk;
using ::hosn::testing::KeydProcess;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::SoftHsmToken;
namespace fs = std::filesystem;

class KeydFixture : public ::testing::Test {
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
        pki_, "/hsm-signer.pem\"\n}\n", "metrics { listen_address: \"127.0.0.1:0\" }\n",
        // The audit log is required; a test may bring its own audit block.
        extra.find("audit {") == std::string::npos
            ? absl::StrCat("audit { directory: \"", dir, "/audit\" }\n")
            : "",
        extra);
    keyd_ = std::make_unique<KeydProcess>(config, dir);
    absl::Status ready = keyd_->WaitReady(absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << keyd_->Log();
  }

  std::string Address() const { return absl::StrCat("127.0.0.1:", keyd_->grpc_port()); }

  // hosnctl bundle pack --keyd ... as `client` (a dev-pki.sh name), with
  // `flags` appended; stdout and stderr to out.txt and err.txt.
  int PackThroughKeyd(const std::string& client, const std::string& out, const std::string& address,
                      const std::string& flags = "") {
    return Sh(absl::StrCat(
        BinaryPath("client/ctl/hosnctl"), " bundle pack --model ", dir_.Join("model"), " --out ",
        out, " --name embeddings --version 0.2.0 --dek file:", dir_.Join("dek.hex"),
        " --wrapped-dek ", dir_.Join("dek.wrapped"), " --kek-label hosn-kek --keyd ", address,
        " --tls-cert ", pki_, "/", client, ".pem --tls-key file:", pki_, "/", client,
        ".key --tls-ca ", pki_, "/ca.pem --keyd-timeout 10 ", flags, " >", dir_.Join("out.txt"),
        " 2>", dir_.Join("err.txt")));
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

}  // namespace hosn::ctl::keyd_fixture

#endif  // HOSN_TESTS_CLIENT_CTL_KEYD_FIXTURE_H_
