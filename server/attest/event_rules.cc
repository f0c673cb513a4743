#include "server/attest/event_rules.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/hex.h"
#include "server/attest/denial.h"

namespace hosn::attest {
namespace {

// EFI_GLOBAL_VARIABLE 8BE4DF61-93CA-11D2-AA0D-00E098032B8C as an EFI_GUID in
// memory (first three fields little-endian).
constexpr uint8_t kEfiGlobalVariable[16] = {0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11,
                                            0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c};
// "SecureBoot" in UTF-16LE.
constexpr char16_t kSecureBoot[] = u"SecureBoot";
constexpr size_t kSecureBootChars = 10;

uint64_t Le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A UEFI_VARIABLE_DATA: VariableName (EFI_GUID), u64 UnicodeNameLength (in
// characters), u64 VariableDataLength, UnicodeName, VariableData.
struct VariableData {
  bool is_secure_boot = false;
  tpm::Bytes value;
};

absl::StatusOr<VariableData> ParseVariable(const Event& event) {
  const tpm::Bytes& d = event.data;
  auto malformed = [&](std::string_view why) {
    return Denied(DenialReason::kMalformedEventLog,
                  absl::StrCat("malformed event log: event ", event.number, ": ", ToAbsl(why)));
  };
  if (d.size() < 32) return malformed("uefi variable header exceeds the event");
  const uint64_t name_chars = Le64(d.data() + 16);
  const uint64_t value_size = Le64(d.data() + 24);
  // Both lengths are bounded by the event before they are multiplied or added.
  if (name_chars > d.size() || value_size > d.size() ||
      32 + 2 * name_chars + value_size != d.size()) {
    return malformed("uefi variable lengths do not fill the event");
  }
  VariableData out;
  if (std::memcmp(d.data(), kEfiGlobalVariable, 16) == 0 && name_chars == kSecureBootChars) {
    out.is_secure_boot = true;
    for (size_t i = 0; i < kSecureBootChars; ++i) {
      const char16_t c = static_cast<char16_t>(d[32 + 2 * i] | (d[33 + 2 * i] << 8));
      if (c != kSecureBoot[i]) out.is_secure_boot = false;
    }
  }
  const auto value_begin = d.begin() + static_cast<std::ptrdiff_t>(32 + 2 * name_chars);
  out.value.assign(value_begin, d.end());
  return out;
}

absl::Status CheckSecureBoot(const EventLog& log) {
  bool seen = false;
  for (const Event& event : log.events) {
    if (event.pcr != kSecureBootPcr || event.type != kEvEfiVariableDriverConfig) continue;
    absl::StatusOr<VariableData> variable = ParseVariable(event);
    if (!variable.ok()) return variable.status();
    if (!variable->is_secure_boot) continue;
    seen = true;
    if (variable->value != tpm::Bytes{0x01}) {
      return Denied(DenialReason::kSecureBootDisabled,
                    absl::StrCat("secure boot disabled: event ", event.number, " SecureBoot = ",
                                 variable->value.empty() ? "(empty)" : HexEncode(variable->value)));
    }
  }
  if (!seen) {
    return Denied(DenialReason::kSecureBootDisabled,
                  "secure boot disabled: no SecureBoot event in pcr 7");
  }
  return absl::OkStatus();
}

absl::Status CheckApplications(const std::vector<tpm::Bytes>& allowed, const EventLog& log) {
  for (const Event& event : log.events) {
    if (event.pcr != kEfiApplicationPcr || event.type != kEvEfiBootServicesApplication) continue;
    const auto digest = std::find_if(event.digests.begin(), event.digests.end(),
                                     [](const auto& d) { return d.first == TPM2_ALG_SHA256; });
    if (digest == event.digests.end()) {
      return Denied(DenialReason::kEfiApplicationNotAllowed,
                    absl::StrCat("efi application not allowed: event ", event.number,
                                 " has no sha256 digest"));
    }
    if (std::find(allowed.begin(), allowed.end(), digest->second) == allowed.end()) {
      return Denied(DenialReason::kEfiApplicationNotAllowed,
                    absl::StrCat("efi application not allowed: event ", event.number, " sha256 ",
                                 HexEncode(digest->second)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckActions(const std::vector<std::string>& forbidden, const EventLog& log) {
  for (const Event& event : log.events) {
    if (event.type != kEvEfiAction) continue;
    const std::string text(event.data.begin(), event.data.end());
    if (std::find(forbidden.begin(), forbidden.end(), text) != forbidden.end()) {
      return Denied(DenialReason::kEfiActionForbidden,
                    absl::StrCat("efi action forbidden: event ", event.number, " pcr ", event.pcr,
                                 " \"", text, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateEventRules(const EventRules& rules) {
  for (const tpm::Bytes& digest : rules.allowed_efi_applications) {
    if (digest.size() != 32) {
      return absl::InvalidArgumentError("event rules: an efi application digest is not 32 bytes");
    }
  }
  for (const std::string& action : rules.forbidden_efi_actions) {
    if (action.empty()) return absl::InvalidArgumentError("event rules: empty efi action");
  }
  return absl::OkStatus();
}

absl::Status CheckEventRules(const EventRules& rules, const EventLog& log) {
  if (rules.require_secure_boot) {
    if (absl::Status status = CheckSecureBoot(log); !status.ok()) return status;
  }
  if (!rules.allowed_efi_applications.empty()) {
    if (absl::Status status = CheckApplications(rules.allowed_efi_applications, log);
        !status.ok()) {
      return status;
    }
  }
  return CheckActions(rules.forbidden_efi_actions, log);
}

}  // namespace hosn::attest
