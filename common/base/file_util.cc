#include "common/base/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/unique_fd.h"

namespace hosn {
namespace {

absl::Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  const std::string message = absl::StrCat(ToAbsl(what), " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("write: ", std::strerror(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat", path, errno);
  if (!S_ISREG(st.st_mode))
    return absl::InvalidArgumentError(absl::StrCat("not a regular file: ", path));
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::OutOfRangeError(
        absl::StrCat("file too large: ", path, " (", st.st_size, " bytes, limit ", max_bytes, ")"));
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", path, errno);
    }
    if (n == 0) break;  // The file shrank while we read it.
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, mode_t mode) {
  const std::filesystem::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  std::string temp = absl::StrCat(dir, "/.", target.filename().string(), ".tmp.XXXXXX");
  std::vector<char> templ(temp.begin(), temp.end());
  templ.push_back('\0');

  UniqueFd fd(::mkostemp(templ.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("create temporary file in", dir, errno);
  temp.assign(templ.data());

  absl::Status status = WriteAll(fd.get(), contents);
  if (status.ok() && ::fchmod(fd.get(), mode) != 0) status = ErrnoStatus("chmod", temp, errno);
  if (status.ok() && ::fsync(fd.get()) != 0) status = ErrnoStatus("fsync", temp, errno);
  fd.Reset();
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus("rename onto", path, errno);
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }

  // Make the rename itself durable.
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) (void)::fsync(dir_fd.get());
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path) {
  constexpr size_t kMaxSecretBytes = 4096;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return ErrnoStatus("open secret", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat secret", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("secret is not a regular file: ", path));
  }
  // Other users may neither read nor write it, and its group may not write
  // it (a writer could swap the key). Group read stays allowed for the
  // Debian convention of keys readable by a service group (ssl-cert).
  if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secret file is accessible by other users or writable by its group (chmod g-w,o-rwx): ",
        path));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxSecretBytes) {
    return absl::OutOfRangeError(absl::StrCat("secret file too large: ", path));
  }
  SecretBytes buffer(static_cast<size_t>(st.st_size));
  auto bytes = RevealSecret(buffer);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read secret", path, errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  size_t length = done;
  if (length > 0 && bytes[length - 1] == '\n') --length;
  if (length > 0 && bytes[length - 1] == '\r') --length;
  if (length == 0) return absl::InvalidArgumentError(absl::StrCat("secret file is empty: ", path));
  return SecretBytes::CopyOf(bytes.first(length));
}

absl::StatusOr<SecretBytes> ReadSecretReference(std::string_view reference) {
  if (absl::StartsWith(ToAbsl(reference), "file:")) {
    return ReadSecretFile(std::string(reference.substr(5)));
  }
  if (absl::StartsWith(ToAbsl(reference), "credential:")) {
    const std::string_view name = reference.substr(11);
    if (name.empty() || name.find('/') != std::string_view::npos) {
      return absl::InvalidArgumentError("bad systemd credential name");
    }
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') {
      return absl::FailedPreconditionError(
          "credential: secret needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)");
    }
    return ReadSecretFile(absl::StrCat(dir, "/", ToAbsl(name)));
  }
  return absl::InvalidArgumentError(
      "secret reference must be file:/path or credential:NAME, never the secret itself");
}

}  // namespace hosn
