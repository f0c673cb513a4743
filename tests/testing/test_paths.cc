#include "tests/testing/test_paths.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace hosn::testing {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return (value != nullptr && *value != '\0') ? std::string(value) : fallback;
}

}  // namespace

std::string SharedDataPath(const std::string& relative) {
  const std::string root = EnvOr("HOSN_SHARED_DATA", "");
  if (root.empty() || !std::filesystem::is_directory(root)) {
    std::fprintf(stderr, "shared test data not found (HOSN_SHARED_DATA=%s)\n", root.c_str());
    std::abort();
  }
  return root + "/" + relative;
}

std::string SourcePath(const std::string& relative) {
  return EnvOr("HOSN_SOURCE_DIR", ".") + "/" + relative;
}

std::string BinaryPath(const std::string& relative) {
  return EnvOr("HOSN_BINARY_DIR", ".") + "/" + relative;
}

ScopedTempDir::ScopedTempDir() {
  std::string templ = EnvOr("TMPDIR", "/tmp") + "/hosn-test-XXXXXX";
  std::vector<char> buffer(templ.begin(), templ.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = buffer.data();
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace hosn::testing
