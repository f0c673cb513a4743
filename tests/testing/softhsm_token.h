// SoftHsmToken: a fresh SoftHSMv2 token for one test.
//
// Create() makes a temporary folder with its own token directory and
// softhsm2.conf, points SOFTHSM2_CONF at it (the previous value comes back
// when the object is destroyed), initialises one token with a known label,
// SO PIN and user PIN through softhsm2-util, and writes the user PIN to a
// file of mode 0600 for "file:" PIN references. The folder and every token
// in it are removed on destruction.
//
// The PINs are throw-away test values; they appear on softhsm2-util's argv,
// which production code never does. Not thread-safe: SOFTHSM2_CONF is
// process-wide, so one token object per test at a time.
#ifndef HOSN_TESTS_TESTING_SOFTHSM_TOKEN_H_
#define HOSN_TESTS_TESTING_SOFTHSM_TOKEN_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "tests/testing/test_paths.h"

namespace hosn::testing {

class SoftHsmToken {
 public:
  static constexpr char kModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";
  static constexpr char kUserPin[] = "hosn-test-user-pin";
  static constexpr char kSoPin[] = "hosn-test-so-pin";

  // Internal if softhsm2-util fails or files cannot be written.
  static absl::StatusOr<std::unique_ptr<SoftHsmToken>> Create(
      const std::string& label = "hosn-test");
  ~SoftHsmToken();
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  const std::string& label() const { return label_; }
  const std::string& serial() const { return serial_; }
  const std::string& dir() const { return dir_.path(); }
  const std::string& conf_path() const { return conf_path_; }
  // "file:<dir>/user.pin" (mode 0600).
  std::string pin_reference() const { return "file:" + pin_path_; }
  const std::string& pin_path() const { return pin_path_; }
  // "pkcs11:token=<label>" (no module-path: callers pass it as an option).
  std::string uri() const;

  // Initialises one more token in the same folder (for selection tests);
  // returns its serial.
  absl::StatusOr<std::string> AddToken(const std::string& label);

 private:
  SoftHsmToken(std::string label, std::optional<std::string> previous_conf)
      : label_(std::move(label)), previous_conf_(std::move(previous_conf)) {}

  ScopedTempDir dir_;
  const std::string label_;
  std::string serial_;
  std::string conf_path_;
  std::string pin_path_;
  const std::optional<std::string> previous_conf_;
};

// Runs a shell command, returns its stdout; Internal on a non-zero exit.
absl::StatusOr<std::string> RunCommand(const std::string& command);

}  // namespace hosn::testing

#endif  // HOSN_TESTS_TESTING_SOFTHSM_TOKEN_H_
