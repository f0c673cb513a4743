// Enrollment credential input and token; see enrollment_proof.h.
#include "server/release/enrollment_proof.h"

#include "server/attest/denial.h"

namespace hosn::release {
namespace {

constexpr char kMacLabel[] = "hosn enrollment credential v1";

void AppendU64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

void AppendLv(std::string& out, std::string_view value) {
  const uint32_t size = static_cast<uint32_t>(value.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(size >> shift));
  out.append(value);
}

}  // namespace

std::string EnrollmentMacInput(const EnrollmentClaims& claims) {
  std::string input(kMacLabel, sizeof(kMacLabel));  // includes the 0x00
  AppendLv(input, claims.node_id);
  AppendLv(input, claims.node_class);
  AppendLv(input, claims.ak_name);
  AppendLv(input, claims.ek_digest);
  AppendU64(input, static_cast<uint64_t>(claims.expires_at_unix_seconds));
  return input;
}

std::string EncodeEnrollmentToken(int64_t expires_at_unix_seconds) {
  std::string token(1, static_cast<char>(kEnrollmentTokenVersion));
  AppendU64(token, static_cast<uint64_t>(expires_at_unix_seconds));
  return token;
}

absl::StatusOr<int64_t> ParseEnrollmentToken(std::string_view token) {
  if (token.size() != kEnrollmentTokenSize ||
      static_cast<uint8_t>(token[0]) != kEnrollmentTokenVersion) {
    return attest::Denied(attest::DenialReason::kEnrollmentProofInvalid,
                          "enrollment token malformed");
  }
  uint64_t expiry = 0;
  for (size_t i = 1; i < kEnrollmentTokenSize; ++i) {
    expiry = (expiry << 8) | static_cast<uint8_t>(token[i]);
  }
  if (expiry > static_cast<uint64_t>(INT64_MAX)) {
    return attest::Denied(attest::DenialReason::kEnrollmentProofInvalid,
                          "enrollment token malformed");
  }
  return static_cast<int64_t>(expiry);
}

}  // namespace hosn::release
