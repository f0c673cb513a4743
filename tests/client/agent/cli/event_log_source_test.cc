// Tests of which event log hosn-agent sends: a real boot log from
// ../shared/data at the default path is picked up, an absent default is
// skipped, "none" and simulator TCTIs send nothing, an explicit path must
// read, and a file whose size stat reports as 0 (like securityfs) is read
// to its end.
#include "client/agent/cli/event_log_source.h"

#include <sys/stat.h>

#include "common/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::agent {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

std::string RealLog() {
  return hosn::testing::SharedDataPath("tpm/go-tpm-tools/eventlogs/debian-10.bin");
}

// The default path, when it exists, is read whole and sent.
TEST(ChooseEventLogTest, DefaultPathThatExistsIsSent) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::string expected, ReadFile(RealLog(), kMaxEventLogBytes));
  ASSERT_GT(expected.size(), 1000u);
  HOSN_ASSERT_OK_AND_ASSIGN(EventLogChoice choice, ChooseEventLog("", true, RealLog()));
  EXPECT_EQ(choice.bytes, expected);
  EXPECT_EQ(choice.source, RealLog());
}

// An absent default path is no error: nothing is sent and the source says why.
TEST(ChooseEventLogTest, DefaultPathThatDoesNotExistIsSkipped) {
  HOSN_ASSERT_OK_AND_ASSIGN(EventLogChoice choice,
                            ChooseEventLog("", true, "/nonexistent/binary_bios_measurements"));
  EXPECT_TRUE(choice.bytes.empty());
  EXPECT_THAT(choice.source, HasSubstr("/nonexistent/binary_bios_measurements absent"));
}

// "none" and a simulator's TCTI never send the default, even when it exists.
TEST(ChooseEventLogTest, NoneAndSimulatorSendNothing) {
  HOSN_ASSERT_OK_AND_ASSIGN(EventLogChoice none, ChooseEventLog("none", true, RealLog()));
  EXPECT_TRUE(none.bytes.empty());
  EXPECT_THAT(none.source, HasSubstr("none"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLogChoice swtpm, ChooseEventLog("", false, RealLog()));
  EXPECT_TRUE(swtpm.bytes.empty());
  EXPECT_THAT(swtpm.source, HasSubstr("not the kernel's TPM"));
  // An explicit path is sent whatever the TCTI: the operator chose it.
  HOSN_ASSERT_OK_AND_ASSIGN(EventLogChoice chosen, ChooseEventLog(RealLog(), false));
  EXPECT_FALSE(chosen.bytes.empty());
}

TEST(ChooseEventLogTest, ExplicitPathMustRead) {
  EXPECT_THAT(ChooseEventLog("/nonexistent/log.bin", true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/log.bin")));
  EXPECT_THAT(ChooseEventLog("/tmp", true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  hosn::testing::ScopedTempDir dir;
  ASSERT_THAT(WriteFileAtomically(dir.Join("empty"), "", 0600), ::hosn::testing::IsOk());
  EXPECT_THAT(ChooseEventLog(dir.Join("empty"), true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

// Kernel pseudo files report size 0 (securityfs's binary_bios_measurements
// does); the reader goes to end of file, where a size-trusting read gets "".
TEST(ChooseEventLogTest, ZeroSizedPseudoFileReadToTheEnd) {
  struct stat st;
  ASSERT_EQ(::stat("/proc/self/status", &st), 0);
  ASSERT_EQ(st.st_size, 0);
  HOSN_ASSERT_OK_AND_ASSIGN(EventLogChoice choice, ChooseEventLog("/proc/self/status", true));
  EXPECT_THAT(choice.bytes, HasSubstr("Pid:"));
}

TEST(TctiUsesKernelTpmTest, DeviceAndTabrmdOnly) {
  for (const char* yes : {"device", "device:/dev/tpmrm0", "tabrmd", "tabrmd:bus_type=system"}) {
    EXPECT_TRUE(TctiUsesKernelTpm(yes)) << yes;
  }
  for (const char* no : {"swtpm:host=127.0.0.1,port=2321", "mssim", "devicex", ""}) {
    EXPECT_FALSE(TctiUsesKernelTpm(no)) << no;
  }
}

}  // namespace
}  // namespace hosn::agent
