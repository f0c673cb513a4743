// Which TCG event log `hosn-agent run` sends with its quote, and reading it
// (docs/agent.md). By default the agent sends the kernel's copy of the boot
// log when the node has one, so a class whose policy requires an event log
// works without any setting; "none" turns that off, a path names the file.
//
// Stateless functions; safe from any thread.
#ifndef HOSN_CLIENT_AGENT_CLI_EVENT_LOG_SOURCE_H_
#define HOSN_CLIENT_AGENT_CLI_EVENT_LOG_SOURCE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace hosn::agent {

// Where Linux exposes the firmware's TCG event log (securityfs).
inline constexpr char kKernelEventLogPath[] = "/sys/kernel/security/tpm0/binary_bios_measurements";
// Real logs are tens of KiB; the daemon refuses larger requests anyway.
inline constexpr size_t kMaxEventLogBytes = 16 << 20;

struct EventLogChoice {
  std::string bytes;  // the log to send; empty: none is sent
  // The file read, or why none is sent ("disabled (none)", "<path> absent",
  // "not sent: event log <path>: <error>"), for the log line and for a
  // denial's hint.
  std::string source;
};

// True if `tcti` reaches the TPM the kernel drives ("device", "device:...",
// "tabrmd", "tabrmd:..."), the one the kernel's event log describes. A
// simulator (swtpm:, mssim:) has no such log: the host's would mismatch.
bool TctiUsesKernelTpm(const std::string& tcti);

// `setting` is tpm.eventLogPath / --event-log:
//   "none": no log.
//   "":     if `kernel_tpm`, `default_path` when it exists, is readable and
//           not empty; otherwise no log, never an error (a node without a
//           TPM log may still match a class that does not require one; the
//           source says why).
//   a path: that file. NotFound, PermissionDenied, OutOfRange (above
//           kMaxEventLogBytes) or InvalidArgument (not a regular file, or
//           empty), each naming the path: the operator asked for it.
absl::StatusOr<EventLogChoice> ChooseEventLog(
    const std::string& setting, bool kernel_tpm,
    const std::string& default_path = kKernelEventLogPath);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_EVENT_LOG_SOURCE_H_
