#include "common/base/secret_bytes.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace hosn {
namespace {

// A copy holds the same bytes and compares equal; a different byte does not.
TEST(SecretBytes, CopyAndCompare) {
  SecretBytes a = SecretBytes::CopyOf(std::string_view("0123456789abcdef"));
  SecretBytes b = a.Clone();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_TRUE(a == b);
  RevealSecret(b)[15] ^= 1;
  EXPECT_FALSE(a == b);
}

// Lengths are compared first: a prefix is never equal.
TEST(SecretBytes, DifferentLengthsDiffer) {
  SecretBytes a = SecretBytes::CopyOf(std::string_view("abc"));
  SecretBytes b = SecretBytes::CopyOf(std::string_view("ab"));
  EXPECT_FALSE(a == b);
}

// Moving leaves the source empty; Clear empties the buffer.
TEST(SecretBytes, MoveAndClear) {
  SecretBytes a = SecretBytes::CopyOf(std::string_view("key material"));
  SecretBytes b = std::move(a);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is specified.
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.size(), 12u);
  EXPECT_EQ(std::memcmp(RevealSecret(b).data(), "key material", 12), 0);
  b.Clear();
  EXPECT_TRUE(b.empty());
}

// A new buffer is zero-filled.
TEST(SecretBytes, NewBufferIsZero) {
  SecretBytes a(64);
  for (uint8_t byte : RevealSecret(a)) EXPECT_EQ(byte, 0);
}

}  // namespace
}  // namespace hosn
