#include "common/base/file_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn {
namespace {

using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// An atomic write replaces the target and leaves no temporary file beside it.
TEST(FileUtil, AtomicWriteReplacesAndLeavesNoTemp) {
  ScopedTempDir dir;
  const std::string path = dir.Join("out.json");
  HOSN_ASSERT_OK(WriteFileAtomically(path, "first"));
  HOSN_ASSERT_OK(WriteFileAtomically(path, "second", 0600));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string body, ReadFile(path, 100));
  EXPECT_EQ(body, "second");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

// A failed atomic write (missing directory) creates nothing.
TEST(FileUtil, AtomicWriteFailsCleanly) {
  ScopedTempDir dir;
  EXPECT_THAT(WriteFileAtomically(dir.Join("missing/out"), "x"), Not(::hosn::testing::IsOk()));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

// ReadFile enforces its size bound before allocating.
TEST(FileUtil, ReadFileBound) {
  ScopedTempDir dir;
  HOSN_ASSERT_OK(WriteFileAtomically(dir.Join("f"), std::string(100, 'a')));
  EXPECT_THAT(ReadFile(dir.Join("f"), 99),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("too large")));
  EXPECT_THAT(ReadFile(dir.Join("nope"), 99),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

// A PIN file loses its trailing newline; a world-readable one is refused and
// the error never contains the secret.
TEST(FileUtil, SecretFileRules) {
  ScopedTempDir dir;
  const std::string pin = dir.Join("pin");
  HOSN_ASSERT_OK(WriteFileAtomically(pin, "s3cret-pin\n", 0600));
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes secret, ReadSecretFile(pin));
  EXPECT_TRUE(secret == SecretBytes::CopyOf(std::string_view("s3cret-pin")));

  HOSN_ASSERT_OK(WriteFileAtomically(pin, "s3cret-pin\n", 0644));
  auto refused = ReadSecretFile(pin);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("other users")));
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("s3cret")));

  // Group-writable: another member could swap the secret.
  HOSN_ASSERT_OK(WriteFileAtomically(pin, "s3cret-pin\n", 0620));
  EXPECT_THAT(ReadSecretFile(pin),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("writable by its group")));
  // Group-readable (a service group's key) is accepted.
  HOSN_ASSERT_OK(WriteFileAtomically(pin, "s3cret-pin\n", 0640));
  HOSN_EXPECT_OK(ReadSecretFile(pin));
}

// Secret references: file: and credential: work; an inline value is refused.
TEST(FileUtil, SecretReference) {
  ScopedTempDir dir;
  HOSN_ASSERT_OK(WriteFileAtomically(dir.Join("hsm-pin"), "1234", 0600));
  HOSN_EXPECT_OK(ReadSecretReference("file:" + dir.Join("hsm-pin")));
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  HOSN_ASSERT_OK_AND_ASSIGN(SecretBytes from_credential, ReadSecretReference("credential:hsm-pin"));
  EXPECT_EQ(from_credential.size(), 4u);
  EXPECT_THAT(ReadSecretReference("credential:../x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("credential")));
  EXPECT_THAT(ReadSecretReference("1234"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("never the secret")));
}

}  // namespace
}  // namespace hosn
