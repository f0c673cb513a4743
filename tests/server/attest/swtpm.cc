#include "tests/server/attest/swtpm.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/tpm/marshal.h"

extern char** environ;

namespace hosn::attest::testing {
namespace {

// A port where both `port` and `port + 1` could be bound a moment ago.
int PickPortPair() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin_port);
    int fd2 = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_port = htons(static_cast<uint16_t>(port + 1));
    const bool ok =
        port < 65535 && bind(fd2, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd2);
    close(fd);
    if (ok) return port;
  }
  return 0;
}

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Spawns argv with stdout and stderr sent to `log`, extra environment `env`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log,
                            const std::vector<std::string>& env) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage(env);
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot spawn ", argv[0]));
  return pid;
}

std::string Tail(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, 1 << 20);
  if (!text.ok()) return "";
  return text->size() > 600 ? text->substr(text->size() - 600) : *text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Swtpm>> Swtpm::Start() {
  std::unique_ptr<Swtpm> tpm(new Swtpm());
  absl::Status launched;
  for (int attempt = 0; attempt < 3; ++attempt) {
    launched = tpm->Launch();
    if (launched.ok()) break;
  }
  HOSN_RETURN_IF_ERROR(launched);
  HOSN_RETURN_IF_ERROR(tpm->Run({"tpm2_createek", "-c", tpm->dir_.Join("ek.ctx"), "-G", "rsa", "-u",
                                 tpm->dir_.Join("ek.pub")}));
  return tpm;
}

absl::Status Swtpm::Launch() {
  port_ = PickPortPair();
  if (port_ == 0) return absl::InternalError("no free port pair");
  const std::string state = dir_.Join("state");
  mkdir(state.c_str(), 0700);
  const std::string log = dir_.Join("swtpm.log");
  HOSN_ASSIGN_OR_RETURN(
      pid_, Spawn({"swtpm", "socket", "--tpm2", "--server",
                   absl::StrCat("type=tcp,port=", port_, ",bindaddr=127.0.0.1"), "--ctrl",
                   absl::StrCat("type=tcp,port=", port_ + 1, ",bindaddr=127.0.0.1"), "--flags",
                   "not-need-init,startup-clear", "--tpmstate", absl::StrCat("dir=", state)},
                  log, {}));
  for (int i = 0; i < 100; ++i) {
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("swtpm exited: ", Tail(log)));
    }
    if (CanConnect(port_)) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::InternalError(absl::StrCat("swtpm did not come up: ", Tail(log)));
}

Swtpm::~Swtpm() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int wstatus = 0;
    waitpid(pid_, &wstatus, 0);
  }
}

absl::Status Swtpm::Run(const std::vector<std::string>& argv) {
  const std::string tcti = absl::StrCat("TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=", port_);
  const std::string log = dir_.Join(absl::StrCat("cmd", counter_++, ".log"));
  for (const std::vector<std::string>& command :
       {argv, std::vector<std::string>{"tpm2_flushcontext", "-t"}}) {
    HOSN_ASSIGN_OR_RETURN(pid_t pid, Spawn(command, log, {tcti}));
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
      return absl::InternalError(absl::StrCat(command[0], " failed: ", Tail(log)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Swtpm::Ak> Swtpm::CreateAk(const std::string& name, const std::string& type,
                                          const std::string& scheme) {
  Ak ak;
  ak.context = dir_.Join(name + ".ctx");
  const std::string pub = dir_.Join(name + ".pub");
  HOSN_RETURN_IF_ERROR(Run({"tpm2_createak", "-C", dir_.Join("ek.ctx"), "-c", ak.context, "-G",
                            type, "-g", "sha256", "-s", scheme, "-u", pub, "-f", "tss"}));
  HOSN_ASSIGN_OR_RETURN(std::string bytes, ReadFile(pub, 4096));
  HOSN_ASSIGN_OR_RETURN(
      TPMT_PUBLIC area,
      tpm::Unmarshal2bPublic({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
  HOSN_ASSIGN_OR_RETURN(ak.tpmt_public, tpm::MarshalPublic(area));
  return ak;
}

absl::StatusOr<Swtpm::Quote> Swtpm::MakeQuote(const Ak& ak, const std::string& selection,
                                              std::span<const uint8_t> qualifying_data) {
  const std::string base = dir_.Join(absl::StrCat("quote", counter_));
  HOSN_RETURN_IF_ERROR(
      Run({"tpm2_quote", "-c", ak.context, "-l", selection, "-q", HexEncode(qualifying_data), "-m",
           base + ".msg", "-s", base + ".sig", "-o", base + ".pcr", "-g", "sha256"}));
  Quote quote;
  HOSN_ASSIGN_OR_RETURN(std::string msg, ReadFile(base + ".msg", 4096));
  HOSN_ASSIGN_OR_RETURN(std::string sig, ReadFile(base + ".sig", 4096));
  HOSN_ASSIGN_OR_RETURN(std::string pcr, ReadFile(base + ".pcr", 1 << 16));
  quote.attest.assign(msg.begin(), msg.end());
  quote.signature.assign(sig.begin(), sig.end());
  HOSN_ASSIGN_OR_RETURN(
      quote.pcrs,
      tpm::ParseTpm2ToolsPcrFile({reinterpret_cast<const uint8_t*>(pcr.data()), pcr.size()}));
  return quote;
}

absl::Status Swtpm::Extend(uint32_t pcr, const std::string& bank, std::span<const uint8_t> digest) {
  return Run({"tpm2_pcrextend", absl::StrCat(pcr, ":", bank, "=", HexEncode(digest))});
}

}  // namespace hosn::attest::testing
