// Boot policy per node class, and its evaluation against a verified quote.
//
// A policy names one PCR bank, the PCRs that must be quoted in it, one or
// more reference sets of golden values (several at once, so a fleet can roll
// from one firmware or kernel to the next), whether SHA-1 banks may appear in
// the quote at all, and whether an event log must accompany the quote and
// reproduce it, and optional rules on the content of that log's events
// (event_rules.h). A plain C++ struct; the stored hosn.keyd.v1.ReleasePolicy
// maps onto it (server/release/release_policy.h). Evaluation is a pure function:
// thread-safe, no state.
#ifndef HOSN_SERVER_ATTEST_BOOT_POLICY_H_
#define HOSN_SERVER_ATTEST_BOOT_POLICY_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"
#include "server/attest/event_log.h"
#include "server/attest/event_rules.h"
#include "server/attest/quote_verifier.h"

namespace hosn::attest {

// One acceptable boot: golden values for some PCRs of the policy's bank.
struct PcrReferenceSet {
  std::string name;  // e.g. "fw-2026.10+kernel-6.1.112", for audit records
  std::map<uint32_t, tpm::Bytes> pcrs;
};

struct BootPolicy {
  std::string node_class;
  // The bank the reference values are in; must be quoted.
  TPM2_ALG_ID bank = TPM2_ALG_SHA256;
  // PCRs that must be in the quote's selection of `bank` (T4: {0..7}).
  std::vector<uint32_t> required_pcrs;
  // The quote must match every PCR of at least one set. Empty: any values.
  std::vector<PcrReferenceSet> reference_sets;
  // SHA-1 banks are refused anywhere in the selection unless this is set.
  bool allow_sha1 = false;
  // If set, an event log must come with the quote; its replay must reproduce
  // `event_log_pcrs` as quoted, and its hash-of-data events must be honest.
  bool require_event_log = false;
  std::vector<uint32_t> event_log_pcrs = {0, 1, 2, 3, 4, 5, 6, 7};
  // Rules on the log's events, applied only after its replay matched the
  // quote. Need require_event_log, and the PCRs they read (7 for Secure
  // Boot, 4 for EFI applications) in event_log_pcrs.
  EventRules event_rules;
};

// InvalidArgument if the policy itself is unusable: unknown bank, SHA-1 bank
// while allow_sha1 is false, a PCR index above 23, a reference value of the
// wrong length or for a PCR outside required_pcrs, or (with
// require_event_log) an event_log_pcrs entry outside required_pcrs; event
// rules without require_event_log or without the PCRs they read in
// event_log_pcrs, or that ValidateEventRules refuses.
absl::Status ValidateBootPolicy(const BootPolicy& policy);

struct PolicyMatch {
  std::string reference_set;  // name of the matching set, empty if none are defined
};

// Applies `policy` to a quote that VerifyQuote accepted. `event_log` is the
// node's log, or nullptr if it sent none. Checks, in order:
//   1. Denied(kSha1BankNotAllowed) if any quoted bank is SHA-1 and the policy
//      does not allow it;
//   2. Denied(kBankNotAllowed) if the policy's bank is not in the selection;
//   3. Denied(kPcrNotQuoted) naming the first required PCR not quoted;
//   4. Denied(kPcrMismatch) "pcr N mismatch" if no reference set matches,
//      naming the first differing PCR of the closest set;
//   5. with an event log (required or sent): Denied(kEventLogRequired) if
//      required and absent, Denied(kEventDigestMismatch) or
//      Denied(kEventLogPcrMismatch) from event_log.h;
//   6. with event rules, on that replayed log: Denied(kEventLogPcrMismatch)
//      if the log does not replay the bank the rule relies on (the policy's
//      bank; sha256 for EFI application digests), then CheckEventRules.
// Returns the policy's own InvalidArgument if ValidateBootPolicy fails.
absl::StatusOr<PolicyMatch> EvaluateBootPolicy(const BootPolicy& policy, const VerifiedQuote& quote,
                                               const EventLog* event_log);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_BOOT_POLICY_H_
