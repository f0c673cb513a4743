// A hosn-keyd child process for tests (shared by tests/server/keyd and
// tests/client/ctl): started from the built binary with a
// config file, its stderr captured to a file, its ports read from the ready
// file it writes once serving. The destructor kills it if it still runs.
#ifndef HOSN_TESTS_TESTING_KEYD_PROCESS_H_
#define HOSN_TESTS_TESTING_KEYD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hosn::testing {

class KeydProcess {
 public:
  // Starts "<build>/server/keyd/hosn-keyd --config=<config> --state_dir=<dir>
  // --ready_file=<dir>/ready <extra...>" with stderr to <dir>/keyd.log.
  KeydProcess(const std::string& config, const std::string& dir,
              const std::vector<std::string>& extra = {});
  ~KeydProcess();

  // Waits for the ready file. DeadlineExceeded on timeout, Aborted if the
  // process exited first.
  absl::Status WaitReady(absl::Duration timeout);
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits for the exit; the exit code, or 128+signal if
  // killed; DeadlineExceeded if it did not exit in time.
  absl::StatusOr<int> Stop(int signal, absl::Duration timeout);
  // Waits for the process to exit by itself.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);

  std::string Log() const;

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

// GET http://127.0.0.1:<port><path>; the response body, or Unavailable.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

}  // namespace hosn::testing

#endif  // HOSN_TESTS_TESTING_KEYD_PROCESS_H_
