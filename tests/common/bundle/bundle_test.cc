#include "common/bundle/bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "common/bundle/errors.h"
#include "common/bundle/segment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::bundle {
namespace {

namespace fs = std::filesystem;
using ::hosn::testing::IsOk;
using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr uint32_t kSegment = 4096;

// A directory on tmpfs (/dev/shm), removed with everything inside.
class ShmDir {
 public:
  ShmDir() {
    char templ[] = "/dev/shm/hosn-bundle-test-XXXXXX";
    path_ = ::mkdtemp(templ);
  }
  ~ShmDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

uint64_t FreeBlocks(const std::string& path) {
  struct statfs sfs;
  EXPECT_EQ(::statfs(path.c_str(), &sfs), 0);
  return sfs.f_bfree;
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = testing::MakeTestPki(pki_dir_.path());
    auto signer =
        OpenSslKeySigner::Create(SecretBytes::CopyOf(pki_.signer_key_pem), pki_.signer_cert_pem);
    ASSERT_THAT(signer, IsOk());
    signer_ = std::move(*signer);
    // A Hugging Face layout: config, tokenizer, sharded weights, a LoRA
    // adapter, an empty file and a file of exactly one segment.
    model_ = work_.Join("model");
    fs::create_directories(model_ + "/adapters/lora-a");
    testing::WriteFileOrDie(model_ + "/config.json", "{\"hidden_size\": 8}");
    testing::WriteFileOrDie(model_ + "/tokenizer.json", testing::PatternBytes(5000, 1));
    testing::WriteFileOrDie(model_ + "/model-00001-of-00002.safetensors",
                            testing::PatternBytes(3 * kSegment + 17, 2));
    testing::WriteFileOrDie(model_ + "/model-00002-of-00002.safetensors",
                            testing::PatternBytes(300 * kSegment, 3));
    testing::WriteFileOrDie(model_ + "/adapters/lora-a/adapter_model.safetensors",
                            testing::PatternBytes(kSegment, 4));
    testing::WriteFileOrDie(model_ + "/adapters/lora-a/empty.txt", "");
  }

  PackOptions Options() const {
    PackOptions options;
    options.model_name = "test-model";
    options.model_version = "1";
    options.segment_size = kSegment;
    options.wrapped_dek = testing::TestWrappedDek();
    options.kek_label = "test-kek";
    options.kek_id = "0a0b";
    return options;
  }

  std::string Pack() {
    std::string bundle = work_.Join("bundle" + std::to_string(++packs_));
    auto packed = PackBundle(model_, bundle, testing::TestDek(), Options(), *signer_);
    EXPECT_THAT(packed, IsOk());
    return bundle;
  }

  TrustOptions Trust() const { return {pki_.ca_pem, std::nullopt}; }

  // Every file of the model, compared with the decrypted tree.
  void ExpectSameTree(const std::string& target) {
    size_t files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(model_)) {
      if (!entry.is_regular_file()) continue;
      std::string rel = fs::relative(entry.path(), model_).string();
      EXPECT_EQ(testing::ReadFileOrDie(target + "/" + rel),
                testing::ReadFileOrDie(entry.path().string()))
          << rel;
      ++files;
    }
    EXPECT_EQ(files, 6u);
    EXPECT_FALSE(fs::exists(target + "/.hosn-staging"));
  }

  // Decrypting must fail with `error` and leave nothing behind.
  void ExpectDecryptRefused(const VerifiedBundle& verified, const std::string& error) {
    ShmDir shm;
    uint64_t before = FreeBlocks(shm.path());
    std::string target = shm.Join("model");
    absl::Status status = DecryptBundle(verified, testing::TestDek(), target, {});
    EXPECT_EQ(BundleErrorName(status), error) << status;
    EXPECT_FALSE(fs::exists(target));
    EXPECT_EQ(FreeBlocks(shm.path()), before);
  }

  ScopedTempDir pki_dir_, work_;
  testing::TestPki pki_;
  std::unique_ptr<OpenSslKeySigner> signer_;
  std::string model_;
  int packs_ = 0;
};

// Pack, verify and decrypt into tmpfs give back every file, byte for byte,
// with and without the plaintext digest pass, on one thread or several.
TEST_F(BundleTest, RoundTripsIntoTmpfs) {
  std::string bundle = Pack();
  auto verified = VerifyBundle(bundle, Trust());
  ASSERT_THAT(verified, IsOk());
  EXPECT_EQ(verified->verified.manifest.files_size(), 6);
  for (bool digests : {true, false}) {
    for (int threads : {1, 3}) {
      ShmDir shm;
      std::string target = shm.Join("model");
      Progress progress;
      DecryptOptions options;
      options.check_plaintext_digests = digests;
      options.threads = threads;
      options.progress = &progress;
      ASSERT_THAT(DecryptBundle(*verified, testing::TestDek(), target, options), IsOk());
      ExpectSameTree(target);
      EXPECT_EQ(progress.done.load(), progress.total.load());
      struct stat st;
      ASSERT_EQ(::stat(target.c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0700u);
    }
  }
}

// The target must be on tmpfs or ramfs and must not hold anything already.
TEST_F(BundleTest, RefusesTargetsOffTmpfsOrInUse) {
  auto verified = VerifyBundle(Pack(), Trust());
  ASSERT_THAT(verified, IsOk());
  std::string on_disk = work_.Join("plain-disk-target");
  struct statfs sfs;
  ASSERT_EQ(::statfs(work_.path().c_str(), &sfs), 0);
  absl::Status status = DecryptBundle(*verified, testing::TestDek(), on_disk, {});
  if (sfs.f_type == 0x01021994) {
    GTEST_FAIL() << "TMPDIR is itself tmpfs; this test needs a disk-backed TMPDIR";
  }
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("target_not_tmpfs")));
  EXPECT_FALSE(fs::exists(on_disk));

  // An existing directory off tmpfs is refused and its contents left alone.
  fs::create_directories(work_.Join("home"));
  testing::WriteFileOrDie(work_.Join("home/precious"), "keep me");
  EXPECT_THAT(DecryptBundle(*verified, testing::TestDek(), work_.Join("home"), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("target_not_tmpfs")));
  EXPECT_EQ(testing::ReadFileOrDie(work_.Join("home/precious")), "keep me");

  ShmDir shm;
  fs::create_directories(shm.Join("busy"));
  ::chmod(shm.Join("busy").c_str(), 0700);
  testing::WriteFileOrDie(shm.Join("busy/keep"), "x");
  EXPECT_THAT(DecryptBundle(*verified, testing::TestDek(), shm.Join("busy"), {}),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("target_exists")));
  EXPECT_TRUE(fs::exists(shm.Join("busy/keep")));
  // An empty private directory on tmpfs (a prepared mount) is accepted.
  fs::create_directories(shm.Join("prepared"));
  ::chmod(shm.Join("prepared").c_str(), 0700);
  EXPECT_THAT(DecryptBundle(*verified, testing::TestDek(), shm.Join("prepared"), {}), IsOk());
}

// B2: two shards swapped by name are refused by verify (signed tag digests)
// and, if swapped after verify, by decrypt (keys bound to paths).
TEST_F(BundleTest, RefusesSwappedShards) {
  testing::WriteFileOrDie(model_ + "/model-00003-of-00003.safetensors",
                          testing::PatternBytes(300 * kSegment, 9));
  std::string bundle = Pack();
  auto verified = VerifyBundle(bundle, Trust());
  ASSERT_THAT(verified, IsOk());
  std::string a = bundle + "/data/model-00002-of-00002.safetensors";
  std::string b = bundle + "/data/model-00003-of-00003.safetensors";
  fs::rename(a, a + ".swap");
  fs::rename(b, a);
  fs::rename(a + ".swap", b);
  EXPECT_EQ(BundleErrorName(VerifyBundle(bundle, Trust()).status()), "tags_digest_mismatch");
  ExpectDecryptRefused(*verified, "segment_auth_failed");
  // Shards of different sizes swapped: the size no longer matches.
  std::string c = bundle + "/data/model-00001-of-00002.safetensors";
  fs::rename(a, a + ".swap");
  fs::rename(c, a);
  fs::rename(a + ".swap", c);
  EXPECT_EQ(BundleErrorName(VerifyBundle(bundle, Trust()).status()), "ciphertext_size_mismatch");
}

// B2: a deleted shard, an added unlisted file, an added directory, a symlink
// and a name that differs only in case or normalisation are all refused.
TEST_F(BundleTest, RefusesIncompleteOrExtendedBundles) {
  struct Case {
    std::function<void(const std::string&)> tamper;
    const char* error;
  };
  std::vector<Case> cases = {
      {[](const std::string& b) { fs::remove(b + "/data/tokenizer.json"); }, "file_missing"},
      {[](const std::string& b) { testing::WriteFileOrDie(b + "/data/extra.bin", "x"); },
       "file_unlisted"},
      {[](const std::string& b) { fs::create_directories(b + "/data/empty-dir"); },
       "file_unlisted"},
      {[](const std::string& b) { testing::WriteFileOrDie(b + "/README", "x"); }, "file_unlisted"},
      {[](const std::string& b) { fs::rename(b + "/data/config.json", b + "/data/Config.json"); },
       "file_missing"},
      {[](const std::string& b) {
         fs::rename(b + "/data/tokenizer.json", b + "/data/tmp");
         fs::create_symlink("tmp", b + "/data/tokenizer.json");
       },
       "special_file"},
      {[](const std::string& b) { ::mkfifo((b + "/data/fifo").c_str(), 0600); }, "special_file"},
  };
  for (const auto& c : cases) {
    std::string bundle = Pack();
    c.tamper(bundle);
    EXPECT_EQ(BundleErrorName(VerifyBundle(bundle, Trust()).status()), c.error);
  }
}

// B2: a duplicated or normalisation-twin name never reaches the file system:
// pack refuses a model directory holding "é" in NFC and in NFD.
TEST_F(BundleTest, PackRefusesNormalisationTwins) {
  testing::WriteFileOrDie(model_ + "/caf\xc3\xa9.json", "1");
  testing::WriteFileOrDie(model_ + "/cafe\xcc\x81.json", "2");
  auto packed = PackBundle(model_, work_.Join("twins"), testing::TestDek(), Options(), *signer_);
  EXPECT_EQ(BundleErrorName(packed.status()), "path_not_nfc");
  EXPECT_FALSE(fs::exists(work_.Join("twins")));
}

// Pack refuses symlinks in the model directory instead of following them.
TEST_F(BundleTest, PackRefusesSymlinks) {
  fs::create_symlink("/etc/hostname", model_ + "/hostname");
  auto packed = PackBundle(model_, work_.Join("links"), testing::TestDek(), Options(), *signer_);
  EXPECT_EQ(BundleErrorName(packed.status()), "special_file");
  EXPECT_FALSE(fs::exists(work_.Join("links")));
}

// A changed manifest byte or a signature from an untrusted CA stops verify
// before any data file is opened.
TEST_F(BundleTest, RefusesTamperedManifest) {
  std::string bundle = Pack();
  std::string manifest = testing::ReadFileOrDie(bundle + "/manifest.json");
  manifest.replace(manifest.find("test-model"), 10, "evil-model");
  testing::WriteFileOrDie(bundle + "/manifest.json", manifest);
  fs::remove_all(bundle + "/data");
  EXPECT_EQ(BundleErrorName(VerifyBundle(bundle, Trust()).status()), "signature_invalid");
  ScopedTempDir other;
  auto other_pki = testing::MakeTestPki(other.path());
  EXPECT_EQ(BundleErrorName(VerifyBundle(Pack(), {other_pki.ca_pem, std::nullopt}).status()),
            "signer_untrusted");
}

// S1-S3 end to end: trailing data, a dropped last segment, a flipped bit and
// a cut tag, made after verify, are refused by decrypt itself; no file with
// a final name remains and tmpfs usage returns to where it was.
TEST_F(BundleTest, DecryptRefusesTamperingAfterVerify) {
  struct Case {
    std::function<void(const std::string&)> tamper;
    const char* error;
  };
  const std::string shard = "/data/model-00002-of-00002.safetensors";
  std::vector<Case> cases = {
      {[&](const std::string& p) { testing::WriteFileOrDie(p, testing::ReadFileOrDie(p) + "x"); },
       "ciphertext_size_mismatch"},
      {[&](const std::string& p) {
         std::string s = testing::ReadFileOrDie(p);
         s[s.size() - kTagSize - 1] ^= 1;
         testing::WriteFileOrDie(p, s);
       },
       "segment_auth_failed"},
      {[&](const std::string& p) {
         std::string s = testing::ReadFileOrDie(p);
         testing::WriteFileOrDie(p, s.substr(0, s.size() - 4));
       },
       "ciphertext_size_mismatch"},
      {[&](const std::string& p) {
         std::string s = testing::ReadFileOrDie(p);
         s[100] ^= 0x40;
         testing::WriteFileOrDie(p, s);
       },
       "segment_auth_failed"},
  };
  for (const auto& c : cases) {
    for (bool digests : {true, false}) {
      std::string bundle = Pack();
      auto verified = VerifyBundle(bundle, Trust());
      ASSERT_THAT(verified, IsOk());
      c.tamper(bundle + shard);
      ShmDir shm;
      uint64_t before = FreeBlocks(shm.path());
      std::string target = shm.Join("model");
      DecryptOptions options;
      options.check_plaintext_digests = digests;
      absl::Status status = DecryptBundle(*verified, testing::TestDek(), target, options);
      EXPECT_EQ(BundleErrorName(status), c.error) << status;
      EXPECT_FALSE(fs::exists(target));
      EXPECT_EQ(FreeBlocks(shm.path()), before);
    }
  }
}

// A failed decrypt into a prepared mount (an empty private directory the
// agent made) empties it again: no decrypted byte stays in tmpfs, usage
// returns to its former value, and the mount can be used for a good bundle.
TEST_F(BundleTest, FailedDecryptEmptiesPreparedTarget) {
  const std::string shard = "/data/model-00002-of-00002.safetensors";
  std::string bundle = Pack();
  auto verified = VerifyBundle(bundle, Trust());
  ASSERT_THAT(verified, IsOk());
  std::string s = testing::ReadFileOrDie(bundle + shard);
  s[s.size() - kTagSize - 1] ^= 1;
  testing::WriteFileOrDie(bundle + shard, s);

  ShmDir shm;
  const std::string target = shm.Join("prepared");
  fs::create_directories(target);
  ::chmod(target.c_str(), 0700);
  const uint64_t before = FreeBlocks(shm.path());
  DecryptOptions options;
  options.threads = 1;  // the first file completes before the tampered one fails
  absl::Status status = DecryptBundle(*verified, testing::TestDek(), target, options);
  EXPECT_EQ(BundleErrorName(status), "segment_auth_failed") << status;
  ASSERT_TRUE(fs::exists(target));
  EXPECT_TRUE(fs::is_empty(target));
  EXPECT_EQ(FreeBlocks(shm.path()), before);

  auto good = VerifyBundle(Pack(), Trust());
  ASSERT_THAT(good, IsOk());
  EXPECT_THAT(DecryptBundle(*good, testing::TestDek(), target, {}), IsOk());
}

// A wrong DEK fails and leaves nothing behind.
TEST_F(BundleTest, RefusesWrongDek) {
  auto verified = VerifyBundle(Pack(), Trust());
  ASSERT_THAT(verified, IsOk());
  ShmDir shm;
  SecretBytes wrong(32);
  EXPECT_EQ(BundleErrorName(DecryptBundle(*verified, wrong, shm.Join("m"), {})),
            "segment_auth_failed");
  EXPECT_FALSE(fs::exists(shm.Join("m")));
}

}  // namespace
}  // namespace hosn::bundle
