#include "common/base/hex.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace hosn {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Encoding is lowercase and round-trips through decoding.
TEST(Hex, RoundTrip) {
  EXPECT_EQ(HexEncode(std::string_view("\x00\xff\x10", 3)), "00ff10");
  HOSN_ASSERT_OK_AND_ASSIGN(auto bytes, HexDecode("00FF10"));
  EXPECT_THAT(bytes, ElementsAre(0x00, 0xff, 0x10));
}

// Odd lengths and non-hex characters are refused.
TEST(Hex, RejectsMalformed) {
  EXPECT_THAT(HexDecode("abc"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd")));
  EXPECT_THAT(HexDecode("zz"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad")));
}

}  // namespace
}  // namespace hosn
