#include "server/attest/boot_policy.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "server/attest/denial.h"

namespace hosn::attest {
namespace {

bool Contains(const std::vector<uint32_t>& list, uint32_t value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

absl::Status ValidateBootPolicy(const BootPolicy& policy) {
  const size_t size = tpm::HashDigestSize(policy.bank);
  if (size == 0) return absl::InvalidArgumentError("boot policy names an unknown bank");
  if (policy.bank == TPM2_ALG_SHA1 && !policy.allow_sha1) {
    return absl::InvalidArgumentError("boot policy uses the sha1 bank without allowing sha1");
  }
  for (uint32_t pcr : policy.required_pcrs) {
    if (pcr > tpm::kMaxPcrIndex) return absl::InvalidArgumentError("boot policy pcr out of range");
  }
  for (uint32_t pcr : policy.event_log_pcrs) {
    if (pcr > tpm::kMaxPcrIndex) return absl::InvalidArgumentError("boot policy pcr out of range");
    // Otherwise a required log could be checked against PCRs nobody quoted.
    if (policy.require_event_log && !Contains(policy.required_pcrs, pcr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("boot policy checks pcr ", pcr, " against the log but does not require it"));
    }
  }
  if (!policy.event_rules.empty()) {
    // Rules on an unreplayed log would judge bytes the node chose freely.
    if (!policy.require_event_log) {
      return absl::InvalidArgumentError("boot policy has event rules but no required event log");
    }
    if (policy.event_rules.require_secure_boot &&
        !Contains(policy.event_log_pcrs, kSecureBootPcr)) {
      return absl::InvalidArgumentError("boot policy requires secure boot but not pcr 7 replayed");
    }
    if (!policy.event_rules.allowed_efi_applications.empty() &&
        !Contains(policy.event_log_pcrs, kEfiApplicationPcr)) {
      return absl::InvalidArgumentError(
          "boot policy lists efi applications but not pcr 4 replayed");
    }
    HOSN_RETURN_IF_ERROR(ValidateEventRules(policy.event_rules));
  }
  for (const PcrReferenceSet& set : policy.reference_sets) {
    // An empty set would match every boot: fail closed.
    if (set.pcrs.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("reference set ", set.name, " names no pcr"));
    }
    for (const auto& [pcr, value] : set.pcrs) {
      if (!Contains(policy.required_pcrs, pcr)) {
        return absl::InvalidArgumentError(
            absl::StrCat("reference set ", set.name, " names pcr ", pcr, " not required"));
      }
      if (value.size() != size) {
        return absl::InvalidArgumentError(
            absl::StrCat("reference set ", set.name, " pcr ", pcr, " has the wrong length"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PolicyMatch> EvaluateBootPolicy(const BootPolicy& policy, const VerifiedQuote& quote,
                                               const EventLog* event_log) {
  HOSN_RETURN_IF_ERROR(ValidateBootPolicy(policy));

  // 1-2. Banks.
  const tpm::PcrBankSelection* bank = nullptr;
  for (const tpm::PcrBankSelection& selected : quote.selection) {
    if (selected.hash == TPM2_ALG_SHA1 && !policy.allow_sha1) {
      return Denied(DenialReason::kSha1BankNotAllowed);
    }
    if (selected.hash == policy.bank) bank = &selected;
  }
  if (bank == nullptr) {
    return Denied(DenialReason::kBankNotAllowed,
                  absl::StrCat("bank not allowed: ", tpm::HashAlgName(policy.bank), " not quoted"));
  }

  // 3. Required PCRs.
  for (uint32_t pcr : policy.required_pcrs) {
    if (!Contains(bank->pcrs, pcr)) {
      return Denied(DenialReason::kPcrNotQuoted, absl::StrCat("pcr ", pcr, " not quoted"));
    }
  }

  // 4. Reference sets: the first full match wins; otherwise report the first
  // differing PCR of the set with the fewest differences.
  PolicyMatch match;
  if (!policy.reference_sets.empty()) {
    const tpm::PcrBank& values = quote.quoted_values.at(policy.bank);
    size_t best_mismatches = std::numeric_limits<size_t>::max();
    uint32_t best_first = 0;
    bool matched = false;
    for (const PcrReferenceSet& set : policy.reference_sets) {
      size_t mismatches = 0;
      uint32_t first = 0;
      for (const auto& [pcr, golden] : set.pcrs) {
        if (values.at(pcr) != golden) {  // public values
          if (mismatches++ == 0) first = pcr;
        }
      }
      if (mismatches == 0) {
        match.reference_set = set.name;
        matched = true;
        break;
      }
      if (mismatches < best_mismatches) {
        best_mismatches = mismatches;
        best_first = first;
      }
    }
    if (!matched) {
      return Denied(DenialReason::kPcrMismatch, absl::StrCat("pcr ", best_first, " mismatch"));
    }
  }

  // 5. The event log, when required or offered.
  if (event_log == nullptr) {
    if (policy.require_event_log) return Denied(DenialReason::kEventLogRequired);
    return match;
  }
  HOSN_RETURN_IF_ERROR(CheckEventDigests(*event_log));
  HOSN_ASSIGN_OR_RETURN(tpm::PcrValues replayed, ReplayEventLog(*event_log));
  HOSN_RETURN_IF_ERROR(
      CheckReplayMatchesQuote(*event_log, replayed, quote.quoted_values, policy.event_log_pcrs));

  // 6. Event content, now that the events the rules read are proven: the
  // replay matched the quote in the bank each rule relies on.
  if (!policy.event_rules.empty()) {
    auto proven = [&](TPM2_ALG_ID alg, uint32_t pcr) {
      auto quoted = quote.quoted_values.find(alg);
      return replayed.count(alg) == 1 && quoted != quote.quoted_values.end() &&
             quoted->second.count(pcr) == 1;
    };
    for (uint32_t pcr : policy.event_log_pcrs) {
      if (!proven(policy.bank, pcr)) {
        return Denied(DenialReason::kEventLogPcrMismatch,
                      absl::StrCat("event log pcr mismatch: the log does not replay ",
                                   tpm::HashAlgName(policy.bank), ":", pcr));
      }
    }
    if (!policy.event_rules.allowed_efi_applications.empty() &&
        !proven(TPM2_ALG_SHA256, kEfiApplicationPcr)) {
      return Denied(DenialReason::kEventLogPcrMismatch,
                    "event log pcr mismatch: efi application digests need sha256:4 replayed");
    }
    HOSN_RETURN_IF_ERROR(CheckEventRules(policy.event_rules, *event_log));
  }
  return match;
}

}  // namespace hosn::attest
