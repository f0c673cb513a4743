// hosnctl: the operator's command-line tool. A thin main over the command
// libraries in client/ctl/.
#include <cstdio>
#include <string>
#include <vector>

#include "client/ctl/bundle_command.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] != "bundle") {
    std::fprintf(stderr, "usage: hosnctl bundle pack|verify|inspect|decrypt ...\n");
    return hosn::ctl::kExitUsage;
  }
  args.erase(args.begin());
  return hosn::ctl::RunBundleCommand(args, stdout, stderr);
}
