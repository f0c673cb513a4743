#include "client/agent/cli/event_log_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"

namespace hosn::agent {
namespace {

absl::Status ErrnoStatus(const std::string& path, int err) {
  const std::string message = absl::StrCat("event log ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// Reads until end of file rather than to the size fstat reports: securityfs
// reports 0 bytes for binary_bios_measurements, so ReadFile would send an
// empty log. O_NONBLOCK keeps a FIFO from blocking before fstat refuses it.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus(path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("event log ", path, ": not a regular file"));
  }
  std::string out;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path, errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > kMaxEventLogBytes) {
      return absl::OutOfRangeError(
          absl::StrCat("event log ", path, ": larger than ", kMaxEventLogBytes, " bytes"));
    }
    out.append(chunk, static_cast<size_t>(n));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("event log ", path, ": empty"));
  return out;
}

}  // namespace

bool TctiUsesKernelTpm(const std::string& tcti) {
  for (const char* name : {"device", "tabrmd"}) {
    const size_t n = std::strlen(name);
    if (tcti.compare(0, n, name) == 0 && (tcti.size() == n || tcti[n] == ':')) return true;
  }
  return false;
}

absl::StatusOr<EventLogChoice> ChooseEventLog(const std::string& setting, bool kernel_tpm,
                                              const std::string& default_path) {
  if (setting == "none") return EventLogChoice{"", "disabled (none)"};
  if (!setting.empty()) {
    auto bytes = ReadWholeFile(setting);
    if (!bytes.ok()) return bytes.status();
    return EventLogChoice{*std::move(bytes), setting};
  }

  // The default path: its absence is normal (no TPM log on this node), so
  // nothing here fails; the source tells the operator what happened.
  if (!kernel_tpm) return EventLogChoice{"", "the TCTI is not the kernel's TPM"};
  auto bytes = ReadWholeFile(default_path);
  if (bytes.ok()) return EventLogChoice{*std::move(bytes), default_path};
  if (absl::IsNotFound(bytes.status()))
    return EventLogChoice{"", absl::StrCat(default_path, " absent")};
  return EventLogChoice{"", absl::StrCat("not sent: ", bytes.status().message())};
}

}  // namespace hosn::agent
