#include "server/attest/attestation.h"

#include "common/base/status_macros.h"

namespace hosn::attest {

absl::StatusOr<AttestationResult> VerifyAttestation(
    const tpm::AkPublicKey& ak, const AttestationEvidence& evidence,
    std::span<const uint8_t> expected_qualifying_data, const BootPolicy& policy) {
  AttestationResult result;
  HOSN_ASSIGN_OR_RETURN(result.quote, VerifyQuote(ak, evidence.attest, evidence.signature,
                                                  expected_qualifying_data, evidence.pcr_values));

  // The log is parsed only once the quote verified, so only evidence signed
  // by an enrolled AK reaches the log parser.
  std::optional<EventLog> log;
  if (evidence.event_log.has_value()) {
    HOSN_ASSIGN_OR_RETURN(log, ParseEventLog(*evidence.event_log));
  }
  HOSN_ASSIGN_OR_RETURN(result.match,
                        EvaluateBootPolicy(policy, result.quote, log ? &*log : nullptr));
  return result;
}

}  // namespace hosn::attest
