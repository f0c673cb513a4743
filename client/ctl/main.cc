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
    const bool asked =
        !args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help");
    std::fprintf(
        asked ? stdout : stderr,
        "usage: hosnctl COMMAND ...\n"
        "  bundle pack|verify|inspect|decrypt   model bundles (docs/bundle-format.md)\n"
        "  node enroll|revoke                   the fleet (docs/agent.md)\n"
        "  policy set                           a node class's boot policy\n"
        "  lineage sign|verify|quote-nonce      fine-tune lineage (docs/lineage.md)\n"
        "  audit export|verify                  the daemon's audit log (docs/audit-log.md)\n");
    return asked ? 0 : hosn::ctl::kExitUsage;
  }
  args.erase(args.begin());
  return hosn::ctl::RunBundleCommand(args, stdout, stderr);
}
