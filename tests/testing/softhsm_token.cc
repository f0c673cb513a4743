#include "tests/testing/softhsm_token.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/file_util.h"

namespace hosn::testing {
namespace {

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// The serial softhsm2-util reports for the token labelled `label`.
absl::StatusOr<std::string> SerialOf(const std::string& label) {
  absl::StatusOr<std::string> slots = RunCommand("softhsm2-util --show-slots");
  if (!slots.ok()) return slots.status();
  std::string current_label;
  std::string current_serial;
  for (absl::string_view line : absl::StrSplit(*slots, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "Label:")) {
      current_label = std::string(absl::StripAsciiWhitespace(line));
      if (current_label == label && !current_serial.empty()) return current_serial;
    } else if (absl::ConsumePrefix(&line, "Serial number:")) {
      current_serial = std::string(absl::StripAsciiWhitespace(line));
      if (current_label == label) return current_serial;
    } else if (absl::StartsWith(line, "Slot ")) {
      current_label.clear();
      current_serial.clear();
    }
  }
  return absl::InternalError(absl::StrCat("no serial for token ", label));
}

}  // namespace

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("popen failed: ", command));
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("command failed (", status, "): ", command, "\n", output));
  }
  return output;
}

absl::StatusOr<std::unique_ptr<SoftHsmToken>> SoftHsmToken::Create(const std::string& label) {
  const char* previous = std::getenv("SOFTHSM2_CONF");
  std::unique_ptr<SoftHsmToken> token(new SoftHsmToken(
      label, previous != nullptr ? std::optional<std::string>(previous) : std::nullopt));

  // 1. Own token folder and configuration.
  const std::string token_dir = token->dir_.Join("tokens");
  std::filesystem::create_directories(token_dir);
  token->conf_path_ = token->dir_.Join("softhsm2.conf");
  absl::Status status = WriteFileAtomically(
      token->conf_path_,
      absl::StrCat("directories.tokendir = ", token_dir,
                   "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"),
      0600);
  if (!status.ok()) return status;
  ::setenv("SOFTHSM2_CONF", token->conf_path_.c_str(), 1);

  // 2. The token and the PIN file.
  absl::StatusOr<std::string> serial = token->AddToken(label);
  if (!serial.ok()) return serial.status();
  token->serial_ = *serial;
  token->pin_path_ = token->dir_.Join("user.pin");
  status = WriteFileAtomically(token->pin_path_, kUserPin, 0600);
  if (!status.ok()) return status;
  return token;
}

absl::StatusOr<std::string> SoftHsmToken::AddToken(const std::string& label) {
  absl::StatusOr<std::string> init =
      RunCommand(absl::StrCat("softhsm2-util --init-token --free --label ", ShellQuote(label),
                              " --so-pin ", kSoPin, " --pin ", kUserPin));
  if (!init.ok()) return init.status();
  return SerialOf(label);
}

std::string SoftHsmToken::uri() const { return absl::StrCat("pkcs11:token=", label_); }

SoftHsmToken::~SoftHsmToken() {
  if (previous_conf_.has_value()) {
    ::setenv("SOFTHSM2_CONF", previous_conf_->c_str(), 1);
  } else {
    ::unsetenv("SOFTHSM2_CONF");
  }
}

}  // namespace hosn::testing
