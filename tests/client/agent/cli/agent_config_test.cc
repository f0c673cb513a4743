// Tests of hosn-agent run's settings: the JSON config file (the shipped
// example included), its refusals, flags over the file, and the exit code of
// a missing file.
#include "client/agent/cli/agent_config.h"

#include <fstream>

#include "client/agent/cli/commands.h"
#include "client/agent/cli/exit_codes.h"
#include "common/base/status_macros.h"
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

constexpr char kMinimal[] = R"({
  "keyd": {"address": "keyd:7443", "tlsCertificatePath": "node.pem",
           "tlsKeyReference": "file:/etc/node.key", "tlsCaBundlePath": "ca.pem"},
  "tpm": {"tcti": "device:/dev/tpmrm0"},
  "model": {"bundlePath": "/b", "targetPath": "/run/m", "signerCaBundlePath": "s.pem"},
  "engine": {"command": ["serve", "{model_dir}"]}
})";

absl::StatusOr<v1::AgentConfig> Resolve(const std::vector<std::string>& args) {
  HOSN_ASSIGN_OR_RETURN(ParsedArgs flags, ParseArgs(args, RunValueFlags(), RunSwitches(), {}));
  return ResolveRunConfig(flags);
}

std::string WriteConfig(const hosn::testing::ScopedTempDir& dir, const std::string& text) {
  const std::string path = dir.Join("agent.json");
  std::ofstream(path) << text;
  return path;
}

// The example shipped for the systemd unit parses and validates as is.
TEST(AgentConfigTest, ShippedExampleIsValid) {
  const std::string path = hosn::testing::SourcePath("deploy/config/hosn-agent.example.json");
  HOSN_ASSERT_OK_AND_ASSIGN(v1::AgentConfig config, Resolve({"--config=" + path}));
  EXPECT_EQ(config.keyd().address(), "keyd.example.internal:7443");
  EXPECT_EQ(config.keyd().tls_key_reference(), "credential:tls-key");
  EXPECT_EQ(config.keyd().retry_deadline(), "300s");
  EXPECT_EQ(config.tpm().tcti(), "device:/dev/tpmrm0");
  EXPECT_EQ(config.model().target_path(), "/run/hosn-model/model");
  EXPECT_EQ(config.engine().mode(), "supervise");
  EXPECT_EQ(config.engine().command(0), "vllm");
  EXPECT_TRUE(config.tpm().event_log_path().empty());  // the kernel's log by default
}

// Unset optional fields get the flags' defaults; proto field names work too.
TEST(AgentConfigTest, DefaultsAndProtoFieldNames) {
  hosn::testing::ScopedTempDir dir;
  HOSN_ASSERT_OK_AND_ASSIGN(v1::AgentConfig config,
                            Resolve({"--config", WriteConfig(dir, kMinimal)}));
  EXPECT_EQ(config.keyd().retry_deadline(), "60s");
  EXPECT_EQ(config.keyd().rpc_timeout(), "10s");
  EXPECT_EQ(config.tpm().pcrs(), "sha256:0,1,2,3,4,5,6,7");
  EXPECT_EQ(config.engine().mode(), "exec");
  HOSN_ASSERT_OK_AND_ASSIGN(v1::AgentConfig snake,
                            ParseAgentConfigJson(R"({"tpm": {"event_log_path": "none"}})"));
  EXPECT_EQ(snake.tpm().event_log_path(), "none");
}

// A misspelt or unknown field is refused, never silently defaulted.
TEST(AgentConfigTest, UnknownFieldRefused) {
  EXPECT_THAT(ParseAgentConfigJson(R"({"keyd": {"adress": "keyd:7443"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("adress")));
  EXPECT_THAT(ParseAgentConfigJson(R"({"tlsKey": "-----BEGIN PRIVATE KEY-----"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tlsKey")));
}

TEST(AgentConfigTest, WrongTypesAndBadJsonRefused) {
  for (const char* bad :
       {R"({"keyd": {"address": 7443}})", R"({"model": {"decryptThreads": "many"}})",
        R"({"model": {"decryptThreads": -1}})", R"({"engine": {"command": "vllm"}})",
        R"({"tpm": ["device"]})", R"({"keyd": )", "not json"}) {
    EXPECT_THAT(ParseAgentConfigJson(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config: ")))
        << bad;
  }
}

// Validation names the JSON field and its flag.
TEST(AgentConfigTest, BadValuesNamed) {
  hosn::testing::ScopedTempDir dir;
  const std::string path = WriteConfig(dir, kMinimal);
  EXPECT_THAT(Resolve({"--config", path, "--tls-key", "-----BEGIN PRIVATE KEY-----"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("keyd.tlsKeyReference (--tls-key): want file:/path")));
  EXPECT_THAT(
      Resolve({"--config", path, "--deadline", "soon"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keyd.retryDeadline (--deadline)")));
  EXPECT_THAT(Resolve({"--config", path, "--pcrs", "sha256:24"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tpm.pcrs (--pcrs)")));
  EXPECT_THAT(Resolve({"--config", path, "--mode", "daemon"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("engine.mode (--mode)")));
  EXPECT_THAT(Resolve({"--config", path, "--threads", "x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(--threads)")));
  // Without a file, the first missing required setting is named.
  EXPECT_THAT(Resolve({"--", "serve"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("keyd.address (--keyd): missing")));
  EXPECT_THAT(ParseArgs({"--config", path}, RunValueFlags(), RunSwitches(), {}), IsOk());
  EXPECT_THAT(Resolve({"--keyd=k:1", "--tls-cert=c", "--tls-key=file:k", "--tls-ca=a",
                       "--tcti=device", "--bundle=b", "--target=t", "--signer-ca=s"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("engine.command")));
}

// A flag on the command line wins over the file; "--" replaces the command.
TEST(AgentConfigTest, FlagsOverrideFile) {
  hosn::testing::ScopedTempDir dir;
  HOSN_ASSERT_OK_AND_ASSIGN(
      v1::AgentConfig config,
      Resolve({"--config", WriteConfig(dir, kMinimal), "--keyd", "other:1", "--tls-key",
               "credential:tls-key", "--supervise", "--threads", "3", "--event-log=none", "--",
               "tgi", "--model-id", "{model_dir}"}));
  EXPECT_EQ(config.keyd().address(), "other:1");
  EXPECT_EQ(config.keyd().tls_key_reference(), "credential:tls-key");
  EXPECT_EQ(config.keyd().tls_certificate_path(), "node.pem");  // not overridden: the file's
  EXPECT_EQ(config.engine().mode(), "supervise");
  EXPECT_EQ(config.model().decrypt_threads(), 3u);
  EXPECT_EQ(config.tpm().event_log_path(), "none");
  EXPECT_THAT(config.engine().command(), ElementsAre("tgi", "--model-id", "{model_dir}"));
}

// A missing config file is a usage error (exit 2), before anything runs.
TEST(AgentConfigTest, MissingFileIsUsageExit) {
  EXPECT_THAT(Resolve({"--config=/nonexistent/hosn-agent.json"}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("config: open /nonexistent/hosn-agent.json")));
  EXPECT_EQ(RunCommand({"--config=/nonexistent/hosn-agent.json"}), kExitUsage);
  EXPECT_EQ(kExitUsage, 2);
}

}  // namespace
}  // namespace hosn::agent
