#include "client/agent/engine/engine_launcher.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::agent {
namespace {

using ::hosn::testing::ScopedTempDir;
using ::hosn::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// {model_dir} is replaced in every argument, as the vLLM and TGI command
// lines need.
TEST(EngineLauncher, ExpandsModelDir) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      auto argv, ExpandEngineCommand({"text-generation-launcher", "--model-id", "{model_dir}"},
                                     "/run/hosn/m1"));
  EXPECT_THAT(argv, ElementsAre("text-generation-launcher", "--model-id", "/run/hosn/m1"));
  EXPECT_THAT(ExpandEngineCommand({}, "/x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty engine command")));
}

// In supervise mode the engine sees the directory, its exit code comes back,
// and the plaintext directory is gone afterwards.
TEST(EngineLauncher, SuperviseReturnsExitCodeAndRemovesPlaintext) {
  ScopedTempDir dir;
  const std::string model_dir = dir.Join("model");
  std::filesystem::create_directory(model_dir);
  HOSN_ASSERT_OK(WriteFileAtomically(model_dir + "/weights.bin", "plaintext", 0600));
  const std::string seen = dir.Join("seen");
  HOSN_ASSERT_OK_AND_ASSIGN(
      int code,
      SuperviseEngine({"/bin/sh", "-c", "ls {model_dir} > " + seen + "; exit 3"}, model_dir));
  EXPECT_EQ(code, 3);
  EXPECT_FALSE(std::filesystem::exists(model_dir));
  HOSN_ASSERT_OK_AND_ASSIGN(std::string listing, ReadFile(seen, 1024));
  EXPECT_EQ(listing, "weights.bin\n");
}

// The engine inherits no descriptor of the agent beyond stdin/out/err.
TEST(EngineLauncher, NoInheritedDescriptors) {
  ScopedTempDir dir;
  const std::string model_dir = dir.Join("model");
  std::filesystem::create_directory(model_dir);
  // Deliberately not O_CLOEXEC, and at a number nothing else uses.
  const int opened = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(opened, 0);
  ASSERT_EQ(::dup2(opened, 50), 50);
  ::close(opened);
  const std::string seen = dir.Join("fds");
  // ls lists its own descriptors: 0, 1 (the file), 2 and 3 (the directory
  // it is reading); descriptor 50 must not be there.
  HOSN_ASSERT_OK_AND_ASSIGN(
      int code, SuperviseEngine({"/bin/sh", "-c", "exec ls /proc/self/fd > " + seen}, model_dir));
  ::close(50);
  EXPECT_EQ(code, 0);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string listing, ReadFile(seen, 1024));
  EXPECT_EQ(listing, "0\n1\n2\n3\n");
}

// An engine killed by a signal reports 128 + the signal, and the plaintext is
// still removed.
TEST(EngineLauncher, SignalledEngine) {
  ScopedTempDir dir;
  const std::string model_dir = dir.Join("model");
  std::filesystem::create_directory(model_dir);
  HOSN_ASSERT_OK_AND_ASSIGN(int code,
                            SuperviseEngine({"/bin/sh", "-c", "kill -KILL $$"}, model_dir));
  EXPECT_EQ(code, 128 + 9);
  EXPECT_FALSE(std::filesystem::exists(model_dir));
}

// A missing engine binary is an engine that could not be started (NotFound,
// exit 16 in `run`), not an engine that ran and exited 127; the plaintext is
// removed. A shell that runs and exits 127 itself still reports 127.
TEST(EngineLauncher, MissingEngine) {
  ScopedTempDir dir;
  const std::string model_dir = dir.Join("model");
  std::filesystem::create_directory(model_dir);
  EXPECT_THAT(SuperviseEngine({"/nonexistent/engine"}, model_dir),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot execute engine")));
  EXPECT_FALSE(std::filesystem::exists(model_dir));

  std::filesystem::create_directory(model_dir);
  HOSN_ASSERT_OK_AND_ASSIGN(int code, SuperviseEngine({"/bin/sh", "-c", "exit 127"}, model_dir));
  EXPECT_EQ(code, 127);
  EXPECT_FALSE(std::filesystem::exists(model_dir));
}

// Exec mode replaces the process: run it in a child and check what ran.
TEST(EngineLauncher, ExecReplacesProcess) {
  ScopedTempDir dir;
  const std::string out = dir.Join("out");
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto status = ExecEngine({"/bin/sh", "-c", "echo {model_dir} > " + out}, "/run/m");
    _exit(status.code() == absl::StatusCode::kNotFound ? 10 : 11);
  }
  int wait_status = 0;
  ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), 0);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string written, ReadFile(out, 64));
  EXPECT_EQ(written, "/run/m\n");
}

// Exec of a missing binary returns NotFound instead of replacing the process.
TEST(EngineLauncher, ExecMissingBinary) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto status = ExecEngine({"/nonexistent/engine"}, "/run/m");
    _exit(status.code() == absl::StatusCode::kNotFound ? 10 : 11);
  }
  int wait_status = 0;
  ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
  EXPECT_EQ(WEXITSTATUS(wait_status), 10);
}

}  // namespace
}  // namespace hosn::agent
