#include "server/attest/denial.h"

#include <string>

#include "absl/strings/cord.h"
#include "common/base/absl_compat.h"

namespace hosn::attest {
namespace {

constexpr char kPayloadUrl[] = "type.hosn.dev/hosn.attest.DenialReason";

struct Entry {
  DenialReason reason;
  std::string_view label;
};

constexpr Entry kEntries[] = {
    {DenialReason::kAkNotAcceptable, "ak not acceptable"},
    {DenialReason::kAkCertificateInvalid, "ak certificate invalid"},
    {DenialReason::kAkCertificateMismatch, "ak certificate mismatch"},
    {DenialReason::kAkCertificateRevoked, "ak certificate revoked"},
    {DenialReason::kNoSignature, "no signature"},
    {DenialReason::kMalformedSignature, "malformed signature"},
    {DenialReason::kSignatureSchemeMismatch, "signature scheme mismatch"},
    {DenialReason::kBadSignature, "bad signature"},
    {DenialReason::kBadMagic, "bad magic"},
    {DenialReason::kNotAQuote, "not a quote"},
    {DenialReason::kMalformedAttest, "malformed attest"},
    {DenialReason::kTrailingBytes, "trailing bytes"},
    {DenialReason::kNonceMismatch, "nonce mismatch"},
    {DenialReason::kPcrValueMissing, "pcr value missing"},
    {DenialReason::kPcrDigestMismatch, "pcr digest mismatch"},
    {DenialReason::kSha1BankNotAllowed, "sha1 bank not allowed"},
    {DenialReason::kBankNotAllowed, "bank not allowed"},
    {DenialReason::kPcrNotQuoted, "pcr not quoted"},
    {DenialReason::kPcrMismatch, "pcr mismatch"},
    {DenialReason::kEventLogRequired, "event log required"},
    {DenialReason::kMalformedEventLog, "malformed event log"},
    {DenialReason::kEventDigestMismatch, "event digest mismatch"},
    {DenialReason::kEventLogPcrMismatch, "event log pcr mismatch"},
    {DenialReason::kSecureBootDisabled, "secure boot disabled"},
    {DenialReason::kEfiApplicationNotAllowed, "efi application not allowed"},
    {DenialReason::kEfiActionForbidden, "efi action forbidden"},
    {DenialReason::kChallengeInvalid, "challenge invalid"},
    {DenialReason::kStaleChallenge, "stale challenge"},
    {DenialReason::kChallengeNotForCaller, "challenge not for caller"},
    {DenialReason::kNodeIdMismatch, "node id mismatch"},
    {DenialReason::kUnknownNode, "unknown node"},
    {DenialReason::kNodeRevoked, "node revoked"},
    {DenialReason::kNoPolicy, "no policy"},
    {DenialReason::kManifestSignatureInvalid, "manifest signature invalid"},
    {DenialReason::kModelNotAllowed, "model not allowed"},
    {DenialReason::kEnrollmentProofInvalid, "enrollment proof invalid"},
    {DenialReason::kEkCertificateInvalid, "ek certificate invalid"},
    {DenialReason::kEkCertificateMismatch, "ek certificate mismatch"},
    {DenialReason::kEkCertificateRevoked, "ek certificate revoked"},
    {DenialReason::kCrlExpired, "crl expired"},
};

}  // namespace

std::string_view DenialReasonLabel(DenialReason reason) {
  for (const Entry& entry : kEntries) {
    if (entry.reason == reason) return entry.label;
  }
  return "unknown";
}

absl::Status Denied(DenialReason reason, std::string_view message) {
  absl::Status status = absl::PermissionDeniedError(ToAbsl(message));
  status.SetPayload(kPayloadUrl, absl::Cord(ToAbsl(DenialReasonLabel(reason))));
  return status;
}

absl::Status Denied(DenialReason reason) { return Denied(reason, DenialReasonLabel(reason)); }

std::optional<DenialReason> GetDenialReason(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kPermissionDenied) return std::nullopt;
  auto payload = status.GetPayload(kPayloadUrl);  // absl::optional in Debian 12
  if (!payload.has_value()) return std::nullopt;
  const std::string label(*payload);
  for (const Entry& entry : kEntries) {
    if (entry.label == label) return entry.reason;
  }
  return std::nullopt;
}

}  // namespace hosn::attest
