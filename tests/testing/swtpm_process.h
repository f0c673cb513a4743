// SwtpmProcess: a real software TPM 2.0 (swtpm) for one test, on loopback.
//
// Start() picks two consecutive free TCP ports on 127.0.0.1 (the swtpm TCTI
// always uses server port + 1 for the control channel), starts
// `swtpm socket --tpm2` bound to them, and waits until both answer. Another
// process can take a port between our probe and swtpm's bind; swtpm then
// exits at once and Start() tries again with new ports. The TPM state lives
// in a caller-owned folder; the process is killed and reaped in the
// destructor.
//
// Not thread-safe; one owner.
#ifndef HOSN_TESTS_TESTING_SWTPM_PROCESS_H_
#define HOSN_TESTS_TESTING_SWTPM_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace hosn::testing {

class SwtpmProcess {
 public:
  // `state_dir` must exist; the TPM's persistent state goes there, so a
  // second Start() on the same folder is the same TPM after a reboot.
  static absl::StatusOr<std::unique_ptr<SwtpmProcess>> Start(const std::string& state_dir);
  ~SwtpmProcess();
  SwtpmProcess(const SwtpmProcess&) = delete;
  SwtpmProcess& operator=(const SwtpmProcess&) = delete;

  int server_port() const { return server_port_; }
  // A tpm2-tss TCTI configuration string for this TPM, for Tss2_TctiLdr:
  // "swtpm:host=127.0.0.1,port=N".
  std::string tcti() const;

 private:
  SwtpmProcess(pid_t pid, int server_port) : pid_(pid), server_port_(server_port) {}
  pid_t pid_;
  int server_port_;
};

}  // namespace hosn::testing

#endif  // HOSN_TESTS_TESTING_SWTPM_PROCESS_H_
