// Small file helpers that every binary needs and that must fail closed.
//
// ReadFile refuses files above a caller-chosen size, so an untrusted path can
// never make us allocate without bound. WriteFileAtomically never leaves a
// half-written file under the final name: it writes a temporary file in the
// same directory, fsyncs it, renames it over the target and fsyncs the
// directory. ReadSecretFile reads key material or a PIN into SecretBytes.
//
// All functions are thread-compatible (no shared state).
#ifndef HOSN_COMMON_BASE_FILE_UTIL_H_
#define HOSN_COMMON_BASE_FILE_UTIL_H_

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"

namespace hosn {

// NotFound if the file does not exist, OutOfRange if it is larger than
// `max_bytes`, Internal on other I/O errors. Messages name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes);

// Writes `contents` to `path` with `mode`, atomically (see above). On failure
// the target is untouched and no temporary file remains.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 mode_t mode = 0644);

// Reads a secret (a PIN, a key) from `path`, at most 4096 bytes, with one
// trailing "\n" or "\r\n" removed. FailedPrecondition if "other" users have
// any access to it or its group may write it. The secret never appears in an error message.
absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path);

// Resolves a secret reference of the form "file:/path" or
// "credential:NAME" (a systemd credential, read from
// $CREDENTIALS_DIRECTORY/NAME) and reads it with ReadSecretFile.
// InvalidArgument for any other form: a secret is never passed inline.
absl::StatusOr<SecretBytes> ReadSecretReference(std::string_view reference);

}  // namespace hosn

#endif  // HOSN_COMMON_BASE_FILE_UTIL_H_
