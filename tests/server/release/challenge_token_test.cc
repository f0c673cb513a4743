// Challenge tokens, enrollment tokens and release policies without an HSM:
// exact layout, strict parsing, and policy validation.
#include "server/release/challenge_token.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/denial.h"
#include "server/release/enrollment_proof.h"
#include "server/release/release_policy.h"
#include "tests/testing/status_matchers.h"

namespace hosn::release {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

ChallengeClaims Claims() {
  ChallengeClaims claims;
  claims.identity_digest = IdentityDigest("hosn://node/a");
  for (size_t i = 0; i < 32; ++i) claims.nonce[i] = static_cast<uint8_t>(i);
  claims.expires_at_unix_seconds = 0x0102030405060708;
  return claims;
}

TEST(ChallengeToken, LayoutAndRoundTrip) {
  const std::string mac(32, 'm');
  HOSN_ASSERT_OK_AND_ASSIGN(std::string token, EncodeChallengeToken(Claims(), mac));
  ASSERT_EQ(token.size(), kChallengeTokenSize);
  EXPECT_EQ(token[0], 1);
  EXPECT_EQ(token.substr(65, 8), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(token.substr(73), mac);
  HOSN_ASSERT_OK_AND_ASSIGN(ParsedChallengeToken parsed, ParseChallengeToken(token));
  EXPECT_EQ(parsed.claims.nonce, Claims().nonce);
  EXPECT_EQ(parsed.claims.identity_digest, IdentityDigest("hosn://node/a"));
  EXPECT_EQ(parsed.claims.expires_at_unix_seconds, 0x0102030405060708);
  EXPECT_EQ(parsed.mac, mac);
  // The MAC input is the labelled body: a change of any claim changes it.
  EXPECT_EQ(parsed.mac_input, ChallengeMacInput(Claims()));
  EXPECT_EQ(parsed.mac_input.substr(0, 24), std::string("hosn challenge token v1\0", 24));
  ChallengeClaims other = Claims();
  other.identity_digest = IdentityDigest("hosn://node/b");
  EXPECT_NE(ChallengeMacInput(other), parsed.mac_input);
}

TEST(ChallengeToken, StrictParse) {
  HOSN_ASSERT_OK_AND_ASSIGN(std::string token,
                            EncodeChallengeToken(Claims(), std::string(32, 'm')));
  EXPECT_THAT(ParseChallengeToken(token.substr(0, 104)),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("wrong length")));
  EXPECT_THAT(ParseChallengeToken(token + "x"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("wrong length")));
  EXPECT_THAT(ParseChallengeToken(""), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  std::string version = token;
  version[0] = 2;
  EXPECT_EQ(attest::GetDenialReason(ParseChallengeToken(version).status()),
            attest::DenialReason::kChallengeInvalid);
  std::string expiry = token;
  expiry[65] = static_cast<char>(0x80);
  EXPECT_THAT(ParseChallengeToken(expiry),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("expiry")));
  EXPECT_THAT(EncodeChallengeToken(Claims(), "short"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(EnrollmentProof, InputBindsEveryField) {
  EnrollmentClaims claims{"a", "gpu", "ak-name", "ek-digest", 1000};
  const std::string base = EnrollmentMacInput(claims);
  for (int field = 0; field < 5; ++field) {
    EnrollmentClaims changed = claims;
    if (field == 0) changed.node_id = "b";
    if (field == 1) changed.node_class = "cpu";
    if (field == 2) changed.ak_name = "ak-namf";
    if (field == 3) changed.ek_digest = "ek-digesu";
    if (field == 4) changed.expires_at_unix_seconds = 1001;
    EXPECT_NE(EnrollmentMacInput(changed), base) << field;
  }
  // Length prefixes: moving a byte between fields changes the input.
  EnrollmentClaims shifted{"ag", "pu", "ak-name", "ek-digest", 1000};
  EXPECT_NE(EnrollmentMacInput(shifted), base);
  HOSN_ASSERT_OK_AND_ASSIGN(int64_t expiry, ParseEnrollmentToken(EncodeEnrollmentToken(1000)));
  EXPECT_EQ(expiry, 1000);
  EXPECT_THAT(ParseEnrollmentToken("\x01"),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(ParseEnrollmentToken(std::string("\x02\0\0\0\0\0\0\0\x01", 9)),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
}

keyd::v1::SetReleasePolicyRequest GoodPolicy() {
  keyd::v1::SetReleasePolicyRequest request;
  request.set_node_class("gpu");
  auto* set = request.add_reference_sets();
  set->set_name("fw1");
  set->set_bank("sha256");
  for (uint32_t i = 0; i < 8; ++i) (*set->mutable_pcrs())[i] = std::string(32, 'x');
  request.add_allowed_models("m");
  return request;
}

TEST(ReleasePolicy, ValidatesAndConverts) {
  HOSN_ASSERT_OK_AND_ASSIGN(keyd::v1::ReleasePolicy policy, PolicyFromRequest(GoodPolicy(), 3, 9));
  EXPECT_EQ(policy.version(), 3u);
  HOSN_ASSERT_OK_AND_ASSIGN(attest::BootPolicy boot, ToBootPolicy(policy));
  EXPECT_EQ(boot.bank, TPM2_ALG_SHA256);
  EXPECT_EQ(boot.required_pcrs, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7}));

  auto request = GoodPolicy();
  request.clear_reference_sets();
  EXPECT_THAT(PolicyFromRequest(request, 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reference set")));
  request = GoodPolicy();
  auto* second = request.add_reference_sets();
  second->set_name("fw2");
  second->set_bank("sha384");
  (*second->mutable_pcrs())[0] = std::string(48, 'x');
  EXPECT_THAT(PolicyFromRequest(request, 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("another bank")));
  request = GoodPolicy();
  (*request.mutable_reference_sets(0)->mutable_pcrs())[7] = std::string(31, 'x');
  EXPECT_THAT(PolicyFromRequest(request, 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  request = GoodPolicy();
  request.mutable_reference_sets(0)->set_bank("sha1");
  EXPECT_THAT(PolicyFromRequest(request, 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace hosn::release
