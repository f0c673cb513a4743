// hosnctl bundle pack signing through a real hosn-keyd process: a SoftHSM
// token per test, the dev PKI of deploy/pki/dev-pki.sh, loopback mTLS
// (fixture: keyd_fixture.h).
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/ctl/keyd_fixture.h"

namespace hosn::ctl {
namespace {

using keyd_fixture::BinaryPath;
using keyd_fixture::IsOk;
using keyd_fixture::KeydFixture;
using keyd_fixture::ReadFileOrDie;
using keyd_fixture::Sh;
using keyd_fixture::WriteFileOrDie;
using std::filesystem::directory_iterator;
using ::testing::HasSubstr;

using HosnctlKeydTest = KeydFixture;

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
  for (const auto& entry : directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().string().find(".partial-"), std::string::npos) << entry.path();
  }
}

// --signer-label names the daemon's signing key: a configured label signs, one the daemon does
// not have is refused (exit 6, INVALID_ARGUMENT naming the label) and no bundle is written.
TEST_F(HosnctlKeydTest, SignerLabelNamesTheKey) {
  ASSERT_EQ(PackThroughKeyd("signer", dir_.Join("named"), Address(), "--signer-label hosn-signer"),
            0)
      << Err();
  EXPECT_EQ(
      Sh(absl::StrCat("openssl cms -verify -binary -inform DER -in ", dir_.Join("named"),
                      "/manifest.json.p7s -content ", dir_.Join("named"), "/manifest.json -CAfile ",
                      pki_, "/ca.pem -purpose any -out /dev/null", " 2>/dev/null")),
      0);
  const std::string out = dir_.Join("unknown");
  EXPECT_EQ(PackThroughKeyd("signer", out, Address(), "--signer-label hosn-signer-9"), 6);
  EXPECT_THAT(Err(), HasSubstr("INVALID_ARGUMENT: key_label: signing key hosn-signer-9 is not "
                               "configured"));
  EXPECT_TRUE(NothingLeftBehind(out));
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
