// Unit tests of hosn-agent's command-line pieces: the flag parser, PCR
// selections and durations, the PCR file writer (read back with the shared
// reader), the tmpfs target check and the exit-code mapping. The whole flow
// with a real daemon and TPM is tests/e2e/agent_e2e.sh.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/cord.h"
#include "client/agent/cli/attested_release.h"
#include "client/agent/cli/exit_codes.h"
#include "client/agent/cli/flags.h"
#include "client/agent/cli/pcr_file_writer.h"
#include "client/agent/cli/process_guard.h"
#include "common/tpm/pcr_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::agent {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseArgsTest, ValuesSwitchesRepeatsAndEngineCommand) {
  HOSN_ASSERT_OK_AND_ASSIGN(ParsedArgs parsed,
                            ParseArgs({"--keyd", "h:1", "--model=a", "--model", "b", "--supervise",
                                       "--", "vllm", "serve", "{model_dir}", "--port", "8000"},
                                      {"keyd", "model"}, {"supervise"}, {"keyd"}));
  EXPECT_EQ(parsed.Get("keyd"), "h:1");
  EXPECT_THAT(parsed.values["model"], ElementsAre("a", "b"));
  EXPECT_EQ(parsed.Get("model"), "b");
  EXPECT_EQ(parsed.switches.count("supervise"), 1u);
  // Everything after "--" belongs to the engine, flags included.
  EXPECT_THAT(parsed.rest, ElementsAre("vllm", "serve", "{model_dir}", "--port", "8000"));
  EXPECT_EQ(parsed.Get("absent", "fallback"), "fallback");
}

TEST(ParseArgsTest, Refusals) {
  EXPECT_THAT(ParseArgs({"--nope", "x"}, {"keyd"}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --nope")));
  EXPECT_THAT(ParseArgs({"--keyd"}, {"keyd"}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(ParseArgs({"--supervise=yes"}, {}, {"supervise"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("takes no value")));
  EXPECT_THAT(ParseArgs({"stray"}, {}, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument")));
  EXPECT_THAT(ParseArgs({}, {"keyd"}, {}, {"keyd"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--keyd is required")));
}

TEST(ParsePcrSelectionTest, BanksAndIndices) {
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrSelection selection,
                            ParsePcrSelection("sha256:0,1,7+sha384:23"));
  ASSERT_EQ(selection.size(), 2u);
  EXPECT_EQ(selection[0].hash, TPM2_ALG_SHA256);
  EXPECT_THAT(selection[0].pcrs, ElementsAre(0u, 1u, 7u));
  EXPECT_EQ(selection[1].hash, TPM2_ALG_SHA384);
  EXPECT_THAT(selection[1].pcrs, ElementsAre(23u));
  for (const char* bad :
       {"sha256", "sha256:", "md5:1", "sha256:24", "sha256:3,2", "sha256:1,1", "sha256:x"}) {
    EXPECT_THAT(ParsePcrSelection(bad), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
}

TEST(ParsePositiveDurationTest, UnitsAndBareSeconds) {
  EXPECT_EQ(*ParsePositiveDuration("60s"), absl::Seconds(60));
  EXPECT_EQ(*ParsePositiveDuration("90"), absl::Seconds(90));
  EXPECT_EQ(*ParsePositiveDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParsePositiveDuration("2m"), absl::Minutes(2));
  for (const char* bad : {"0", "-1s", "soon", ""}) {
    EXPECT_THAT(ParsePositiveDuration(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
}

TEST(PcrFileWriterTest, RoundTripsThroughTheSharedReader) {
  // Ten PCRs in two banks: more than one TPML_DIGEST list of eight.
  tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7}},
                                 {TPM2_ALG_SHA1, {10, 11}}};
  tpm::PcrValues values;
  for (uint32_t i = 0; i < 8; ++i) values[TPM2_ALG_SHA256][i] = tpm::Bytes(32, uint8_t(i + 1));
  values[TPM2_ALG_SHA1][10] = tpm::Bytes(20, 0xaa);
  values[TPM2_ALG_SHA1][11] = tpm::Bytes(20, 0xbb);
  HOSN_ASSERT_OK_AND_ASSIGN(std::string bytes, SerializePcrFile(selection, values));
  HOSN_ASSERT_OK_AND_ASSIGN(
      tpm::PcrFile file,
      tpm::ParseTpm2ToolsPcrFile({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
  EXPECT_EQ(file.selection, selection);
  EXPECT_EQ(file.values, values);
}

TEST(PcrFileWriterTest, MissingOrWrongSizedValueRefused) {
  tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1}}};
  tpm::PcrValues values;
  values[TPM2_ALG_SHA256][0] = tpm::Bytes(32, 1);
  EXPECT_THAT(SerializePcrFile(selection, values),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no value for sha256:1")));
  values[TPM2_ALG_SHA256][1] = tpm::Bytes(20, 1);
  EXPECT_THAT(SerializePcrFile(selection, values),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wrong digest size")));
}

TEST(CheckTargetTest, OnlyAnEmptyOrAbsentTmpfsDirectory) {
  const std::string shm = "/dev/shm/hosn-agent-cli-test-" + std::to_string(::getpid());
  std::filesystem::remove_all(shm);
  EXPECT_THAT(CheckTarget(shm), IsOk());  // absent, parent on tmpfs
  std::filesystem::create_directory(shm);
  EXPECT_THAT(CheckTarget(shm), IsOk());  // empty directory on tmpfs
  std::ofstream(shm + "/leftover") << "x";
  EXPECT_THAT(CheckTarget(shm),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("target_not_empty")));
  std::filesystem::remove_all(shm);

  // The source tree is on the build disk, never tmpfs; nothing is created.
  EXPECT_THAT(CheckTarget(hosn::testing::SourcePath("hosn-agent-target")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("target_not_tmpfs")));
  EXPECT_THAT(CheckTarget("/nonexistent-hosn/model"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(ExitCodeTest, DaemonAndTpmStatuses) {
  EXPECT_EQ(ExitCodeForKeydStatus(absl::UnavailableError("x")), kExitUnreachable);
  EXPECT_EQ(ExitCodeForKeydStatus(absl::DeadlineExceededError("x")), kExitUnreachable);
  EXPECT_EQ(ExitCodeForKeydStatus(absl::PermissionDeniedError("denied")), kExitDenied);
  EXPECT_EQ(ExitCodeForKeydStatus(absl::UnauthenticatedError("x")), kExitDenied);
  EXPECT_EQ(ExitCodeForKeydStatus(absl::DataLossError("x")), kExitDecrypt);
  absl::Status tpm = absl::InternalError("tpm: quote failed");
  tpm.SetPayload(kTpmErrorPayload, absl::Cord("1"));
  EXPECT_EQ(ExitCodeForKeydStatus(tpm), kExitTpm);
  EXPECT_EQ(ExitCodeForKeydStatus(absl::InternalError("other")), kExitInternal);
}

}  // namespace
}  // namespace hosn::agent
