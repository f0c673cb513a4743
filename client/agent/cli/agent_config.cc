#include "client/agent/cli/agent_config.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace hosn::agent {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

// One string setting: its flag, its place in the file, and whether `run`
// cannot start without it. The single table keeps flags, file fields and
// error messages from drifting apart.
struct StringSetting {
  const char* flag;
  const char* field;  // JSON path, as the operator writes it
  bool required;
  std::string* (*get)(v1::AgentConfig&);
};

constexpr StringSetting kStringSettings[] = {
    {"keyd", "keyd.address", true,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_address(); }},
    {"tls-cert", "keyd.tlsCertificatePath", true,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_tls_certificate_path(); }},
    {"tls-key", "keyd.tlsKeyReference", true,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_tls_key_reference(); }},
    {"tls-ca", "keyd.tlsCaBundlePath", true,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_tls_ca_bundle_path(); }},
    {"tls-server-name", "keyd.tlsServerName", false,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_tls_server_name(); }},
    {"deadline", "keyd.retryDeadline", false,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_retry_deadline(); }},
    {"rpc-timeout", "keyd.rpcTimeout", false,
     [](v1::AgentConfig& c) { return c.mutable_keyd()->mutable_rpc_timeout(); }},
    {"tcti", "tpm.tcti", true, [](v1::AgentConfig& c) { return c.mutable_tpm()->mutable_tcti(); }},
    {"pcrs", "tpm.pcrs", false, [](v1::AgentConfig& c) { return c.mutable_tpm()->mutable_pcrs(); }},
    {"event-log", "tpm.eventLogPath", false,
     [](v1::AgentConfig& c) { return c.mutable_tpm()->mutable_event_log_path(); }},
    {"bundle", "model.bundlePath", true,
     [](v1::AgentConfig& c) { return c.mutable_model()->mutable_bundle_path(); }},
    {"target", "model.targetPath", true,
     [](v1::AgentConfig& c) { return c.mutable_model()->mutable_target_path(); }},
    {"signer-ca", "model.signerCaBundlePath", true,
     [](v1::AgentConfig& c) { return c.mutable_model()->mutable_signer_ca_bundle_path(); }},
    {"mode", "engine.mode", false,
     [](v1::AgentConfig& c) { return c.mutable_engine()->mutable_mode(); }},
    {"timings-json", "timingsJsonPath", false,
     [](v1::AgentConfig& c) { return c.mutable_timings_json_path(); }},
};

// Protobuf's JSON parser takes a lone string for a repeated field; a whole
// command line written as one string would then exec a program named
// "vllm serve ...", so engine.command must be a JSON list.
absl::Status CheckCommandIsList(const std::string& text) {
  google::protobuf::Value root;
  if (!google::protobuf::util::JsonStringToMessage(text, &root).ok()) return absl::OkStatus();
  const auto& top = root.struct_value().fields();
  const auto engine = top.find("engine");
  if (engine == top.end()) return absl::OkStatus();
  const auto& fields = engine->second.struct_value().fields();
  const auto command = fields.find("command");
  if (command != fields.end() &&
      command->second.kind_case() != google::protobuf::Value::kListValue) {
    return absl::InvalidArgumentError("config: engine.command: want a list of words");
  }
  return absl::OkStatus();
}

absl::Status Bad(const char* field, const char* flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " (--", flag, "): ", why));
}

}  // namespace

const std::set<std::string>& RunValueFlags() {
  static const auto* const flags = [] {
    auto* names = new std::set<std::string>{"config", "threads"};
    for (const StringSetting& s : kStringSettings) names->insert(s.flag);
    return names;
  }();
  return *flags;
}

const std::set<std::string>& RunSwitches() {
  static const auto* const switches = new std::set<std::string>{"supervise"};
  return *switches;
}

absl::StatusOr<v1::AgentConfig> ParseAgentConfigJson(std::string_view text) {
  v1::AgentConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field must not silently become a default
  auto status = google::protobuf::util::JsonStringToMessage(std::string(text), &config, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", std::string(status.message())));
  }
  HOSN_RETURN_IF_ERROR(CheckCommandIsList(std::string(text)));
  return config;
}

absl::StatusOr<v1::AgentConfig> LoadAgentConfigFile(const std::string& path) {
  auto text = ReadFile(path, kMaxConfigBytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat("config: ", text.status().message()));
  }
  auto config = ParseAgentConfigJson(*text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::Status ApplyRunFlags(const ParsedArgs& flags, v1::AgentConfig& config) {
  for (const StringSetting& s : kStringSettings) {
    if (flags.Has(s.flag)) *s.get(config) = flags.Get(s.flag);
  }
  if (flags.switches.count("supervise") != 0) config.mutable_engine()->set_mode("supervise");
  if (flags.Has("threads")) {
    uint32_t threads = 0;
    if (!absl::SimpleAtoi(ToAbsl(flags.Get("threads")), &threads)) {
      return Bad("model.decryptThreads", "threads", "want a number");
    }
    config.mutable_model()->set_decrypt_threads(threads);
  }
  if (!flags.rest.empty()) {
    config.mutable_engine()->mutable_command()->Assign(flags.rest.begin(), flags.rest.end());
  }
  return absl::OkStatus();
}

void ApplyAgentDefaults(v1::AgentConfig& config) {
  v1::KeydSettings& keyd = *config.mutable_keyd();
  if (keyd.retry_deadline().empty()) keyd.set_retry_deadline("60s");
  if (keyd.rpc_timeout().empty()) keyd.set_rpc_timeout("10s");
  if (config.tpm().pcrs().empty()) config.mutable_tpm()->set_pcrs("sha256:0,1,2,3,4,5,6,7");
  if (config.engine().mode().empty()) config.mutable_engine()->set_mode("exec");
}

absl::Status ValidateAgentConfig(const v1::AgentConfig& config) {
  v1::AgentConfig copy = config;  // the table's accessors are mutable ones
  for (const StringSetting& s : kStringSettings) {
    if (s.required && s.get(copy)->empty()) return Bad(s.field, s.flag, "missing");
  }
  const std::string& key = config.keyd().tls_key_reference();
  if (!absl::StartsWith(key, "file:") && !absl::StartsWith(key, "credential:")) {
    return Bad("keyd.tlsKeyReference", "tls-key",
               "want file:/path or credential:NAME, never the key itself");
  }
  if (auto d = ParsePositiveDuration(config.keyd().retry_deadline()); !d.ok()) {
    return Bad("keyd.retryDeadline", "deadline", d.status().message());
  }
  if (auto d = ParsePositiveDuration(config.keyd().rpc_timeout()); !d.ok()) {
    return Bad("keyd.rpcTimeout", "rpc-timeout", d.status().message());
  }
  if (auto pcrs = ParsePcrSelection(config.tpm().pcrs()); !pcrs.ok()) {
    return Bad("tpm.pcrs", "pcrs", pcrs.status().message());
  }
  const std::string& mode = config.engine().mode();
  if (mode != "exec" && mode != "supervise")
    return Bad("engine.mode", "mode", "want exec or supervise");
  if (config.engine().command().empty() || config.engine().command(0).empty()) {
    return absl::InvalidArgumentError("engine.command (words after --): missing");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::AgentConfig> ResolveRunConfig(const ParsedArgs& flags) {
  v1::AgentConfig config;
  if (flags.Has("config")) {
    HOSN_ASSIGN_OR_RETURN(config, LoadAgentConfigFile(flags.Get("config")));
  }
  HOSN_RETURN_IF_ERROR(ApplyRunFlags(flags, config));
  ApplyAgentDefaults(config);
  HOSN_RETURN_IF_ERROR(ValidateAgentConfig(config));
  return config;
}

}  // namespace hosn::agent
