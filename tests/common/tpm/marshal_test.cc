// Strict tss2-mu wrappers, AK public keys and the tpm2-tools PCR file, on the
// shared real data.
#include "common/tpm/marshal.h"

#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/pcr_file.h"
#include "common/tpm/qualifying_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::tpm {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

Bytes Read(const std::string& relative) {
  absl::StatusOr<std::string> text = ReadFile(hosn::testing::SharedDataPath(relative), 1 << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? Bytes(text->begin(), text->end()) : Bytes();
}

constexpr char kGce[] = "tpm/go-tpm-tools/attestations/gce-cos-85-nonce9009";

// A real TPMS_ATTEST round-trips byte for byte; one extra byte is refused.
TEST(Marshal, AttestRoundTripAndTrailingBytes) {
  Bytes bytes = Read(std::string(kGce) + ".quote1.sha256.tpms_attest");
  HOSN_ASSERT_OK_AND_ASSIGN(TPMS_ATTEST attest, UnmarshalAttest(bytes));
  EXPECT_EQ(attest.magic, TPM2_GENERATED_VALUE);
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes again, MarshalAttest(attest));
  EXPECT_EQ(again, bytes);
  bytes.push_back(0);
  EXPECT_THAT(UnmarshalAttest(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trailing bytes")));
  EXPECT_EQ(TryUnmarshalAttest(bytes).error, UnmarshalError::kTrailingBytes);
  bytes.resize(10);
  EXPECT_EQ(TryUnmarshalAttest(bytes).error, UnmarshalError::kMalformed);
}

// Signatures and public areas parse strictly too.
TEST(Marshal, SignatureAndPublic) {
  Bytes sig = Read(std::string(kGce) + ".quote1.sha256.tpmt_signature");
  HOSN_ASSERT_OK_AND_ASSIGN(TPMT_SIGNATURE parsed, UnmarshalSignature(sig));
  EXPECT_EQ(parsed.sigAlg, TPM2_ALG_RSASSA);
  sig.push_back(1);
  EXPECT_FALSE(UnmarshalSignature(sig).ok());

  Bytes pub = Read(std::string(kGce) + ".ak_pub.tpmt_public");
  HOSN_ASSERT_OK_AND_ASSIGN(TPMT_PUBLIC area, UnmarshalPublic(pub));
  EXPECT_EQ(area.type, TPM2_ALG_RSA);
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes again, MarshalPublic(area));
  EXPECT_EQ(again, pub);
}

// TPM2B_PUBLIC (tpm2-tools' ak.pub) needs its size prefix to match exactly.
TEST(Marshal, Tpm2bPublicSizeChecked) {
  Bytes pub = Read("tpm/keylime-emulator-quote/ak.pub");
  EXPECT_THAT(Unmarshal2bPublic(pub), IsOk());
  Bytes longer = pub;
  longer.push_back(0);
  EXPECT_FALSE(Unmarshal2bPublic(longer).ok());
  Bytes shorter(pub.begin(), pub.end() - 1);
  EXPECT_FALSE(Unmarshal2bPublic(shorter).ok());
}

// The real cloud AK (RSA-2048, restricted signing) is accepted and loads.
TEST(AkPublic, GceAkAccepted) {
  HOSN_ASSERT_OK_AND_ASSIGN(TPMT_PUBLIC area,
                            UnmarshalPublic(Read(std::string(kGce) + ".ak_pub.tpmt_public")));
  EXPECT_THAT(CheckAkAttributes(area), IsOk());
  HOSN_ASSERT_OK_AND_ASSIGN(auto ak, AkPublicKey::Create(area));
  EXPECT_EQ(EVP_PKEY_get_bits(ak->pkey()), 2048);
  area.objectAttributes &= ~TPMA_OBJECT_FIXEDTPM;
  EXPECT_THAT(CheckAkAttributes(area),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fixedTPM")));
}

// The keylime tpm2-tools PCR file gives sha256 PCRs 15, 16 and 22.
TEST(PcrFile, ReadsKeylimeFile) {
  Bytes bytes = Read("tpm/keylime-emulator-quote/quotepcr.out");
  HOSN_ASSERT_OK_AND_ASSIGN(PcrFile file, ParseTpm2ToolsPcrFile(bytes));
  EXPECT_EQ(PcrSelectionToString(file.selection), "sha256:15,16,22");
  EXPECT_EQ(file.values.at(TPM2_ALG_SHA256).size(), 3u);
  bytes.push_back(0);
  EXPECT_FALSE(ParseTpm2ToolsPcrFile(bytes).ok());
  bytes.resize(100);
  EXPECT_FALSE(ParseTpm2ToolsPcrFile(bytes).ok());
}

// Found by agent_pcr_file_fuzz: a 4-byte bitmap named PCRs 24-31, and a bank
// listed twice merged its values, so a selected PCR had no value of its own;
// both files were read, and the writer could not write them back.
TEST(PcrFile, RefusesPcrAbove23AndRepeatedBank) {
  const Bytes keylime = Read("tpm/keylime-emulator-quote/quotepcr.out");  // sha256:15,16,22
  Bytes above = keylime;
  above[6] = 4;       // sizeofSelect
  above[9] &= 0xbf;   // not pcr 22 ...
  above[10] |= 0x01;  // ... but pcr 24
  EXPECT_THAT(ParseTpm2ToolsPcrFile(above),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("above pcr 23")));

  Bytes twice = keylime;
  twice[0] = 2;  // two banks: sha256:15,16 and sha256:22
  twice[9] &= 0xbf;
  const uint8_t second[] = {0x0b, 0x00, 3, 0, 0, 0x40, 0, 0};
  std::copy(std::begin(second), std::end(second), twice.begin() + 12);
  EXPECT_THAT(ParseTpm2ToolsPcrFile(twice),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

// qualifyingData: 32 bytes, depends on nonce and key, refuses a short nonce.
TEST(QualifyingData, BindsNonceAndKey) {
  const Bytes nonce(32, 0xab);
  const Bytes key = {0x30, 0x59, 0x01};
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes q, ComputeQualifyingData(nonce, key));
  EXPECT_EQ(q.size(), kQualifyingDataSize);
  // Known answer, recomputed independently with the layout in the header.
  const std::string label = "hosn attest v1 qualifying data";
  Bytes message(label.begin(), label.end());
  const Bytes nonce_prefix = {0x00, 0x00, 0x20};
  const Bytes key_prefix = {0x00, 0x00, 0x00, 0x03};
  message.insert(message.end(), nonce_prefix.begin(), nonce_prefix.end());
  message.insert(message.end(), nonce.begin(), nonce.end());
  message.insert(message.end(), key_prefix.begin(), key_prefix.end());
  message.insert(message.end(), key.begin(), key.end());
  HOSN_ASSERT_OK_AND_ASSIGN(Bytes expected, HashBytes(TPM2_ALG_SHA256, message));
  EXPECT_EQ(q, expected);
  EXPECT_FALSE(ComputeQualifyingData(Bytes(31, 0), key).ok());
  EXPECT_FALSE(ComputeQualifyingData(nonce, {}).ok());
}

}  // namespace
}  // namespace hosn::tpm
