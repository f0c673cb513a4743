// Encoding and parsing of release challenge tokens; see challenge_token.h.
#include "server/release/challenge_token.h"

#include <openssl/sha.h>

#include <cstring>

#include "absl/status/status.h"
#include "server/attest/denial.h"

namespace hosn::release {
namespace {

constexpr char kMacLabel[] = "hosn challenge token v1";

std::string Body(const ChallengeClaims& claims) {
  std::string body;
  body.reserve(kChallengeTokenBodySize);
  body.push_back(static_cast<char>(kChallengeTokenVersion));
  body.append(reinterpret_cast<const char*>(claims.identity_digest.data()), 32);
  body.append(reinterpret_cast<const char*>(claims.nonce.data()), 32);
  const uint64_t expiry = static_cast<uint64_t>(claims.expires_at_unix_seconds);
  for (int shift = 56; shift >= 0; shift -= 8) {
    body.push_back(static_cast<char>((expiry >> shift) & 0xff));
  }
  return body;
}

}  // namespace

Digest32 IdentityDigest(std::string_view identity_uri) {
  Digest32 digest = {};
  SHA256(reinterpret_cast<const unsigned char*>(identity_uri.data()), identity_uri.size(),
         digest.data());
  return digest;
}

std::string ChallengeMacInput(const ChallengeClaims& claims) {
  std::string input(kMacLabel, sizeof(kMacLabel));  // includes the 0x00
  input += Body(claims);
  return input;
}

absl::StatusOr<std::string> EncodeChallengeToken(const ChallengeClaims& claims,
                                                 std::string_view mac) {
  if (mac.size() != kChallengeTokenMacSize) {
    return absl::InvalidArgumentError("challenge token: mac must be 32 bytes");
  }
  std::string token = Body(claims);
  token.append(mac);
  return token;
}

absl::StatusOr<ParsedChallengeToken> ParseChallengeToken(std::string_view token) {
  if (token.size() != kChallengeTokenSize) {
    return attest::Denied(attest::DenialReason::kChallengeInvalid,
                          "challenge invalid: wrong length");
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(token.data());
  if (bytes[0] != kChallengeTokenVersion) {
    return attest::Denied(attest::DenialReason::kChallengeInvalid,
                          "challenge invalid: unknown version");
  }
  ParsedChallengeToken parsed;
  std::memcpy(parsed.claims.identity_digest.data(), bytes + 1, 32);
  std::memcpy(parsed.claims.nonce.data(), bytes + 33, 32);
  uint64_t expiry = 0;
  for (size_t i = 0; i < 8; ++i) expiry = (expiry << 8) | bytes[65 + i];
  if (expiry > static_cast<uint64_t>(INT64_MAX)) {
    return attest::Denied(attest::DenialReason::kChallengeInvalid,
                          "challenge invalid: expiry out of range");
  }
  parsed.claims.expires_at_unix_seconds = static_cast<int64_t>(expiry);
  parsed.mac_input = ChallengeMacInput(parsed.claims);
  parsed.mac = std::string(token.substr(kChallengeTokenBodySize));
  return parsed;
}

}  // namespace hosn::release
