#include "client/agent/engine/engine_launcher.h"

#include <fcntl.h>
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

// The message of an engine that could not be executed.
absl::Status CannotExecute(const std::string& engine, int err) {
  const std::string message =
      absl::StrCat("cannot execute engine ", engine, ": ", std::strerror(err));
  return err == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
}

// Runs in the child after fork (async-signal-safe calls only): closes every
// inherited descriptor above stderr except `error_fd` (close-on-exec, so
// the engine does not get it either), executes the engine, and on failure
// writes errno to `error_fd` so that the parent can tell "not started" from
// an engine's own exit code.
[[noreturn]] void ExecInChild(char* const* args, int error_fd) {
  if (error_fd > 3) ::close_range(3, static_cast<unsigned>(error_fd) - 1, 0);
  ::close_range(static_cast<unsigned>(error_fd) + 1, ~0U, 0);
  ::execvp(args[0], args);
  const int err = errno;
  [[maybe_unused]] ssize_t ignored = ::write(error_fd, &err, sizeof(err));
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
  return CannotExecute(expanded[0], errno);
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

  // Built before fork: the child may only make async-signal-safe calls.
  std::vector<char*> args;
  for (std::string& arg : *expanded) args.push_back(arg.data());
  args.push_back(nullptr);
  // The child reports a failed exec through this pipe; a successful exec
  // closes it (O_CLOEXEC), so the parent reads end of file.
  int exec_error[2] = {-1, -1};
  const bool piped = ::pipe2(exec_error, O_CLOEXEC) == 0;
  const pid_t pid = piped ? ::fork() : -1;
  if (pid == 0) {
    // Restore default dispositions in the engine.
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ::close(exec_error[0]);
    ExecInChild(args.data(), exec_error[1]);
  }
  int exit_code = -1;
  absl::Status status = absl::OkStatus();
  if (pid < 0) {
    status = absl::InternalError(absl::StrCat(piped ? "fork: " : "pipe: ", std::strerror(errno)));
  } else {
    g_engine_pid.store(pid);
    ::close(exec_error[1]);
    exec_error[1] = -1;
    int err = 0;
    ssize_t got = 0;
    do {
      got = ::read(exec_error[0], &err, sizeof(err));
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof(err))) status = CannotExecute((*expanded)[0], err);
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    g_engine_pid.store(0);
    if (!status.ok()) {
      // Not started: the child's 127 is not an engine's exit code.
    } else if (WIFEXITED(wait_status)) {
      exit_code = WEXITSTATUS(wait_status);
    } else if (WIFSIGNALED(wait_status)) {
      exit_code = 128 + WTERMSIG(wait_status);
    }
  }

  for (int fd : exec_error) {
    if (fd >= 0) ::close(fd);
  }
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  remove_plaintext();
  if (!status.ok()) return status;
  return exit_code;
}

}  // namespace hosn::agent
