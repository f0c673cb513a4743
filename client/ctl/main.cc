// hosnctl: the operator's command-line tool. A thin main over the command
// libraries in client/ctl/.
#include <cstdio>
#include <string>
#include <vector>

#include "client/ctl/audit_command.h"
#include "client/ctl/bundle_command.h"
#include "client/ctl/lineage_command.h"
#include "client/ctl/node_command.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "node" || args[0] == "policy")) {
    const std::string group = args[0];
    args.erase(args.begin());
    return group == "node" ? hosn::ctl::RunNodeCommand(args) : hosn::ctl::RunPolicyCommand(args);
  }
  if (!args.empty() && args[0] == "audit") {
    args.erase(args.begin());
    return hosn::ctl::RunAuditCommand(args);
  }
  if (!args.empty() && args[0] == "lineage") {
    args.erase(args.begin());
    return hosn::ctl::RunLineageCommand(args, stdout, stderr);
  }
  if (args.empty() || args[0] != "bundle") {
    std::fprintf(stderr, "usage: hosnctl bundle pack|verify|inspect|decrypt ...\n");
    return hosn::ctl::kExitUsage;
  }
  args.erase(args.begin());
  return hosn::ctl::RunBundleCommand(args, stdout, stderr);
}
