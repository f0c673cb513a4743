// A small command-line parser for hosn-agent's subcommands: "--name value",
// "--name=value", bare switches, repeated flags, and "--" after which every
// argument belongs to the engine command line untouched.
//
// Stateless and thread-safe.
#ifndef HOSN_CLIENT_AGENT_CLI_FLAGS_H_
#define HOSN_CLIENT_AGENT_CLI_FLAGS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tpm/tpm_types.h"

namespace hosn::agent {

struct ParsedArgs {
  std::map<std::string, std::vector<std::string>> values;  // flag -> every value given
  std::set<std::string> switches;                          // switches present
  std::vector<std::string> rest;                           // everything after "--"

  bool Has(const std::string& name) const { return values.count(name) != 0; }
  // The last value of `name`, or `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
};

// Parses `args`. InvalidArgument naming the flag for an unknown flag, a
// value flag without a value, a switch with a value, a positional argument
// before "--", or a missing flag of `required`.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::set<std::string>& value_flags,
                                     const std::set<std::string>& switches,
                                     const std::set<std::string>& required);

// "sha256:0,1,2+sha384:7" -> selection. InvalidArgument for an unknown bank,
// a PCR above 23, a repeated or unsorted index, or an empty bank.
absl::StatusOr<tpm::PcrSelection> ParsePcrSelection(const std::string& text);

// "60s", "2m", "500ms", "90" (seconds). InvalidArgument if not positive.
absl::StatusOr<absl::Duration> ParsePositiveDuration(const std::string& text);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_FLAGS_H_
