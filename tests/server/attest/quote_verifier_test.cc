// Quote verification: cases T1, T2, T3, T5 and T6 of shared/cases, the real
// go-tpm-tools cloud attestations and the keylime tpm2-tools quote.
#include "server/attest/quote_verifier.h"

#include <string>
#include <vector>

#include "common/base/hex.h"
#include "common/tpm/marshal.h"
#include "common/tpm/pcr_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/attest/challenge.h"
#include "server/attest/denial.h"
#include "server/attest/event_log.h"
#include "tests/server/attest/swtpm.h"
#include "tests/server/attest/test_data.h"
#include "tests/server/attest/test_quotes.h"
#include "tests/testing/status_matchers.h"

namespace hosn::attest {
namespace {

using ::hosn::testing::IsOk;
using ::testing::HasSubstr;
using testing::MakeQuoteAttest;
using testing::MakeTestAk;
using testing::SignAttest;
using testing::TestAk;

tpm::Bytes Nonce(uint8_t fill) { return tpm::Bytes(32, fill); }

// The denial reason of `result`, or nullopt if it succeeded.
template <typename T>
std::optional<DenialReason> ReasonOf(const absl::StatusOr<T>& result) {
  return GetDenialReason(result.status());
}

// A quote from `ak` over sha256:0-7 filled with 0x11, with `attest` edited by
// `edit` before signing.
struct Signed {
  tpm::Bytes attest;
  tpm::Bytes signature;
  tpm::PcrValues pcrs;
};
Signed SignedQuote(const TestAk& ak, TPM2_ALG_ID scheme, std::span<const uint8_t> extra,
                   void (*edit)(TPMS_ATTEST&) = nullptr) {
  const tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7}}};
  Signed out;
  out.pcrs = testing::FilledPcrValues(selection, 0x11);
  TPML_PCR_SELECTION tpml = *tpm::PcrSelectionToTpm(selection);
  tpm::Bytes digest = *tpm::ComputePcrDigest(TPM2_ALG_SHA256, selection, out.pcrs);
  TPMS_ATTEST attest = MakeQuoteAttest(extra, tpml, digest);
  if (edit != nullptr) edit(attest);
  out.attest = *tpm::MarshalAttest(attest);
  out.signature = *SignAttest(ak, out.attest, scheme);
  return out;
}

// A synthetic quote from a correctly attributed key verifies, for each scheme.
TEST(QuoteVerifier, SyntheticQuoteVerifiesForEachScheme) {
  for (TPM2_ALG_ID scheme : {TPM2_ALG_RSASSA, TPM2_ALG_RSAPSS, TPM2_ALG_ECDSA}) {
    HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(scheme));
    HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
    Signed quote = SignedQuote(test_ak, scheme, Nonce(7));
    HOSN_ASSERT_OK_AND_ASSIGN(
        VerifiedQuote verified,
        VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), quote.pcrs));
    EXPECT_EQ(verified.signature_scheme, scheme);
    EXPECT_EQ(verified.quoted_values.at(TPM2_ALG_SHA256).size(), 8u);
  }
}

// T1: magic 0, signed correctly, is "bad magic".
TEST(QuoteVerifier, T1BadMagicDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_RSASSA));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
  Signed quote =
      SignedQuote(test_ak, TPM2_ALG_RSASSA, Nonce(7), [](TPMS_ATTEST& a) { a.magic = 0; });
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), quote.pcrs)),
            DenialReason::kBadMagic);
}

// T1: type 0x8017 with a quote-shaped body, signed correctly, is "not a quote".
TEST(QuoteVerifier, T1CertifyTypeDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_RSASSA));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
  Signed quote = SignedQuote(test_ak, TPM2_ALG_RSASSA, Nonce(7));
  quote.attest[5] = 0x17;  // type: 0x8018 -> 0x8017, body untouched
  quote.signature = *SignAttest(test_ak, quote.attest, TPM2_ALG_RSASSA);
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), quote.pcrs)),
            DenialReason::kNotAQuote);
}

// T1: a valid quote plus 3 trailing bytes, signed correctly, is "trailing bytes".
TEST(QuoteVerifier, T1TrailingBytesDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_ECDSA));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
  Signed quote = SignedQuote(test_ak, TPM2_ALG_ECDSA, Nonce(7));
  quote.attest.insert(quote.attest.end(), {0xaa, 0xbb, 0xcc});
  quote.signature = *SignAttest(test_ak, quote.attest, TPM2_ALG_ECDSA);
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), quote.pcrs)),
            DenialReason::kTrailingBytes);
}

class AkAttributeTest : public ::testing::TestWithParam<TPMA_OBJECT> {};

// T1: an AK lacking restricted, sign, fixedTPM or fixedParent (or also able to
// decrypt) is refused at enrollment.
TEST_P(AkAttributeTest, RefusedAtEnrollment) {
  TPMA_OBJECT attributes = testing::kAkAttributes;
  if (GetParam() == TPMA_OBJECT_DECRYPT) {
    attributes |= TPMA_OBJECT_DECRYPT;
  } else {
    attributes &= ~GetParam();
  }
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_RSASSA, attributes));
  EXPECT_EQ(ReasonOf(AcceptAk(test_ak.marshalled)), DenialReason::kAkNotAcceptable);
}

INSTANTIATE_TEST_SUITE_P(Attributes, AkAttributeTest,
                         ::testing::Values(TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SIGN_ENCRYPT,
                                           TPMA_OBJECT_FIXEDTPM, TPMA_OBJECT_FIXEDPARENT,
                                           TPMA_OBJECT_DECRYPT));

// T6: a SHA-1 bank quote signed with RSASSA-SHA256 hashes the 160 zero bytes
// with SHA-256 (the signing hash) and verifies.
TEST(QuoteVerifier, T6Sha1BankDigestUsesSigningHash) {
  const tpm::PcrSelection selection = {{TPM2_ALG_SHA1, {0, 1, 2, 3, 4, 5, 6, 7}}};
  const tpm::PcrValues zeros = testing::FilledPcrValues(selection, 0);
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes digest,
                            tpm::ComputePcrDigest(TPM2_ALG_SHA256, selection, zeros));
  EXPECT_EQ(HexEncode(digest), "b393978842a0fa3d3e1470196f098f473f9678e72463cb65ec4ab5581856c2e4");

  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_RSASSA));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
  TPMS_ATTEST attest = MakeQuoteAttest(Nonce(3), *tpm::PcrSelectionToTpm(selection), digest);
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes attest_bytes, tpm::MarshalAttest(attest));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes sig, SignAttest(test_ak, attest_bytes, TPM2_ALG_RSASSA));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote verified,
                            VerifyQuote(*ak, attest_bytes, sig, Nonce(3), zeros));
  EXPECT_EQ(verified.signature_hash, TPM2_ALG_SHA256);
  EXPECT_EQ(verified.selection[0].hash, TPM2_ALG_SHA1);
}

// A signature with SHA-1 as its hash is refused even from a scheme-free key.
TEST(QuoteVerifier, Sha1SigningHashDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_RSASSA));
  test_ak.public_area.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.public_area));
  Signed quote = SignedQuote(test_ak, TPM2_ALG_RSASSA, Nonce(7));
  quote.signature = *SignAttest(test_ak, quote.attest, TPM2_ALG_RSASSA, TPM2_ALG_SHA1);
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), quote.pcrs)),
            DenialReason::kSignatureSchemeMismatch);
}

// PCR values that do not hash to pcrDigest, or that are missing, are denied.
TEST(QuoteVerifier, T4SentValuesMustHashToPcrDigest) {
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_ECDSA));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
  Signed quote = SignedQuote(test_ak, TPM2_ALG_ECDSA, Nonce(7));
  tpm::PcrValues changed = quote.pcrs;
  changed[TPM2_ALG_SHA256][7][0] ^= 1;
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), changed)),
            DenialReason::kPcrDigestMismatch);
  tpm::PcrValues missing = quote.pcrs;
  missing[TPM2_ALG_SHA256].erase(7);
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), missing)),
            DenialReason::kPcrValueMissing);
}

// A signed selection naming an unknown bank is a denial, not an internal error.
TEST(QuoteVerifier, UnknownBankInSelectionDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(TestAk test_ak, MakeTestAk(TPM2_ALG_RSASSA));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(test_ak.marshalled));
  Signed quote = SignedQuote(test_ak, TPM2_ALG_RSASSA, Nonce(7), [](TPMS_ATTEST& a) {
    a.attested.quote.pcrSelect.pcrSelections[0].hash = 0x1234;
  });
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, Nonce(7), quote.pcrs)),
            DenialReason::kMalformedAttest);
}

// T3: extraData must be exactly the expected binding; empty never matches.
TEST(ExtraData, T3ExactLengthComparison) {
  const tpm::Bytes expected = Nonce(0x42);
  EXPECT_TRUE(ExtraDataMatches(expected, expected));
  EXPECT_FALSE(ExtraDataMatches({}, expected));
  EXPECT_FALSE(ExtraDataMatches({}, {}));
  EXPECT_FALSE(ExtraDataMatches(Nonce(0x43), expected));
  tpm::Bytes appended = expected;
  appended.push_back(0);
  EXPECT_FALSE(ExtraDataMatches(appended, expected));
  tpm::Bytes padded = expected;
  padded.resize(64, 0);
  EXPECT_FALSE(ExtraDataMatches(padded, expected));
}

// T3: challenges are 32 fresh random bytes; the binding depends on nonce and key.
TEST(Challenge, T3FreshNoncesAndBinding) {
  HOSN_ASSERT_OK_AND_ASSIGN(Challenge a, Challenge::Generate());
  HOSN_ASSERT_OK_AND_ASSIGN(Challenge b, Challenge::Generate());
  EXPECT_EQ(a.nonce().size(), 32u);
  EXPECT_FALSE(std::equal(a.nonce().begin(), a.nonce().end(), b.nonce().begin()));
  const tpm::Bytes key = {1, 2, 3};
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes qa, a.QualifyingData(key));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes qb, b.QualifyingData(key));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes qa2, a.QualifyingData(tpm::Bytes{1, 2, 4}));
  EXPECT_EQ(qa.size(), 32u);
  EXPECT_NE(qa, qb);
  EXPECT_NE(qa, qa2);
  EXPECT_FALSE(Challenge::FromBytes(tpm::Bytes(31, 0)).ok());
}

// ---------------------------------------------------------------------------
// Quotes from a real swtpm.

class SwtpmQuoteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<testing::Swtpm>> started = testing::Swtpm::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    tpm_ = started->release();
    auto rsa = tpm_->CreateAk("ak_a", "rsa", "rsassa");
    ASSERT_TRUE(rsa.ok()) << rsa.status();
    rsa_ak_ = new testing::Swtpm::Ak(*rsa);
    auto ecc = tpm_->CreateAk("ak_ecc", "ecc", "ecdsa");
    ASSERT_TRUE(ecc.ok()) << ecc.status();
    ecc_ak_ = new testing::Swtpm::Ak(*ecc);
    auto other = tpm_->CreateAk("ak_b", "rsa", "rsassa");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ak_ = new testing::Swtpm::Ak(*other);
  }
  static void TearDownTestSuite() {
    delete tpm_;
    delete rsa_ak_;
    delete ecc_ak_;
    delete other_ak_;
  }

  static testing::Swtpm* tpm_;
  static testing::Swtpm::Ak* rsa_ak_;
  static testing::Swtpm::Ak* ecc_ak_;
  static testing::Swtpm::Ak* other_ak_;
};
testing::Swtpm* SwtpmQuoteTest::tpm_ = nullptr;
testing::Swtpm::Ak* SwtpmQuoteTest::rsa_ak_ = nullptr;
testing::Swtpm::Ak* SwtpmQuoteTest::ecc_ak_ = nullptr;
testing::Swtpm::Ak* SwtpmQuoteTest::other_ak_ = nullptr;

constexpr char kPcr0To7[] = "sha256:0,1,2,3,4,5,6,7";

// T2: the untouched swtpm quote passes; the AK passes enrollment.
TEST_F(SwtpmQuoteTest, T2UntouchedQuotePasses) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(rsa_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote, tpm_->MakeQuote(*rsa_ak_, kPcr0To7, Nonce(1)));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote verified, VerifyQuote(*ak, quote.attest, quote.signature,
                                                                Nonce(1), quote.pcrs.values));
  EXPECT_EQ(verified.signature_scheme, TPM2_ALG_RSASSA);
  EXPECT_EQ(tpm::PcrSelectionToString(verified.selection), "sha256:0,1,2,3,4,5,6,7");
}

// T2: one flipped signature bit, one flipped body bit, another node's AK, an
// RSASSA signature for an ECDSA AK and no signature are all denied.
TEST_F(SwtpmQuoteTest, T2TamperedQuotesDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(rsa_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto other, AcceptAk(other_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ecc, AcceptAk(ecc_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote, tpm_->MakeQuote(*rsa_ak_, kPcr0To7, Nonce(1)));
  const tpm::PcrValues& pcrs = quote.pcrs.values;

  tpm::Bytes sig = quote.signature;
  sig[sig.size() - 10] ^= 0x01;
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, sig, Nonce(1), pcrs)),
            DenialReason::kBadSignature);

  tpm::Bytes body = quote.attest;
  body[body.size() - 5] ^= 0x01;  // inside pcrDigest
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, body, quote.signature, Nonce(1), pcrs)),
            DenialReason::kBadSignature);

  EXPECT_EQ(ReasonOf(VerifyQuote(*other, quote.attest, quote.signature, Nonce(1), pcrs)),
            DenialReason::kBadSignature);

  EXPECT_EQ(ReasonOf(VerifyQuote(*ecc, quote.attest, quote.signature, Nonce(1), pcrs)),
            DenialReason::kSignatureSchemeMismatch);

  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, {}, Nonce(1), pcrs)),
            DenialReason::kNoSignature);
  const tpm::Bytes null_sig = {0x00, 0x10};  // TPMT_SIGNATURE with sigAlg TPM_ALG_NULL
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, null_sig, Nonce(1), pcrs)),
            DenialReason::kNoSignature);
  tpm::Bytes long_sig = quote.signature;
  long_sig.push_back(0);
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, quote.attest, long_sig, Nonce(1), pcrs)),
            DenialReason::kMalformedSignature);
}

// T2: the ECDSA AK's own swtpm quote verifies.
TEST_F(SwtpmQuoteTest, T2EcdsaQuotePasses) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto ecc, AcceptAk(ecc_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote, tpm_->MakeQuote(*ecc_ak_, kPcr0To7, Nonce(9)));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote verified, VerifyQuote(*ecc, quote.attest, quote.signature,
                                                                Nonce(9), quote.pcrs.values));
  EXPECT_EQ(verified.signature_scheme, TPM2_ALG_ECDSA);
}

// T3: quotes with empty extraData, another node's nonce, a byte appended or
// zero-padded to 64 bytes are all "nonce mismatch".
TEST_F(SwtpmQuoteTest, T3NonceVariantsDenied) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(rsa_ak_->tpmt_public));
  const tpm::Bytes expected = Nonce(0x5a);
  tpm::Bytes appended = expected;
  appended.push_back(0x00);
  tpm::Bytes padded = expected;
  padded.resize(64, 0x00);
  const std::vector<tpm::Bytes> variants = {{}, Nonce(0x5b), appended, padded};
  for (const tpm::Bytes& extra : variants) {
    HOSN_ASSERT_OK_AND_ASSIGN(auto quote, tpm_->MakeQuote(*rsa_ak_, kPcr0To7, extra));
    EXPECT_EQ(
        ReasonOf(VerifyQuote(*ak, quote.attest, quote.signature, expected, quote.pcrs.values)),
        DenialReason::kNonceMismatch)
        << "extraData of " << extra.size() << " bytes";
  }
}

class SwtpmSelectionTest : public SwtpmQuoteTest,
                           public ::testing::WithParamInterface<const char*> {};

// T5: selections of 7, 8, 12 and 24 PCRs verify.
TEST_P(SwtpmSelectionTest, T5SelectionVerifies) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(rsa_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote, tpm_->MakeQuote(*rsa_ak_, GetParam(), Nonce(2)));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote verified, VerifyQuote(*ak, quote.attest, quote.signature,
                                                                Nonce(2), quote.pcrs.values));
  EXPECT_EQ(verified.selection, quote.pcrs.selection);
}

INSTANTIATE_TEST_SUITE_P(Selections, SwtpmSelectionTest,
                         ::testing::Values("sha256:0,1,2,3,4,5,6", "sha256:0,1,2,3,4,5,6,7",
                                           "sha256:0,1,2,3,4,5,6,7,8,9,10,14",
                                           "sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,"
                                           "18,19,20,21,22,23"));

// T5 KAT: on a fresh swtpm PCR0-7 are zero and the quote's pcrDigest is
// 5341e6b2...5af1.
TEST_F(SwtpmQuoteTest, T5ZeroPcrDigestKat) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote, tpm_->MakeQuote(*rsa_ak_, kPcr0To7, Nonce(2)));
  HOSN_ASSERT_OK_AND_ASSIGN(TPMS_ATTEST attest, ParseQuote(quote.attest));
  const TPM2B_DIGEST& digest = attest.attested.quote.pcrDigest;
  EXPECT_EQ(HexEncode({digest.buffer, digest.size}),
            "5341e6b2646979a70e57653007a1f310169421ec9bdd9f1a5648f75ade005af1");
  const tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7}}};
  HOSN_ASSERT_OK_AND_ASSIGN(
      tpm::Bytes computed,
      tpm::ComputePcrDigest(TPM2_ALG_SHA256, selection, testing::FilledPcrValues(selection, 0)));
  EXPECT_EQ(HexEncode(computed), HexEncode({digest.buffer, digest.size}));
}

// T6 on a real TPM: a SHA-1 bank quote signed RSASSA-SHA256 verifies.
TEST_F(SwtpmQuoteTest, T6Sha1BankQuoteVerifies) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(rsa_ak_->tpmt_public));
  HOSN_ASSERT_OK_AND_ASSIGN(auto quote,
                            tpm_->MakeQuote(*rsa_ak_, "sha1:0,1,2,3,4,5,6,7", Nonce(6)));
  HOSN_ASSERT_OK_AND_ASSIGN(TPMS_ATTEST attest, ParseQuote(quote.attest));
  const TPM2B_DIGEST& digest = attest.attested.quote.pcrDigest;
  EXPECT_EQ(HexEncode({digest.buffer, digest.size}),
            "b393978842a0fa3d3e1470196f098f473f9678e72463cb65ec4ab5581856c2e4");
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote verified, VerifyQuote(*ak, quote.attest, quote.signature,
                                                                Nonce(6), quote.pcrs.values));
  EXPECT_EQ(verified.selection[0].hash, TPM2_ALG_SHA1);
}

// ---------------------------------------------------------------------------
// Real cloud vTPM attestations (go-tpm-tools).

struct GceCase {
  std::string attestation;  // "gce-cos-85-no-nonce"
  int quote;                // 0 sha1, 1 sha256, 2 sha384
  std::string bank;
};

class GceAttestationTest : public ::testing::TestWithParam<GceCase> {};

// Signature, extraData, pcrDigest over PCR0-9 and event-log replay all hold.
TEST_P(GceAttestationTest, QuoteAndLogVerify) {
  const GceCase& c = GetParam();
  const std::string base = "tpm/go-tpm-tools/attestations/" + c.attestation;
  const std::string quote_base = base + ".quote" + std::to_string(c.quote) + "." + c.bank;
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak_bytes,
                            testing::ReadSharedBytes(base + ".ak_pub.tpmt_public"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes attest,
                            testing::ReadSharedBytes(quote_base + ".tpms_attest"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes sig,
                            testing::ReadSharedBytes(quote_base + ".tpmt_signature"));
  HOSN_ASSERT_OK_AND_ASSIGN(google::protobuf::Struct expected,
                            testing::ReadSharedJson(base + ".expected.json"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes nonce,
                            HexDecode(expected.fields().at("nonce_hex").string_value()));
  const auto& quote_json =
      expected.fields().at("quotes").list_value().values(c.quote).struct_value();
  ASSERT_EQ(quote_json.fields().at("bank").string_value(), c.bank);
  HOSN_ASSERT_OK_AND_ASSIGN(TPM2_ALG_ID bank, tpm::HashAlgFromName(c.bank));
  tpm::PcrValues sent;
  HOSN_ASSERT_OK_AND_ASSIGN(
      sent[bank], testing::PcrBankFromJson(quote_json.fields().at("pcrs").struct_value()));

  // 1. The AK is acceptable and signed this quote with RSASSA-SHA256.
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(ak_bytes));
  HOSN_ASSERT_OK_AND_ASSIGN(SignatureInfo info, VerifyQuoteSignature(*ak, attest, sig));
  EXPECT_EQ(info.scheme, TPM2_ALG_RSASSA);
  EXPECT_EQ(info.hash, TPM2_ALG_SHA256);

  // 2. extraData is the nonce (empty or 90 09).
  HOSN_ASSERT_OK_AND_ASSIGN(TPMS_ATTEST parsed, ParseQuote(attest));
  EXPECT_EQ(HexEncode({parsed.extraData.buffer, parsed.extraData.size}), HexEncode(nonce));

  // 3. pcrDigest matches the PCR values, and PCR0-9 are among them.
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrValues quoted, CheckPcrDigest(parsed, info.hash, sent));
  for (uint32_t pcr = 0; pcr <= 9; ++pcr) EXPECT_TRUE(quoted.at(bank).contains(pcr)) << pcr;

  // 4. The whole pipeline: passes with the nonce, and an empty nonce never passes.
  if (nonce.empty()) {
    EXPECT_EQ(ReasonOf(VerifyQuote(*ak, attest, sig, nonce, sent)), DenialReason::kNonceMismatch);
  } else {
    EXPECT_THAT(VerifyQuote(*ak, attest, sig, nonce, sent), IsOk());
  }

  // 5. The event log replays to PCR0-9 as quoted.
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes log_bytes,
                            testing::ReadSharedBytes(base + ".binary_bios_measurements"));
  HOSN_ASSERT_OK_AND_ASSIGN(EventLog log, ParseEventLog(log_bytes));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrValues replayed, ReplayEventLog(log));
  const std::vector<uint32_t> pcrs = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_THAT(CheckReplayMatchesQuote(log, replayed, quoted, pcrs), IsOk());
  tpm::PcrValues tampered = quoted;
  tampered[bank][4][0] ^= 1;
  EXPECT_EQ(GetDenialReason(CheckReplayMatchesQuote(log, replayed, tampered, pcrs)),
            DenialReason::kEventLogPcrMismatch);
}

INSTANTIATE_TEST_SUITE_P(Gce, GceAttestationTest,
                         ::testing::Values(GceCase{"gce-cos-85-no-nonce", 0, "sha1"},
                                           GceCase{"gce-cos-85-no-nonce", 1, "sha256"},
                                           GceCase{"gce-cos-85-no-nonce", 2, "sha384"},
                                           GceCase{"gce-cos-85-nonce9009", 0, "sha1"},
                                           GceCase{"gce-cos-85-nonce9009", 1, "sha256"},
                                           GceCase{"gce-cos-85-nonce9009", 2, "sha384"}));

// The keylime emulator quote in tpm2-tools file format verifies with its nonce.
TEST(KeylimeQuote, VerifiesWithNonce) {
  const std::string base = "tpm/keylime-emulator-quote/";
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak_bytes, testing::ReadSharedBytes(base + "ak.pub"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes attest, testing::ReadSharedBytes(base + "quote.out"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes sig, testing::ReadSharedBytes(base + "quotesig.out"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes pcr_file, testing::ReadSharedBytes(base + "quotepcr.out"));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes nonce,
                            HexDecode("db1db298db6d60e6385b7231743e9c3056a18003"));
  HOSN_ASSERT_OK_AND_ASSIGN(TPMT_PUBLIC area, tpm::Unmarshal2bPublic(ak_bytes));
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AcceptAk(area));
  HOSN_ASSERT_OK_AND_ASSIGN(tpm::PcrFile pcrs, tpm::ParseTpm2ToolsPcrFile(pcr_file));
  HOSN_ASSERT_OK_AND_ASSIGN(VerifiedQuote verified,
                            VerifyQuote(*ak, attest, sig, nonce, pcrs.values));
  EXPECT_EQ(verified.selection, pcrs.selection);
  nonce.back() ^= 1;
  EXPECT_EQ(ReasonOf(VerifyQuote(*ak, attest, sig, nonce, pcrs.values)),
            DenialReason::kNonceMismatch);
}

}  // namespace
}  // namespace hosn::attest
