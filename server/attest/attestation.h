// One call for the release service: verify a node's quote against its
// enrolled AK and the challenge, then apply its class's boot policy, event
// log included.
//
// VerifyAttestation runs VerifyQuote (quote_verifier.h), parses the event log
// if one was sent, and runs EvaluateBootPolicy (boot_policy.h), in that order;
// the first failure is returned unchanged, so denials keep their
// DenialReason. The evidence is borrowed for the duration of the call.
// Stateless and thread-safe.
#ifndef HOSN_SERVER_ATTEST_ATTESTATION_H_
#define HOSN_SERVER_ATTEST_ATTESTATION_H_

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/statusor.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/tpm_types.h"
#include "server/attest/boot_policy.h"
#include "server/attest/quote_verifier.h"

namespace hosn::attest {

// What a node sends beside its mTLS identity (see docs/attestation.md).
struct AttestationEvidence {
  std::span<const uint8_t> attest;     // TPMS_ATTEST as signed
  std::span<const uint8_t> signature;  // TPMT_SIGNATURE
  tpm::PcrValues pcr_values;
  std::optional<std::span<const uint8_t>> event_log;  // binary_bios_measurements
};

struct AttestationResult {
  VerifiedQuote quote;
  PolicyMatch match;
};

// `expected_qualifying_data` is Challenge::QualifyingData(ephemeral key) for
// the challenge this node was given. Returns the denial of the first failing
// check (PermissionDenied with a DenialReason), InvalidArgument for an
// unusable policy, Internal if OpenSSL fails.
absl::StatusOr<AttestationResult> VerifyAttestation(
    const tpm::AkPublicKey& ak, const AttestationEvidence& evidence,
    std::span<const uint8_t> expected_qualifying_data, const BootPolicy& policy);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_ATTESTATION_H_
