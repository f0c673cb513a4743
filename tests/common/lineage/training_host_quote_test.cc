// The training-host quote of a lineage statement, checked offline
// (common/lineage/training_host_quote.h) against real quotes from a swtpm.
#include "common/lineage/training_host_quote.h"

#include <memory>
#include <optional>
#include <string>

#include "common/base/hex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/attest/swtpm.h"
#include "tests/testing/status_matchers.h"

namespace hosn::lineage {
namespace {

using ::hosn::attest::testing::Swtpm;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kOutput[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kOtherOutput[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
constexpr char kPcr0To7[] = "sha256:0,1,2,3,4,5,6,7";

std::string Str(const tpm::Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

class TrainingHostQuoteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = Swtpm::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    tpm_ = started->release();
    auto ak = tpm_->CreateAk("train_ak", "ecc", "ecdsa");
    ASSERT_TRUE(ak.ok()) << ak.status();
    ak_ = new Swtpm::Ak(*ak);
    auto other = tpm_->CreateAk("other_ak", "rsa", "rsassa");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ak_ = new Swtpm::Ak(*other);
  }
  static void TearDownTestSuite() {
    delete tpm_;
    delete ak_;
    delete other_ak_;
  }

  // A statement for output kOutput carrying a quote by `ak` over
  // `qualifying_data`.
  keyd::v1::LineageStatement Statement(const Swtpm::Ak& ak, const tpm::Bytes& qualifying_data) {
    auto quote = tpm_->MakeQuote(ak, kPcr0To7, qualifying_data);
    EXPECT_TRUE(quote.ok()) << quote.status();
    keyd::v1::LineageStatement statement;
    auto* predicate = statement.mutable_predicate();
    predicate->mutable_output()->set_manifest_sha256(kOutput);
    auto* q = predicate->mutable_training_host_quote();
    if (quote.ok()) {
      q->set_attest(Str(quote->attest));
      q->set_signature(Str(quote->signature));
    }
    q->set_ak_public(Str(ak.tpmt_public));
    return statement;
  }

  keyd::v1::LineageStatement BoundStatement() {
    auto nonce = TrainingHostQualifyingData(kOutput);
    EXPECT_TRUE(nonce.ok());
    return Statement(*ak_, nonce.ok() ? *nonce : tpm::Bytes{});
  }

  static Swtpm* tpm_;
  static Swtpm::Ak* ak_;
  static Swtpm::Ak* other_ak_;
};
Swtpm* TrainingHostQuoteTest::tpm_ = nullptr;
Swtpm::Ak* TrainingHostQuoteTest::ak_ = nullptr;
Swtpm::Ak* TrainingHostQuoteTest::other_ak_ = nullptr;

// The binding is SHA-256("hosn lineage training host quote v1" 0x00 digest),
// value computed with sha256sum from the spec in docs/lineage.md.
TEST(TrainingHostQualifyingData, KnownAnswer) {
  auto nonce = TrainingHostQualifyingData(kOutput);
  ASSERT_TRUE(nonce.ok());
  EXPECT_EQ(HexEncode(*nonce), "ee1797a69729791775eb793d6142d4db5fe76f7cc7299ce58527e0d88e7e8e71");
  EXPECT_FALSE(TrainingHostQualifyingData("AAAA").ok());
  EXPECT_FALSE(TrainingHostQualifyingData(std::string(64, 'A')).ok());
}

// A real quote bound to the output verifies, unpinned and pinned to its AK.
TEST_F(TrainingHostQuoteTest, RealQuoteVerifies) {
  const keyd::v1::LineageStatement statement = BoundStatement();
  auto unpinned = VerifyTrainingHostQuote(statement, std::nullopt);
  ASSERT_TRUE(unpinned.ok()) << unpinned.status();
  EXPECT_FALSE(unpinned->ak_pinned);
  EXPECT_EQ(unpinned->signature.scheme, TPM2_ALG_ECDSA);
  EXPECT_EQ(unpinned->pcr_selection, "sha256:0,1,2,3,4,5,6,7");
  EXPECT_EQ(unpinned->pcr_digest.size(), 64u);
  auto pinned = VerifyTrainingHostQuote(statement, Str(ak_->tpmt_public));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_TRUE(pinned->ak_pinned);
  EXPECT_EQ(pinned->ak_sha256, unpinned->ak_sha256);
}

// One flipped signature bit, or one flipped attest bit, breaks the signature.
TEST_F(TrainingHostQuoteTest, FlippedBytesRefused) {
  keyd::v1::LineageStatement statement = BoundStatement();
  auto* quote = statement.mutable_predicate()->mutable_training_host_quote();
  std::string signature = quote->signature();
  signature[signature.size() - 1] ^= 0x01;
  quote->set_signature(signature);
  EXPECT_THAT(VerifyTrainingHostQuote(statement, std::nullopt),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("quote_signature_invalid: bad signature")));

  statement = BoundStatement();
  quote = statement.mutable_predicate()->mutable_training_host_quote();
  std::string attest = quote->attest();
  attest[attest.size() - 1] ^= 0x01;
  quote->set_attest(attest);
  EXPECT_THAT(
      VerifyTrainingHostQuote(statement, std::nullopt),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_signature_invalid")));
}

// A genuine quote bound to another output (or to nothing of ours) is refused.
TEST_F(TrainingHostQuoteTest, WrongNonceRefused) {
  auto other = TrainingHostQualifyingData(kOtherOutput);
  ASSERT_TRUE(other.ok());
  EXPECT_THAT(VerifyTrainingHostQuote(Statement(*ak_, *other), Str(ak_->tpmt_public)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_nonce_mismatch")));
  EXPECT_THAT(VerifyTrainingHostQuote(Statement(*ak_, tpm::Bytes(32, 0x5a)), std::nullopt),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_nonce_mismatch")));
}

// A quote by another AK fails the pin; claiming the pinned AK for it fails
// the signature.
TEST_F(TrainingHostQuoteTest, OtherAkRefused) {
  auto nonce = TrainingHostQualifyingData(kOutput);
  ASSERT_TRUE(nonce.ok());
  keyd::v1::LineageStatement statement = Statement(*other_ak_, *nonce);
  ASSERT_TRUE(VerifyTrainingHostQuote(statement, std::nullopt).ok());
  EXPECT_THAT(VerifyTrainingHostQuote(statement, Str(ak_->tpmt_public)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_ak_mismatch")));
  statement.mutable_predicate()->mutable_training_host_quote()->set_ak_public(
      Str(ak_->tpmt_public));
  EXPECT_THAT(
      VerifyTrainingHostQuote(statement, Str(ak_->tpmt_public)),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_signature_invalid")));
}

// No quote, an unparsable AK, or an unparsable pin.
TEST_F(TrainingHostQuoteTest, MissingAndMalformedRefused) {
  keyd::v1::LineageStatement statement = BoundStatement();
  keyd::v1::LineageStatement bare = statement;
  bare.mutable_predicate()->clear_training_host_quote();
  EXPECT_THAT(VerifyTrainingHostQuote(bare, std::nullopt),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_missing")));
  EXPECT_THAT(VerifyTrainingHostQuote(statement, std::string("junk")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pinned ak")));
  statement.mutable_predicate()->mutable_training_host_quote()->set_ak_public("junk");
  EXPECT_THAT(VerifyTrainingHostQuote(statement, std::nullopt),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("quote_ak_unacceptable")));
}

}  // namespace
}  // namespace hosn::lineage
