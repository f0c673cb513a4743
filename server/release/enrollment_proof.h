// Stateless enrollment: the credential that BeginEnrollment hands to the
// node's TPM (through MakeCredential) is not random but an HSM MAC over what
// is being enrolled, so EnrollNode on any replica can recompute it instead of
// remembering it (docs/release.md, "Enrollment").
//
//   credential = HMAC-SHA256_hsm( "hosn enrollment credential v1" || 0x00
//                  || lv(node_id) || lv(node_class) || lv(ak_name)
//                  || lv(ek_digest) || u64be(expiry) )
//   lv(x) = u32be(len(x)) || x
//   enrollment token = 0x01 || u64be(expiry)   (9 bytes)
//
// Only the TPM holding the EK can recover the credential, and only while the
// AK with that name is loaded in it; a change to any enrolled field, or to
// the expiry in the token, changes the credential. This file builds the MAC
// input and parses the token (untrusted bytes); the MAC itself is made by the
// caller through hsm::KeyStore::Mac. Stateless and thread-safe.
#ifndef HOSN_SERVER_RELEASE_ENROLLMENT_PROOF_H_
#define HOSN_SERVER_RELEASE_ENROLLMENT_PROOF_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hosn::release {

inline constexpr uint8_t kEnrollmentTokenVersion = 1;
inline constexpr size_t kEnrollmentTokenSize = 9;

struct EnrollmentClaims {
  std::string node_id;
  std::string node_class;
  std::string ak_name;    // TPM name of the AK
  std::string ek_digest;  // SHA-256 of the EK's TPMT_PUBLIC
  int64_t expires_at_unix_seconds = 0;
};

// The bytes the HSM MACs into the credential.
std::string EnrollmentMacInput(const EnrollmentClaims& claims);

std::string EncodeEnrollmentToken(int64_t expires_at_unix_seconds);

// The expiry in a token. Denied(kEnrollmentProofInvalid) unless exactly
// kEnrollmentTokenSize bytes, version 1, expiry within int64.
absl::StatusOr<int64_t> ParseEnrollmentToken(std::string_view token);

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_ENROLLMENT_PROOF_H_
