// Named reasons for refusing an attestation.
//
// Every check in quote verification, event-log replay and boot policy that
// refuses evidence returns a PermissionDenied status carrying one
// DenialReason: the status message is the audit text ("pcr 7 mismatch"), and
// the reason's label ("pcr mismatch") is a short, fixed string fit for a
// metric label. The node itself is only ever told "denied". Errors that are
// not a judgement on the evidence (OpenSSL failing, a bad policy) carry no
// reason and use other status codes. Stateless and thread-safe.
#ifndef HOSN_SERVER_ATTEST_DENIAL_H_
#define HOSN_SERVER_ATTEST_DENIAL_H_

#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace hosn::attest {

enum class DenialReason {
  // The AK public area.
  kAkNotAcceptable,        // "ak not acceptable": lacks restricted/sign/fixedTPM/fixedParent
  kAkCertificateInvalid,   // "ak certificate invalid": does not parse or chain to a root
  kAkCertificateMismatch,  // "ak certificate mismatch": certifies another key
  kAkCertificateRevoked,   // "ak certificate revoked": a configured CRL lists it or its CA
  // The signature.
  kNoSignature,              // "no signature": empty or TPM_ALG_NULL
  kMalformedSignature,       // "malformed signature": tss2-mu refused it or bytes trail
  kSignatureSchemeMismatch,  // "signature scheme mismatch": scheme not usable with the AK
  kBadSignature,             // "bad signature": does not verify over the attest bytes
  // The TPMS_ATTEST.
  kBadMagic,         // "bad magic": magic is not TPM_GENERATED_VALUE
  kNotAQuote,        // "not a quote": type is not TPM_ST_ATTEST_QUOTE
  kMalformedAttest,  // "malformed attest": tss2-mu refused the structure
  kTrailingBytes,    // "trailing bytes": bytes after the TPMS_ATTEST
  kNonceMismatch,    // "nonce mismatch": extraData differs from the expected binding
  // PCR values against the quote.
  kPcrValueMissing,    // "pcr value missing": a quoted PCR's value was not sent
  kPcrDigestMismatch,  // "pcr digest mismatch": sent values do not hash to pcrDigest
  // Boot policy.
  kSha1BankNotAllowed,  // "sha1 bank not allowed"
  kBankNotAllowed,      // "bank not allowed": the quote does not cover the policy's bank
  kPcrNotQuoted,        // "pcr not quoted": a required PCR is outside the selection
  kPcrMismatch,         // "pcr mismatch": no reference set matches (message names the PCR)
  // Event log.
  kEventLogRequired,     // "event log required"
  kMalformedEventLog,    // "malformed event log"
  kEventDigestMismatch,  // "event digest mismatch": an event's digest is not its data's hash
  kEventLogPcrMismatch,  // "event log pcr mismatch": replay does not give the quoted PCR
  // Event-content rules (event_rules.h), on a proven log only.
  kSecureBootDisabled,        // "secure boot disabled": SecureBoot variable not 1, or absent
  kEfiApplicationNotAllowed,  // "efi application not allowed": PCR 4 application not listed
  kEfiActionForbidden,        // "efi action forbidden": a forbidden EV_EFI_ACTION string
  // The release decision (server/release).
  kChallengeInvalid,          // "challenge invalid": malformed token or its MAC fails
  kStaleChallenge,            // "stale challenge": the challenge expired
  kChallengeNotForCaller,     // "challenge not for caller": issued to another identity
  kNodeIdMismatch,            // "node id mismatch": request node_id is not the certificate's
  kUnknownNode,               // "unknown node": no enrollment record
  kNodeRevoked,               // "node revoked"
  kNoPolicy,                  // "no policy": the node's class has no release policy
  kManifestSignatureInvalid,  // "manifest signature invalid": CMS or its trust chain fails
  kModelNotAllowed,           // "model not allowed": the class may not receive this model
  // Enrollment.
  kEnrollmentProofInvalid,  // "enrollment proof invalid": wrong, altered or expired credential
  kEkCertificateInvalid,    // "ek certificate invalid": malformed, or fails the EK CA chain
  kEkCertificateMismatch,   // "ek certificate mismatch": ek_public is not the certified key
  kEkCertificateRevoked,    // "ek certificate revoked": a configured CRL lists it or its CA
  // Either certificate check.
  kCrlExpired,  // "crl expired": a CRL of the chain is past its nextUpdate
};

// The fixed label of `reason`, as listed above.
std::string_view DenialReasonLabel(DenialReason reason);

// A PermissionDenied status with `message` (the audit text, no secrets) that
// carries `reason`.
absl::Status Denied(DenialReason reason, std::string_view message);
// Same, with the reason's label as the message.
absl::Status Denied(DenialReason reason);

// The reason carried by `status`, or nullopt if it is OK or not a denial.
std::optional<DenialReason> GetDenialReason(const absl::Status& status);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_DENIAL_H_
