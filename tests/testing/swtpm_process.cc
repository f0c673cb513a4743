#include "tests/testing/swtpm_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"

extern char** environ;

namespace hosn::testing {
namespace {

// Finds a port P such that P and P+1 are both free on 127.0.0.1 right now.
absl::StatusOr<int> FindPortPair() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    UniqueFd first(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    UniqueFd second(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!first.valid() || !second.valid()) {
      return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(first.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) continue;
    socklen_t len = sizeof(addr);
    if (::getsockname(first.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;
    const int port = ntohs(addr.sin_port);
    if (port >= 65535) continue;
    addr.sin_port = htons(static_cast<uint16_t>(port + 1));
    if (::bind(second.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return port;
  }
  return absl::UnavailableError("no pair of free loopback ports");
}

bool CanConnect(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SwtpmProcess>> SwtpmProcess::Start(const std::string& state_dir) {
  absl::Status last_error = absl::UnavailableError("swtpm not started");
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = FindPortPair();
    if (!port.ok()) return port.status();

    std::vector<std::string> args = {
        "swtpm",
        "socket",
        "--tpm2",
        "--server",
        absl::StrCat("type=tcp,bindaddr=127.0.0.1,port=", *port),
        "--ctrl",
        absl::StrCat("type=tcp,bindaddr=127.0.0.1,port=", *port + 1),
        "--tpmstate",
        absl::StrCat("dir=", state_dir),
        "--flags",
        "not-need-init,startup-clear",
    };
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, "swtpm", nullptr, nullptr, argv.data(), environ);
    if (rc != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot start swtpm (is the swtpm package installed?): ", std::strerror(rc)));
    }
    auto process = std::unique_ptr<SwtpmProcess>(new SwtpmProcess(pid, *port));

    // Up when both channels accept; gone if it lost a port race.
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        process->pid_ = -1;
        last_error = absl::InternalError(absl::StrCat("swtpm exited at start-up, status ", status));
        break;
      }
      if (CanConnect(*port) && CanConnect(*port + 1)) return process;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (process->pid_ > 0) return absl::DeadlineExceededError("swtpm did not come up within 2 s");
  }
  return last_error;
}

SwtpmProcess::~SwtpmProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::string SwtpmProcess::tcti() const {
  return absl::StrCat("swtpm:host=127.0.0.1,port=", server_port_);
}

}  // namespace hosn::testing
