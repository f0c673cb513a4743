// The session pool through KeyStore: bounded waits, recovery from every
// session-loss return value, failed recoveries, and errors that must not
// trigger a retry. Faults come from the fault-injecting module over SoftHSM.
#include "server/hsm/session_pool.h"

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/base/call_deadline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/hsm/key_store.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::hsm::testing::FaultModule;
using ::hosn::hsm::testing::Hex;
using ::hosn::hsm::testing::kP4Dek;
using ::hosn::hsm::testing::kP4Kek;
using ::hosn::hsm::testing::kP4Rfc5649;
using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::Unhex;
using ::hosn::hsm::testing::UnhexSecret;
using ::hosn::testing::SoftHsmToken;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

class SessionPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSN_ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create("hosn-pool"));
    HOSN_ASSERT_OK_AND_ASSIGN(expected_kcv_,
                              ExpectedCheckValue(UnhexSecret(kP4Dek), KeyType::kAes));
  }

  // A store through the fault module with the P4 KEK as a token key.
  void OpenStore(int pool_size, absl::Duration timeout = absl::Seconds(2)) {
    KeyStoreOptions options = OptionsFor(*token_, FaultModule::Path());
    options.pool_size = pool_size;
    options.acquire_timeout = timeout;
    HOSN_ASSERT_OK_AND_ASSIGN(store_, KeyStore::Create(options));
    HOSN_ASSERT_OK_AND_ASSIGN(
        kek_, store_->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek)));
  }

  const WrappedKey blob_{"aes-kwp", KeyType::kAes, Unhex(kP4Rfc5649)};
  std::unique_ptr<SoftHsmToken> token_;
  FaultModule faults_;
  std::string expected_kcv_;
  std::unique_ptr<KeyStore> store_;
  KeyRef kek_;
};

// With every session busy, a caller waits until its deadline and gets
// DeadlineExceeded; the wait shows in the metrics.
TEST_F(SessionPoolTest, BusyPoolTimesOutAtDeadline) {
  OpenStore(1, absl::Milliseconds(200));
  absl::Notification holding;
  absl::Notification release;
  std::thread holder([&] {
    EXPECT_THAT(store_->WithUnwrappedDek(kek_, blob_,
                                         [&](const UnwrappedDek&) {
                                           holding.Notify();
                                           release.WaitForNotification();
                                           return absl::OkStatus();
                                         }),
                ::hosn::testing::IsOk());
  });
  holding.WaitForNotification();
  EXPECT_EQ(store_->Metrics().in_use, 1);
  const absl::Time start = absl::Now();
  EXPECT_THAT(store_->DekCheckValue(kek_, blob_),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("all 1 sessions busy")));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  release.Notify();
  holder.join();

  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.wait_timeouts, 1u);
  EXPECT_GE(metrics.waits, 1u);
  EXPECT_GE(metrics.wait_time_us, 190'000u);
  EXPECT_EQ(metrics.in_use, 0);
  EXPECT_EQ(metrics.waiters, 0);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(kek_, blob_));
  EXPECT_EQ(Hex(kcv), Hex(expected_kcv_));
}

// A caller's RPC deadline (CallDeadlineScope) ends the wait before the
// pool's own, longer timeout; outside the scope the pool's bound applies again.
TEST_F(SessionPoolTest, CallDeadlineEndsTheWaitEarly) {
  OpenStore(1, absl::Seconds(30));
  absl::Notification holding;
  absl::Notification release;
  std::thread holder([&] {
    EXPECT_THAT(store_->WithUnwrappedDek(kek_, blob_,
                                         [&](const UnwrappedDek&) {
                                           holding.Notify();
                                           release.WaitForNotification();
                                           return absl::OkStatus();
                                         }),
                ::hosn::testing::IsOk());
  });
  holding.WaitForNotification();
  const absl::Time start = absl::Now();
  {
    CallDeadlineScope deadline(start + absl::Milliseconds(150));
    EXPECT_THAT(store_->DekCheckValue(kek_, blob_),
                StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("sessions busy")));
  }
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Milliseconds(140));
  EXPECT_LT(waited, absl::Seconds(5));
  EXPECT_EQ(CurrentCallDeadline(), absl::InfiniteFuture());
  release.Notify();
  holder.join();
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(kek_, blob_));
  EXPECT_EQ(Hex(kcv), Hex(expected_kcv_));
}

// Nested scopes keep the earlier deadline and restore the outer one.
TEST(CallDeadlineScopeTest, InnerScopeNeverExtends) {
  const absl::Time now = absl::Now();
  CallDeadlineScope outer(now + absl::Seconds(1));
  {
    CallDeadlineScope inner(now + absl::Seconds(10));
    EXPECT_EQ(CurrentCallDeadline(), now + absl::Seconds(1));
  }
  {
    CallDeadlineScope inner(now + absl::Milliseconds(10));
    EXPECT_EQ(CurrentCallDeadline(), now + absl::Milliseconds(10));
  }
  EXPECT_EQ(CurrentCallDeadline(), now + absl::Seconds(1));
}

// Each session-loss return value triggers one recovery and a retry whose
// result is the KAT DEK.
TEST_F(SessionPoolTest, RecoversFromEverySessionLossCode) {
  OpenStore(2);
  const char* codes[] = {"CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED", "CKR_DEVICE_REMOVED",
                         "CKR_TOKEN_NOT_PRESENT", "CKR_USER_NOT_LOGGED_IN"};
  uint64_t expected_recoveries = 0;
  for (const char* code : codes) {
    SCOPED_TRACE(code);
    ASSERT_TRUE(faults_.Configure(std::string("fn=C_UnwrapKey,count=1,kill=1,rv=") + code));
    HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(kek_, blob_));
    EXPECT_EQ(Hex(kcv), Hex(expected_kcv_));
    EXPECT_EQ(faults_.Fired(), 1);
    EXPECT_EQ(store_->Metrics().recoveries, ++expected_recoveries);
  }
}

// When recovery itself fails the caller gets Unavailable; once the HSM is
// back, the next call recovers and gives the KAT DEK.
TEST_F(SessionPoolTest, FailedRecoveryIsUnavailableThenHeals) {
  OpenStore(2);
  ASSERT_TRUE(
      faults_.Configure("fn=C_UnwrapKey,count=1,kill=1,rv=CKR_DEVICE_REMOVED;"
                        "fn=C_OpenSession,count=-1,rv=CKR_DEVICE_REMOVED"));
  EXPECT_THAT(store_->DekCheckValue(kek_, blob_),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("recovery failed")));
  EXPECT_THAT(store_->DekCheckValue(kek_, blob_),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("recovery failed")));
  ASSERT_TRUE(faults_.Configure(""));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(kek_, blob_));
  EXPECT_EQ(Hex(kcv), Hex(expected_kcv_));
  const PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.recoveries, 1u);
  EXPECT_EQ(metrics.recovery_failures, 2u);
}

// An error that says nothing about the session is returned as is: no
// recovery, no retry; the session is replaced, and the next call works.
TEST_F(SessionPoolTest, OtherErrorsAreNotRetried) {
  OpenStore(2);
  ASSERT_TRUE(faults_.Configure("fn=C_EncryptInit,count=1,rv=CKR_FUNCTION_FAILED"));
  EXPECT_THAT(
      store_->DekCheckValue(kek_, blob_),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("C_EncryptInit: CKR_FUNCTION_FAILED")));
  PoolMetrics metrics = store_->Metrics();
  EXPECT_EQ(metrics.recoveries, 0u);
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kUnwrap)].retried, 0u);
  EXPECT_EQ(metrics.ops[static_cast<size_t>(OpKind::kUnwrap)].failed, 1u);
  EXPECT_EQ(metrics.sessions_replaced, 1u);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(kek_, blob_));
  EXPECT_EQ(Hex(kcv), Hex(expected_kcv_));
}

// A second failure on the retry is returned to the caller: one retry only.
TEST_F(SessionPoolTest, RetriesOnlyOnce) {
  OpenStore(2);
  ASSERT_TRUE(faults_.Configure("fn=C_UnwrapKey,count=2,kill=1,rv=CKR_SESSION_HANDLE_INVALID"));
  EXPECT_THAT(store_->DekCheckValue(kek_, blob_),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("CKR_SESSION_HANDLE_INVALID")));
  EXPECT_EQ(faults_.Fired(), 2);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string kcv, store_->DekCheckValue(kek_, blob_));
  EXPECT_EQ(Hex(kcv), Hex(expected_kcv_));
}

}  // namespace
}  // namespace hosn::hsm
