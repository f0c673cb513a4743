// hosnctl bundle pack with a new model key (docs/bundle-format.md, "A new
// model key"): a real hosn-keyd whose HSM makes the DEK and wraps it to
// hosnctl's ephemeral key and under the KEK. The bundle is then decrypted
// with the DEK the HSM unwraps from the manifest, so a pack that used another
// DEK than the one the manifest names fails here. Fixture: keyd_fixture.h.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/agent/release/dek_opener.h"
#include "common/base/status_macros.h"
#include "common/bundle/bundle.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"
#include "tests/client/ctl/keyd_fixture.h"

namespace hosn::ctl {
namespace {

using keyd_fixture::BinaryPath;
using keyd_fixture::IsOk;
using keyd_fixture::KeydFixture;
using keyd_fixture::KeydProcess;
using keyd_fixture::ReadFileOrDie;
using keyd_fixture::Sh;
using keyd_fixture::SoftHsmToken;
using keyd_fixture::WriteFileOrDie;
using ::testing::HasSubstr;
using ::testing::Not;

class HosnctlModelKeyTest : public KeydFixture {
 protected:
  // A KeyStore on the fixture's token (test side only; hosnctl never opens it).
  std::unique_ptr<hsm::KeyStore> Store() {
    hsm::KeyStoreOptions options;
    options.uri = token_->uri();
    options.module_path = SoftHsmToken::kModulePath;
    options.pin_reference = token_->pin_reference();
    options.pool_size = 1;
    auto store = hsm::KeyStore::Create(options);
    EXPECT_THAT(store.status(), IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Restarts hosn-keyd with a release section (release key and challenge MAC
  // key on the token), which CreateModelKey needs to wrap to a station: the
  // fixture's config with the MAC key label in its hsm block and a release
  // block added.
  void StartKeydWithRelease() {
    ASSERT_THAT(keyd_->Stop(SIGTERM, absl::Seconds(30)), IsOk());
    {
      std::unique_ptr<hsm::KeyStore> store = Store();
      ASSERT_NE(store, nullptr);
      ASSERT_THAT(store->GenerateReleaseKey("hosn-release", "r1").status(), IsOk());
      ASSERT_THAT(store->GenerateMacKey("hosn-challenge-mac", "m1").status(), IsOk());
    }
    std::string config = ReadFileOrDie(dir_.Join("keyd.textproto"));
    const std::string kek = "kek_label: \"hosn-kek\"\n";
    const size_t at = config.find(kek);
    ASSERT_NE(at, std::string::npos) << config;
    config.insert(at + kek.size(), "  challenge_mac_key_label: \"hosn-challenge-mac\"\n");
    absl::StrAppend(&config, "release {\n  release_key_label: \"hosn-release\"\n  kdf: \"null\"\n",
                    "  manifest_ca_bundle_path: \"", pki_, "/ca.pem\"\n}\n");
    const std::string dir = dir_.Join("release");
    ASSERT_EQ(Sh("mkdir -p " + dir), 0);
    WriteFileOrDie(dir + "/keyd.textproto", config);
    keyd_ = std::make_unique<KeydProcess>(dir + "/keyd.textproto", dir);
    absl::Status ready = keyd_->WaitReady(absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << keyd_->Log();
  }

  // hosnctl bundle pack of the fixture's model through hosn-keyd as `client`,
  // with no DEK flags unless `flags` has them.
  int PackNewKey(const std::string& client, const std::string& out, const std::string& flags) {
    return Sh(absl::StrCat(BinaryPath("client/ctl/hosnctl"), " bundle pack --model ",
                           dir_.Join("model"), " --out ", out,
                           " --name embeddings --version 0.2.0 --keyd ", Address(), " --tls-cert ",
                           pki_, "/", client, ".pem --tls-key file:", pki_, "/", client,
                           ".key --tls-ca ", pki_, "/ca.pem --keyd-timeout 10 ", flags, " >",
                           dir_.Join("out.txt"), " 2>", dir_.Join("err.txt")));
  }

  // The DEK of `manifest`, unwrapped from its wrapped_dek under its KEK inside
  // the HSM and wrapped to a key of this test (as a release would).
  absl::StatusOr<SecretBytes> DekFromHsm(const bundle::BundleManifest& manifest) {
    std::unique_ptr<hsm::KeyStore> store = Store();
    if (store == nullptr) return absl::InternalError("no key store");
    HOSN_ASSIGN_OR_RETURN(std::unique_ptr<agent::EphemeralKey> key,
                          agent::EphemeralKey::Generate());
    const hsm::KeyRef release = hsm::KeyRef::ReleaseKey("hosn-release");
    hsm::WrappedKey wrapped{"aes-kwp", hsm::KeyType::kAes, manifest.encryption().wrapped_dek()};
    std::string to_us;
    HOSN_RETURN_IF_ERROR(store->WithUnwrappedDek(
        hsm::KeyRef::Kek(manifest.encryption().kek_label()), wrapped,
        [&](const hsm::UnwrappedDek& dek) -> absl::Status {
          HOSN_ASSIGN_OR_RETURN(to_us, dek.WrapToPeer(release, key->public_key_der(), "null", ""));
          return absl::OkStatus();
        }));
    HOSN_ASSIGN_OR_RETURN(std::string release_public, store->ExportPublicKey(release));
    return key->OpenWrappedDek(release_public, to_us, agent::ReleaseKdf::kNull, "");
  }
};

// The operator packs with a new HSM-made model key: the manifest names the
// daemon's KEK and id and a 40-byte RFC 5649 blob; the DEK the HSM unwraps
// from it decrypts every file byte for byte; a second pack gets another DEK.
TEST_F(HosnctlModelKeyTest, PacksWithNewModelKeyThatTheHsmUnwraps) {
  ASSERT_NO_FATAL_FAILURE(StartKeydWithRelease());
  const std::string out = dir_.Join("bundle");
  ASSERT_EQ(PackNewKey("operator", out, "--new-model-key"), 0) << Err() << keyd_->Log();
  EXPECT_THAT(ReadFileOrDie(dir_.Join("out.txt")),
              HasSubstr("new model key from hosn-keyd, wrapped under kek hosn-kek (id 6b31)"));

  bundle::TrustOptions trust{ReadFileOrDie(pki_ + "/ca.pem"), std::nullopt};
  auto verified = bundle::VerifyBundle(out, trust);
  ASSERT_THAT(verified, IsOk());
  const bundle::BundleManifest& manifest = verified->verified.manifest;
  EXPECT_EQ(manifest.encryption().kek_label(), "hosn-kek");
  EXPECT_EQ(manifest.encryption().kek_id(), "6b31");  // "k1", the fixture's CKA_ID
  EXPECT_EQ(manifest.encryption().wrapped_dek().size(), 40u);

  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes dek, DekFromHsm(manifest));
  ASSERT_EQ(dek.size(), 32u);
  EXPECT_FALSE(dek == SecretBytes::CopyOf(std::string(32, '\xaa')));  // not the fixture's file
  const std::string target = absl::StrCat("/dev/shm/hosnctl-model-key-", ::getpid());
  ASSERT_THAT(bundle::DecryptBundle(*verified, dek, target, bundle::DecryptOptions()), IsOk());
  EXPECT_EQ(ReadFileOrDie(target + "/config.json"), ReadFileOrDie(dir_.Join("model/config.json")));
  EXPECT_EQ(ReadFileOrDie(target + "/sub/weights.bin"),
            ReadFileOrDie(dir_.Join("model/sub/weights.bin")));
  Sh("rm -rf " + target);

  // Without --new-model-key (no --dek given) the same flow is the default.
  const std::string second = dir_.Join("second");
  ASSERT_EQ(PackNewKey("operator", second, "--kek-label hosn-kek"), 0) << Err();
  HOSN_ASSERT_OK_AND_ASSIGN(bundle::BundleManifest other, bundle::ReadUnverifiedManifest(second));
  EXPECT_NE(other.encryption().wrapped_dek(), manifest.encryption().wrapped_dek());
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes other_dek, DekFromHsm(other));
  EXPECT_FALSE(other_dek == dek);
}

// CreateModelKey is an operator call: a signer certificate may sign but not
// make model keys (exit 5 at CreateModelKey), a node certificate is refused
// by hosnctl (exit 5) and by the RPC itself (PERMISSION_DENIED, no DEK in the
// reply); nothing is left under the bundle's name.
TEST_F(HosnctlModelKeyTest, OnlyTheOperatorCreatesModelKeys) {
  ASSERT_NO_FATAL_FAILURE(StartKeydWithRelease());
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackNewKey("signer", out, "--new-model-key"), 5);
  EXPECT_THAT(Err(),
              HasSubstr("hosn-keyd at " + Address() + ": CreateModelKey: PERMISSION_DENIED"));
  EXPECT_TRUE(NothingLeftBehind(out));
  EXPECT_EQ(PackNewKey("node-a", out, "--new-model-key"), 5);
  EXPECT_THAT(Err(), HasSubstr("PERMISSION_DENIED"));
  EXPECT_TRUE(NothingLeftBehind(out));

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFileOrDie(pki_ + "/ca.pem");
  tls.pem_cert_chain = ReadFileOrDie(pki_ + "/node-a.pem");
  tls.pem_private_key = ReadFileOrDie(pki_ + "/node-a.key");
  auto stub =
      keyd::v1::AdminService::NewStub(grpc::CreateChannel(Address(), grpc::SslCredentials(tls)));
  HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<agent::EphemeralKey> key,
                            agent::EphemeralKey::Generate());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  keyd::v1::CreateModelKeyRequest request;
  request.set_model_name("embeddings");
  request.set_station_public_key(key->public_key_der());
  keyd::v1::CreateModelKeyResponse response;
  EXPECT_EQ(stub->CreateModelKey(&context, request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(response.station_wrapped_dek().empty());
  EXPECT_TRUE(response.kek_wrapped_dek().empty());
}

// A daemon without a release section cannot wrap to a station: hosnctl exits
// 6 with the daemon's FAILED_PRECONDITION naming the missing setting, before
// any file is encrypted.
TEST_F(HosnctlModelKeyTest, DaemonWithoutReleaseSectionExitsSix) {
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackNewKey("operator", out, "--new-model-key"), 6);
  EXPECT_THAT(Err(), HasSubstr("hosn-keyd at " + Address() +
                               ": CreateModelKey: FAILED_PRECONDITION: station_public_key: no "
                               "release key configured (release.release_key_label)"));
  EXPECT_TRUE(NothingLeftBehind(out));
}

// A new model key excludes the flags of an existing one (exit 2), and needs
// --keyd; the offline path still needs --dek and --wrapped-dek together.
TEST_F(HosnctlModelKeyTest, NewModelKeyFlagsAreChecked) {
  const std::string out = dir_.Join("bundle");
  EXPECT_EQ(PackNewKey("operator", out, "--new-model-key --dek file:" + dir_.Join("dek.hex")), 2);
  EXPECT_THAT(Err(), HasSubstr("a new model key excludes --dek"));
  EXPECT_EQ(PackNewKey("operator", out, "--new-model-key --kek-id 01"), 2);
  EXPECT_THAT(Err(), HasSubstr("excludes --kek-id"));
  EXPECT_EQ(PackNewKey("operator", out, "--wrapped-dek " + dir_.Join("dek.wrapped")), 2);
  EXPECT_THAT(Err(), HasSubstr("--dek is required"));
  EXPECT_EQ(
      Sh(absl::StrCat(
          BinaryPath("client/ctl/hosnctl"), " bundle pack --model ", dir_.Join("model"), " --out ",
          out, " --name embeddings --version 0.2.0 --new-model-key --signer-cert ", pki_,
          "/signer.pem --signer-key file:", pki_, "/signer.key 2>", dir_.Join("err.txt"))),
      2);
  EXPECT_THAT(Err(), HasSubstr("--new-model-key needs --keyd"));
  EXPECT_THAT(Err(), Not(HasSubstr("PRIVATE KEY")));
  EXPECT_TRUE(NothingLeftBehind(out));
}

}  // namespace
}  // namespace hosn::ctl
