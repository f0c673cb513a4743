// Case P1 of ../shared/cases/README.md: many threads mixing unwrap, sign and
// find on one KeyStore. SoftHSM crashed under concurrent use when
// C_Initialize got no locking; we always pass CKF_OS_LOCKING_OK. Runs under
// TSan in CI (label "concurrency"). The defaults are short; the full case is
//   HOSN_HSM_STRESS_THREADS=64 HOSN_HSM_STRESS_SECONDS=60 hsm_concurrency_test
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::hsm::testing::FaultModule;
using ::hosn::hsm::testing::kP4Dek;
using ::hosn::hsm::testing::kP4Kek;
using ::hosn::hsm::testing::kP4Rfc5649;
using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::Unhex;
using ::hosn::hsm::testing::UnhexSecret;
using ::hosn::testing::SoftHsmToken;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

bool VerifyP256(const std::string& spki, std::string_view message, const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
  EVP_PKEY* key = d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size()));
  if (key == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

struct Counts {
  std::atomic<int> unwraps{0}, signs{0}, finds{0}, errors{0};
};

// Each thread cycles unwrap (KAT-checked), sign (verified every 16th) and
// find until the deadline. Any error or wrong DEK is counted.
void Hammer(KeyStore& store, const KeyRef& kek, const SigningKey& signer,
            const std::string& expected_kcv, absl::Time deadline, int seed, Counts* counts) {
  const WrappedKey blob{"aes-kwp", KeyType::kAes, Unhex(kP4Rfc5649)};
  for (int i = seed; absl::Now() < deadline; ++i) {
    switch (i % 3) {
      case 0: {
        absl::StatusOr<std::string> kcv = store.DekCheckValue(kek, blob);
        if (!kcv.ok() || *kcv != expected_kcv) {
          ADD_FAILURE() << "unwrap: " << kcv.status();
          ++counts->errors;
        }
        ++counts->unwraps;
        break;
      }
      case 1: {
        const std::string message = "manifest " + std::to_string(i);
        absl::StatusOr<std::string> signature =
            store.Sign(signer.private_key, "ecdsa-p256-sha256", message);
        if (!signature.ok() ||
            (i % 16 == 1 && !VerifyP256(signer.public_key_der, message, *signature))) {
          ADD_FAILURE() << "sign: " << signature.status();
          ++counts->errors;
        }
        ++counts->signs;
        break;
      }
      default: {
        absl::StatusOr<KeyInfo> info = store.FindKey(kek);
        if (!info.ok() || info->label != "kek") {
          ADD_FAILURE() << "find: " << info.status();
          ++counts->errors;
        }
        ++counts->finds;
        break;
      }
    }
  }
}

class ConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-p1"));
    HOSN_ASSERT_OK_AND_ASSIGN(expected_kcv_,
                              ExpectedCheckValue(UnhexSecret(kP4Dek), KeyType::kAes));
  }

  void Prepare(const std::string& module_path) {
    KeyStoreOptions options = OptionsFor(*token_, module_path);
    options.pool_size = 4;
    options.acquire_timeout = absl::Seconds(30);
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(options));
    HOSN_ASSERT_OK_AND_ASSIGN(
        kek_, store_->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek)));
    HOSN_ASSERT_OK_AND_ASSIGN(signer_, store_->GenerateSigningKey("ec-p256", "signer", "1"));
  }

  void Run(int threads, absl::Duration duration, Counts* counts) {
    const absl::Time deadline = absl::Now() + duration;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back(
          [&, t] { Hammer(*store_, kek_, signer_, expected_kcv_, deadline, t, counts); });
    }
    for (auto& worker : workers) worker.join();
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::string expected_kcv_;
  std::unique_ptr<KeyStore> store_;
  KeyRef kek_;
  SigningKey signer_;
};

// P1: threads well beyond the pool size mix unwrap, sign and find; no crash,
// no sanitizer report, every DEK equals its KAT, every signature verifies.
TEST_F(ConcurrencyTest, P1ManyThreadsMixUnwrapSignFind) {
  Prepare(SoftHsmToken::kModulePath);
  const int threads = EnvInt("HOSN_HSM_STRESS_THREADS", 12);
  const int seconds = EnvInt("HOSN_HSM_STRESS_SECONDS", 3);
  Counts counts;
  Run(threads, absl::Seconds(seconds), &counts);
  EXPECT_EQ(counts.errors.load(), 0);
  EXPECT_GT(counts.unwraps.load(), threads);
  EXPECT_GT(counts.signs.load(), threads);
  EXPECT_GT(counts.finds.load(), threads);
  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.in_use, 0);
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kUnwrap)].failed, 0u);
}

// Sessions die twice while threads are busy: every caller still gets the
// KAT DEK, and the pool recovers without a data race.
TEST_F(ConcurrencyTest, RecoveryUnderLoad) {
  FaultModule faults;
  Prepare(FaultModule::Path());
  // Two phases, so the second kill never lands on a caller's one retry
  // after the first (that caller would rightly get the error).
  const absl::Duration phase = absl::Seconds(EnvInt("HOSN_HSM_STRESS_SECONDS", 3)) / 2;
  Counts counts;
  ASSERT_TRUE(faults.Configure("fn=C_UnwrapKey,skip=20,count=1,kill=1,rv=CKR_DEVICE_REMOVED"));
  Run(8, phase, &counts);
  EXPECT_EQ(faults.Fired(), 1);
  ASSERT_TRUE(
      faults.Configure("fn=C_SignInit,skip=20,count=1,kill=1,rv=CKR_SESSION_HANDLE_INVALID"));
  Run(8, phase, &counts);
  EXPECT_EQ(faults.Fired(), 1);
  EXPECT_EQ(counts.errors.load(), 0);
  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.recoveries, 2u);
  EXPECT_EQ(metrics.recovery_failures, 0u);
}

// Fleet-state reads through the data-object index (remembered handles, an
// index rebuilt every 50 ms here) while one writer keeps replacing the value:
// every read and every put succeeds, and no reader sees a value older than
// the last put completed before its read began, or older than one it saw
// before. (Without the KeyStore's data-object lock, SoftHSM's searches miss
// objects while another session creates or destroys one, and some of its
// C_CreateObject calls fail.) Under TSan in CI.
TEST_F(ConcurrencyTest, DataObjectReadsWhileAWriterReplaces) {
  KeyStoreOptions options = OptionsFor(*token_, SoftHsmToken::kModulePath);
  options.pool_size = 4;
  options.acquire_timeout = absl::Seconds(30);
  options.data_index_refresh = absl::Milliseconds(50);
  HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(options));
  HOSN_ASSERT_OK(store_->PutDataObject("policy/gpu", "policy"));
  HOSN_ASSERT_OK(store_->PutDataObject("node/a", "0"));
  const absl::Time deadline = absl::Now() + absl::Seconds(EnvInt("HOSN_HSM_STRESS_SECONDS", 3));
  std::atomic<int> errors{0}, reads{0}, written{0}, failed_puts{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int value = 1; absl::Now() < deadline; ++value) {
      if (store_->PutDataObject("node/a", std::to_string(value)).ok()) {
        written = value;
      } else {
        ++failed_puts;
      }
    }
  });
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      int last = 0;
      while (absl::Now() < deadline) {
        const int floor = written.load();  // completed before this read began
        absl::StatusOr<std::optional<std::string>> node = store_->GetDataObject("node/a");
        absl::StatusOr<std::optional<std::string>> policy = store_->GetDataObject("policy/gpu");
        if (!node.ok() || !node->has_value() || !policy.ok() || *policy != "policy") {
          ++errors;
          continue;
        }
        const int value = std::atoi((*node)->c_str());
        if (value < last || value < floor) ++errors;
        last = value;
        ++reads;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(reads.load(), 6);
  EXPECT_GT(written.load(), 10);
  EXPECT_EQ(failed_puts.load(), 0);
  std::printf("reads %d, completed puts %d\n", reads.load(), written.load());
}

}  // namespace
}  // namespace hosn::hsm
