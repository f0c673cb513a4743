#include "client/agent/engine/engine_launcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/base/status_macros.h"

namespace hosn::agent {
namespace {

// The child's pid for the signal forwarder; 0 when no child runs.
std::atomic<pid_t> g_engine_pid{0};

void ForwardSignal(int signal_number) {
  const pid_t pid = g_engine_pid.load();
  if (pid > 0) ::kill(pid, signal_number);
}

// Runs in the child after fork (async-signal-safe calls only): closes every
// inherited descriptor above stderr and executes the engine.
[[noreturn]] void ExecInChild(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  ::close_range(3, ~0U, 0);
  ::execvp(args[0], args.data());
  _exit(127);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandEngineCommand(const std::vector<std::string>& argv,
                                                             const std::string& model_dir) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("empty engine command");
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (const std::string& arg : argv) {
    out.push_back(absl::StrReplaceAll(arg, {{"{model_dir}", model_dir}}));
  }
  return out;
}

absl::Status ExecEngine(const std::vector<std::string>& argv, const std::string& model_dir) {
  HOSN_ASSIGN_OR_RETURN(std::vector<std::string> expanded, ExpandEngineCommand(argv, model_dir));
  std::vector<char*> args;
  for (std::string& arg : expanded) args.push_back(arg.data());
  args.push_back(nullptr);
  ::close_range(3, ~0U, 0);
  ::execvp(args[0], args.data());
  const int err = errno;
  const std::string message =
      absl::StrCat("cannot execute engine ", expanded[0], ": ", std::strerror(err));
  return err == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
}

absl::StatusOr<int> SuperviseEngine(const std::vector<std::string>& argv,
                                    const std::string& model_dir) {
  auto remove_plaintext = [&model_dir] {
    std::error_code ignored;
    std::filesystem::remove_all(model_dir, ignored);
  };
  auto expanded = ExpandEngineCommand(argv, model_dir);
  if (!expanded.ok()) {
    remove_plaintext();
    return expanded.status();
  }

  // Forward termination requests to the engine rather than dying before it:
  // the plaintext must outlive the engine only until the engine is gone.
  struct sigaction forward = {};
  forward.sa_handler = ForwardSignal;
  sigemptyset(&forward.sa_mask);
  struct sigaction old_term, old_int, old_hup;
  ::sigaction(SIGTERM, &forward, &old_term);
  ::sigaction(SIGINT, &forward, &old_int);
  ::sigaction(SIGHUP, &forward, &old_hup);

  const pid_t pid = ::fork();
  if (pid == 0) {
    // Restore default dispositions in the engine.
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ExecInChild(*expanded);
  }
  int exit_code = -1;
  absl::Status status = absl::OkStatus();
  if (pid < 0) {
    status = absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  } else {
    g_engine_pid.store(pid);
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    g_engine_pid.store(0);
    if (WIFEXITED(wait_status)) {
      exit_code = WEXITSTATUS(wait_status);
    } else if (WIFSIGNALED(wait_status)) {
      exit_code = 128 + WTERMSIG(wait_status);
    }
  }

  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  remove_plaintext();
  if (!status.ok()) return status;
  return exit_code;
}

}  // namespace hosn::agent
