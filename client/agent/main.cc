// hosn-agent: the node-side agent (docs/agent.md). A thin main over the
// subcommands in client/agent/cli/.
#include <cstdio>
#include <string>
#include <vector>

#include "client/agent/cli/commands.h"
#include "client/agent/cli/exit_codes.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::string command = args.empty() ? "" : args[0];
  if (!args.empty()) args.erase(args.begin());
  if (command == "run") return hosn::agent::RunCommand(args);
  if (command == "tpm-info") return hosn::agent::TpmInfoCommand(args);
  if (command == "activate") return hosn::agent::ActivateCommand(args);
  std::fprintf(stderr, "usage: hosn-agent run|tpm-info|activate ... (see docs/agent.md)\n");
  return hosn::agent::kExitUsage;
}
