// Fuzzes the offline audit verifier, which reads exported (untrusted) logs:
// the input is split at the first 0xff byte into a log file and a
// checkpoints file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/audit/audit_verify.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\xff');
  std::vector<std::string> logs = {input.substr(0, split)};
  const std::string checkpoints = split == std::string::npos ? "" : input.substr(split + 1);
  hosn::audit::VerifyAuditLog(logs, checkpoints, nullptr);
  return 0;
}
