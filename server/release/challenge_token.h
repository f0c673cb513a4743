// The stateless release challenge: a token that carries its own nonce,
// expiry and caller binding, authenticated by an HMAC made inside the HSM, so
// that any hosn-keyd replica sharing the token's key can check it without
// shared state (docs/release.md, "Challenge token").
//
//   token = version (1 byte, 0x01)
//        || identity digest (32: SHA-256 of the caller's hosn:// URI)
//        || nonce (32 random bytes)
//        || expiry (8: u64 big-endian, Unix seconds)
//        || mac (32: HMAC-SHA256 in the HSM over ChallengeMacInput)
//
// This file only encodes and parses; the MAC is made and checked by the
// caller through hsm::KeyStore::Mac / VerifyMac. ParseChallengeToken is a
// parser of untrusted bytes (fuzzed in tests/server/release/fuzz). Stateless
// and thread-safe.
#ifndef HOSN_SERVER_RELEASE_CHALLENGE_TOKEN_H_
#define HOSN_SERVER_RELEASE_CHALLENGE_TOKEN_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hosn::release {

inline constexpr uint8_t kChallengeTokenVersion = 1;
inline constexpr size_t kChallengeTokenMacSize = 32;
inline constexpr size_t kChallengeTokenBodySize = 1 + 32 + 32 + 8;
inline constexpr size_t kChallengeTokenSize = kChallengeTokenBodySize + kChallengeTokenMacSize;

using Digest32 = std::array<uint8_t, 32>;

// What a token asserts.
struct ChallengeClaims {
  Digest32 identity_digest = {};
  Digest32 nonce = {};
  int64_t expires_at_unix_seconds = 0;
};

// A token split into its claims, the exact bytes its MAC covers, and the MAC.
struct ParsedChallengeToken {
  ChallengeClaims claims;
  std::string mac_input;  // ChallengeMacInput(claims)
  std::string mac;
};

// SHA-256 of the caller's identity URI ("hosn://node/a").
Digest32 IdentityDigest(std::string_view identity_uri);

// The bytes the HSM MACs: "hosn challenge token v1" || 0x00 || the first
// kChallengeTokenBodySize bytes of the token.
std::string ChallengeMacInput(const ChallengeClaims& claims);

// The token for `claims` with `mac` (must be kChallengeTokenMacSize bytes;
// InvalidArgument otherwise).
absl::StatusOr<std::string> EncodeChallengeToken(const ChallengeClaims& claims,
                                                 std::string_view mac);

// Splits a token received from a node. Denied(kChallengeInvalid) unless it is
// exactly kChallengeTokenSize bytes with version 1 and an expiry that fits in
// int64. Says nothing about the MAC, the caller or the time: the caller
// checks those.
absl::StatusOr<ParsedChallengeToken> ParseChallengeToken(std::string_view token);

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_CHALLENGE_TOKEN_H_
