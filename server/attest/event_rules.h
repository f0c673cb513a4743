// Event-content rules of a boot policy: what the events of a TCG event log
// must say, beyond replaying to the quoted PCRs (docs/attestation.md, "Event
// content rules").
//
// The rules read event data, which a node could write freely; they only mean
// something for a log whose events are proven, that is, whose replay matched
// the quoted PCRs the rules look at and whose hash-of-data events carry their
// data's hash. EvaluateBootPolicy (boot_policy.h) checks both before it calls
// CheckEventRules; calling it on a log that has not passed them proves
// nothing. Stateless and thread-safe.
#ifndef HOSN_SERVER_ATTEST_EVENT_RULES_H_
#define HOSN_SERVER_ATTEST_EVENT_RULES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/tpm/tpm_types.h"
#include "server/attest/event_log.h"

namespace hosn::attest {

inline constexpr uint32_t kEvEfiBootServicesApplication = 0x80000003;
// The PCRs whose events the rules read.
inline constexpr uint32_t kSecureBootPcr = 7;
inline constexpr uint32_t kEfiApplicationPcr = 4;

struct EventRules {
  // PCR 7 must hold an EV_EFI_VARIABLE_DRIVER_CONFIG event for the
  // EFI_GLOBAL_VARIABLE "SecureBoot", and every such event must carry exactly
  // the one byte 0x01.
  bool require_secure_boot = false;
  // If not empty: every EV_EFI_BOOT_SERVICES_APPLICATION event in PCR 4 must
  // have a sha256 digest in this list (32 bytes each).
  std::vector<tpm::Bytes> allowed_efi_applications;
  // No EV_EFI_ACTION event, in any PCR, may carry one of these strings
  // (e.g. "DMA Protection Disabled").
  std::vector<std::string> forbidden_efi_actions;

  bool empty() const {
    return !require_secure_boot && allowed_efi_applications.empty() &&
           forbidden_efi_actions.empty();
  }
};

// InvalidArgument if an allowed digest is not 32 bytes or a forbidden action
// is empty.
absl::Status ValidateEventRules(const EventRules& rules);

// Applies `rules` to a proven log (see above), first failure wins:
//   Denied(kSecureBootDisabled) "secure boot disabled: ..." naming the event
//     (or "no SecureBoot event in pcr 7");
//   Denied(kEfiApplicationNotAllowed) naming the event and its sha256 digest
//     (or that it has none);
//   Denied(kEfiActionForbidden) naming the event and the action;
//   Denied(kMalformedEventLog) if a SecureBoot candidate's UEFI_VARIABLE_DATA
//     does not fit its event.
absl::Status CheckEventRules(const EventRules& rules, const EventLog& log);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_EVENT_RULES_H_
