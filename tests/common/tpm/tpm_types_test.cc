// PCR selections and pcrDigest known answers (T5, T6).
#include "common/tpm/tpm_types.h"

#include "common/base/hex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace hosn::tpm {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

PcrValues Zeros(const PcrSelection& selection) {
  PcrValues values;
  for (const PcrBankSelection& bank : selection) {
    for (uint32_t pcr : bank.pcrs) values[bank.hash][pcr] = Bytes(HashDigestSize(bank.hash), 0);
  }
  return values;
}

struct DigestKat {
  TPM2_ALG_ID bank;
  TPM2_ALG_ID digest_alg;
  const char* expected;
};

class PcrDigestKat : public ::testing::TestWithParam<DigestKat> {};

// PCR0-7 all zero hash to the known pcrDigest for the bank and signing hash.
TEST_P(PcrDigestKat, ZeroPcr0To7) {
  const PcrSelection selection = {{GetParam().bank, {0, 1, 2, 3, 4, 5, 6, 7}}};
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes digest,
                            ComputePcrDigest(GetParam().digest_alg, selection, Zeros(selection)));
  EXPECT_EQ(HexEncode(digest), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PcrDigestKat,
    ::testing::Values(
        // T5: sha256 bank, SHA-256 signing hash.
        DigestKat{TPM2_ALG_SHA256, TPM2_ALG_SHA256,
                  "5341e6b2646979a70e57653007a1f310169421ec9bdd9f1a5648f75ade005af1"},
        // T6: sha1 bank, SHA-256 signing hash.
        DigestKat{TPM2_ALG_SHA1, TPM2_ALG_SHA256,
                  "b393978842a0fa3d3e1470196f098f473f9678e72463cb65ec4ab5581856c2e4"}));

// Selection order decides concatenation order: banks in list order, PCRs ascending.
TEST(PcrDigest, OrderFollowsSelection) {
  PcrSelection selection = {{TPM2_ALG_SHA256, {1, 2}}};
  PcrValues values;
  values[TPM2_ALG_SHA256][1] = Bytes(32, 0x01);
  values[TPM2_ALG_SHA256][2] = Bytes(32, 0x02);
  Bytes concatenated = values[TPM2_ALG_SHA256][1];
  concatenated.insert(concatenated.end(), 32, 0x02);
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes expected, HashBytes(TPM2_ALG_SHA256, concatenated));
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes digest, ComputePcrDigest(TPM2_ALG_SHA256, selection, values));
  EXPECT_EQ(digest, expected);
}

// A missing or wrong-length value is an error naming the PCR.
TEST(PcrDigest, MissingAndShortValues) {
  PcrSelection selection = {{TPM2_ALG_SHA256, {0, 7}}};
  PcrValues values;
  values[TPM2_ALG_SHA256][0] = Bytes(32, 0);
  EXPECT_THAT(ComputePcrDigest(TPM2_ALG_SHA256, selection, values),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("sha256:7")));
  values[TPM2_ALG_SHA256][7] = Bytes(20, 0);
  EXPECT_THAT(ComputePcrDigest(TPM2_ALG_SHA256, selection, values),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wrong length")));
}

// Selections survive the round trip through TPML_PCR_SELECTION, 24 PCRs included.
TEST(PcrSelection, RoundTripsThroughTpmStructure) {
  PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14}},
                            {TPM2_ALG_SHA1, {}}};
  for (uint32_t pcr = 0; pcr <= 23; ++pcr) selection[1].pcrs.push_back(pcr);
  HOSN_ASSERT_OK_AND_ASSIGN(TPML_PCR_SELECTION tpml, PcrSelectionToTpm(selection));
  EXPECT_EQ(tpml.pcrSelections[0].pcrSelect[1], 0x47);  // 8, 9, 10, 14
  HOSN_ASSERT_OK_AND_ASSIGN(PcrSelection back, PcrSelectionFromTpm(tpml));
  EXPECT_EQ(back, selection);
  EXPECT_EQ(PcrSelectionToString({{TPM2_ALG_SHA1, {0, 7}}}), "sha1:0,7");
}

// Out-of-range PCRs and unknown banks are refused.
TEST(PcrSelection, RejectsBadInput) {
  EXPECT_FALSE(PcrSelectionToTpm({{TPM2_ALG_SHA256, {24}}}).ok());
  EXPECT_FALSE(PcrSelectionToTpm({{0x1234, {0}}}).ok());
  TPML_PCR_SELECTION tpml = {};
  tpml.count = 1;
  tpml.pcrSelections[0].hash = TPM2_ALG_SHA256;
  tpml.pcrSelections[0].sizeofSelect = TPM2_PCR_SELECT_MAX + 1;
  EXPECT_FALSE(PcrSelectionFromTpm(tpml).ok());
}

}  // namespace
}  // namespace hosn::tpm
