#include "client/agent/cli/process_guard.h"

#include <linux/magic.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace hosn::agent {

absl::Status HardenProcess() {
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) {
    return absl::InternalError(absl::StrCat("setrlimit(RLIMIT_CORE): ", std::strerror(errno)));
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return absl::InternalError(absl::StrCat("prctl(PR_SET_DUMPABLE): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status CheckTarget(const std::string& target) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path path(target);
  const bool exists = fs::exists(path, error);
  const fs::path probe = exists ? path : path.parent_path();
  struct statfs info {};
  if (::statfs(probe.empty() ? "." : probe.c_str(), &info) != 0) {
    return absl::NotFoundError(
        absl::StrCat("target parent: ", probe.string(), ": ", std::strerror(errno)));
  }
  if (info.f_type != TMPFS_MAGIC && info.f_type != RAMFS_MAGIC) {
    return absl::FailedPreconditionError(absl::StrCat("target_not_tmpfs: ", target));
  }
  if (exists && (!fs::is_directory(path, error) || !fs::is_empty(path, error))) {
    return absl::FailedPreconditionError(absl::StrCat("target_not_empty: ", target));
  }
  return absl::OkStatus();
}

}  // namespace hosn::agent
