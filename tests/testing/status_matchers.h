// gMock matchers for absl::Status and absl::StatusOr<T>:
//
//   EXPECT_THAT(DoThing(), IsOk());
//   EXPECT_THAT(Parse(bytes), StatusIs(absl::StatusCode::kInvalidArgument,
//                                      HasSubstr("bad magic")));
//   HOSN_ASSERT_OK_AND_ASSIGN(auto key, pool.FindKey(...));
#ifndef HOSN_TESTS_TESTING_STATUS_MATCHERS_H_
#define HOSN_TESTS_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hosn::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = ::hosn::testing::GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + ::testing::PrintToString(code) + " and a matching message") {
  const absl::Status& status = ::hosn::testing::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::Matches(message_matcher)(std::string(status.message()));
}

}  // namespace hosn::testing

#define HOSN_ASSERT_OK(expr) ASSERT_THAT((expr), ::hosn::testing::IsOk())
#define HOSN_EXPECT_OK(expr) EXPECT_THAT((expr), ::hosn::testing::IsOk())

#define HOSN_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  HOSN_ASSERT_OK_AND_ASSIGN_IMPL_(HOSN_TEST_CONCAT_(hosn_test_statusor_, __LINE__), lhs, expr)
#define HOSN_TEST_CONCAT_INNER_(a, b) a##b
#define HOSN_TEST_CONCAT_(a, b) HOSN_TEST_CONCAT_INNER_(a, b)
#define HOSN_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  ASSERT_TRUE(statusor.ok()) << statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // HOSN_TESTS_TESTING_STATUS_MATCHERS_H_
