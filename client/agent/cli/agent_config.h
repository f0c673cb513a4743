// The settings of `hosn-agent run`: a JSON file given with --config (schema
// proto/hosn/agent/v1/agent_config.proto, docs/agent.md) and the flags over
// it. Precedence: a flag on the command line, then the file, then the
// default; the words after "--" replace the file's engine command.
//
// Every error names the field as "<json.path> (--flag)", so an operator
// finds it in the file or on the command line alike. The file holds no
// secret: the TLS key must be a file:/credential: reference.
//
// Stateless functions; safe from any thread.
#ifndef HOSN_CLIENT_AGENT_CLI_AGENT_CONFIG_H_
#define HOSN_CLIENT_AGENT_CLI_AGENT_CONFIG_H_

#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "client/agent/cli/flags.h"
#include "hosn/agent/v1/agent_config.pb.h"

namespace hosn::agent {

// The value flags and switches `run` accepts (for ParseArgs).
const std::set<std::string>& RunValueFlags();
const std::set<std::string>& RunSwitches();

// Parses JSON `text`; nothing is defaulted or checked. InvalidArgument
// "config: ..." for bad JSON, an unknown field or a value of the wrong type.
absl::StatusOr<v1::AgentConfig> ParseAgentConfigJson(std::string_view text);

// Reads and parses the file at `path`. NotFound if it does not exist, the
// errors of ReadFile otherwise, and those of ParseAgentConfigJson (prefixed
// with the path).
absl::StatusOr<v1::AgentConfig> LoadAgentConfigFile(const std::string& path);

// Writes every flag present in `flags` over its field of `config`
// (--supervise sets engine.mode; the words after "--", if any, replace
// engine.command). InvalidArgument naming --threads if it is not a number.
absl::Status ApplyRunFlags(const ParsedArgs& flags, v1::AgentConfig& config);

// Fills unset optional fields with their defaults (see the .proto).
void ApplyAgentDefaults(v1::AgentConfig& config);

// InvalidArgument naming the first missing or bad field.
absl::Status ValidateAgentConfig(const v1::AgentConfig& config);

// The whole resolution for `run`: the file of --config if given, the flags
// over it, defaults, validation. NotFound if the --config file is missing.
absl::StatusOr<v1::AgentConfig> ResolveRunConfig(const ParsedArgs& flags);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_AGENT_CONFIG_H_
