// Where tests find their inputs and scratch space.
#ifndef HOSN_TESTS_TESTING_TEST_PATHS_H_
#define HOSN_TESTS_TESTING_TEST_PATHS_H_

#include <string>

namespace hosn::testing {

// The shared third-party data folder (../shared/data beside the checkout, or
// $HOSN_SHARED_DATA). Aborts the test binary if it does not exist: tests that
// need real vectors must never pass silently without them.
std::string SharedDataPath(const std::string& relative);

// Folder of the source tree ($HOSN_SOURCE_DIR) and of the build tree
// ($HOSN_BINARY_DIR), set by ctest.
std::string SourcePath(const std::string& relative);
std::string BinaryPath(const std::string& relative);

// A fresh directory under $TMPDIR, removed with everything inside when the
// object is destroyed.
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace hosn::testing

#endif  // HOSN_TESTS_TESTING_TEST_PATHS_H_
