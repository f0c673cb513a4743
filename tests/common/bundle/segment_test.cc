#include "common/bundle/segment.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/base/hex.h"
#include "common/base/unique_fd.h"
#include "common/bundle/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::bundle {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr uint32_t kS = kMinSegmentSize;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Seals `plaintext` as file `path` with segment size kS and the test DEK.
std::string Seal(const std::string& plaintext, const std::string& path, SealedFileInfo* info) {
  UniqueFd in(::memfd_create("in", MFD_CLOEXEC));
  UniqueFd out(::memfd_create("out", MFD_CLOEXEC));
  EXPECT_EQ(::write(in.get(), plaintext.data(), plaintext.size()),
            static_cast<ssize_t>(plaintext.size()));
  ::lseek(in.get(), 0, SEEK_SET);
  auto sealed = SealStream(in.get(), out.get(), testing::TestDek(), path, kS, nullptr);
  EXPECT_THAT(sealed, IsOk());
  if (sealed.ok() && info != nullptr) *info = *sealed;
  std::string result(CiphertextSize(plaintext.size(), kS), '\0');
  EXPECT_EQ(::pread(out.get(), result.data(), result.size(), 0),
            static_cast<ssize_t>(result.size()));
  return result;
}

ExpectedFile Expect(const std::string& path, uint64_t size, const SealedFileInfo& info) {
  return ExpectedFile{path, size, kS, info.sha256_hex, info.tags_sha256_hex};
}

absl::StatusOr<std::string> Open(const std::string& sealed, const ExpectedFile& expected) {
  return OpenSealedBuffer(Bytes(sealed), testing::TestDek(), expected);
}

size_t SegmentStart(size_t index) { return kFileHeaderSize + index * (kS + kTagSize); }

// Runs every AES-GCM vector of one wycheproof file; returns how many valid
// AES-256 / 96-bit nonce / 128-bit tag vectors opened and sealed correctly.
int RunWycheproof(const std::string& file) {
  google::protobuf::Struct root;
  std::string json = testing::ReadFileOrDie(hosn::testing::SharedDataPath(file));
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &root).ok());
  int matched = 0;
  for (const auto& group_value : root.fields().at("testGroups").list_value().values()) {
    const auto& group = group_value.struct_value().fields();
    bool ours = group.at("keySize").number_value() == 256 &&
                group.at("ivSize").number_value() == 96 &&
                group.at("tagSize").number_value() == 128;
    for (const auto& test_value : group.at("tests").list_value().values()) {
      const auto& t = test_value.struct_value().fields();
      auto key = *HexDecode(t.at("key").string_value());
      auto iv = *HexDecode(t.at("iv").string_value());
      auto aad = *HexDecode(t.at("aad").string_value());
      auto msg = *HexDecode(t.at("msg").string_value());
      auto sealed = *HexDecode(t.at("ct").string_value() + t.at("tag").string_value());
      std::string result = t.at("result").string_value();
      std::vector<uint8_t> out(sealed.size() >= kTagSize ? sealed.size() - kTagSize : 0);
      absl::Status opened = AesGcmOpen(key, iv, aad, sealed, out);
      SCOPED_TRACE("tcId " + std::to_string(static_cast<int>(t.at("tcId").number_value())));
      if (!ours) {
        // Other key, nonce or tag sizes are refused outright.
        EXPECT_FALSE(opened.ok());
        continue;
      }
      if (result == "invalid") {
        EXPECT_FALSE(opened.ok());
        continue;
      }
      EXPECT_THAT(opened, IsOk());
      std::vector<uint8_t> resealed(msg.size() + kTagSize);
      EXPECT_THAT(AesGcmSeal(key, iv, aad, msg, resealed), IsOk());
      if (opened.ok() && out == msg && resealed == sealed) ++matched;
    }
  }
  return matched;
}

// The AES-256-GCM primitive matches every applicable wycheproof vector and
// refuses the rest.
TEST(AesGcm, MatchesWycheproofVectors) {
  int matched = RunWycheproof("crypto/wycheproof/aes_gcm_test.json");
  EXPECT_GT(matched, 20);
}

// Any tag length other than 16 is refused before the cipher runs.
TEST(AesGcm, RefusesShortTags) {
  std::vector<uint8_t> key(32, 1), nonce(12, 2), out(0);
  std::vector<uint8_t> twelve(12, 0);
  EXPECT_THAT(AesGcmOpen(key, nonce, {}, std::span<const uint8_t>(), out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aes-gcm")));
  EXPECT_FALSE(AesGcmOpen(key, nonce, {}, twelve, out).ok());
}

// S1: plaintexts of 0, 1, S-1, S, S+1, 2S and 3S bytes round-trip.
TEST(SegmentStream, RoundTripsBoundarySizes) {
  for (size_t size : std::vector<size_t>{0, 1, kS - 1, kS, kS + 1, 2 * kS, 3 * kS}) {
    SCOPED_TRACE(size);
    std::string plain = testing::PatternBytes(size, 7);
    SealedFileInfo info;
    std::string sealed = Seal(plain, "w/model.bin", &info);
    EXPECT_EQ(sealed.size(), CiphertextSize(size, kS));
    EXPECT_EQ(info.size, size);
    auto opened = Open(sealed, Expect("w/model.bin", size, info));
    ASSERT_THAT(opened, IsOk());
    EXPECT_EQ(*opened, plain);
  }
}

// S1: 1 or 16 junk bytes after an S, 2S or 3S ciphertext are refused.
TEST(SegmentStream, RefusesTrailingData) {
  for (size_t size : std::vector<size_t>{kS, 2 * kS, 3 * kS}) {
    for (size_t junk : {1, 16}) {
      SealedFileInfo info;
      std::string sealed =
          Seal(testing::PatternBytes(size, 1), "a", &info) + std::string(junk, 'x');
      EXPECT_THAT(Open(sealed, Expect("a", size, info)),
                  StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ciphertext_size_mismatch")));
    }
  }
}

// S2: swapped or duplicated segments of a three-segment file fail their tags.
TEST(SegmentStream, RefusesReorderedAndDuplicatedSegments) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(3 * kS, 2), "a", &info);
  const size_t seg = kS + kTagSize;
  std::string swapped = sealed;
  swapped.replace(SegmentStart(0), seg, sealed.substr(SegmentStart(1), seg));
  swapped.replace(SegmentStart(1), seg, sealed.substr(SegmentStart(0), seg));
  std::string duplicated = sealed;
  duplicated.replace(SegmentStart(1), seg, sealed.substr(SegmentStart(0), seg));
  ExpectedFile tags_unchecked = Expect("a", 3 * kS, info);
  tags_unchecked.tags_sha256_hex.clear();
  for (const std::string* bad : {&swapped, &duplicated}) {
    EXPECT_THAT(Open(*bad, tags_unchecked),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("segment_auth_failed")));
    EXPECT_THAT(Open(*bad, Expect("a", 3 * kS, info)),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("tags_digest_mismatch")));
  }
}

// S2: the last segment dropped (a cut at a boundary) fails even when the
// claimed size is cut to match: segment 1 was not sealed as final.
TEST(SegmentStream, RefusesTruncationAtSegmentBoundary) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(3 * kS, 3), "a", &info);
  std::string cut = sealed.substr(0, SegmentStart(2));
  EXPECT_THAT(Open(cut, Expect("a", 3 * kS, info)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ciphertext_size_mismatch")));
  ExpectedFile shorter{"a", 2 * kS, kS, "", ""};
  EXPECT_THAT(Open(cut, shorter),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("segment_auth_failed")));
}

// S2: an extra empty final segment, even one sealed with the right key, is
// refused: the size no longer matches and segment 2 was sealed as final.
TEST(SegmentStream, RefusesExtraEmptyFinalSegment) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(3 * kS, 4), "a", &info);
  auto header = FileHeader::Parse(Bytes(sealed));
  ASSERT_THAT(header, IsOk());
  auto cipher = SegmentCipher::Create(testing::TestDek(), "a", *header);
  ASSERT_THAT(cipher, IsOk());
  std::vector<uint8_t> empty_final(kTagSize);
  ASSERT_THAT((*cipher)->Seal(3, true, {}, empty_final), IsOk());
  std::string extended = sealed + std::string(empty_final.begin(), empty_final.end());
  EXPECT_THAT(Open(extended, Expect("a", 3 * kS, info)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ciphertext_size_mismatch")));
  // Read as a 3S+0 file of four segments it still fails: 3S has three.
  EXPECT_EQ(SegmentCount(3 * kS, kS), 3u);
}

// S2: a 0-byte file is one empty final segment and decrypts.
TEST(SegmentStream, DecryptsEmptyFile) {
  SealedFileInfo info;
  std::string sealed = Seal("", "empty", &info);
  EXPECT_EQ(sealed.size(), kFileHeaderSize + kTagSize);
  auto opened = Open(sealed, Expect("empty", 0, info));
  ASSERT_THAT(opened, IsOk());
  EXPECT_TRUE(opened->empty());
}

// S3: a bit flipped in the last byte of the last segment is refused.
TEST(SegmentStream, RefusesFlippedBit) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(2 * kS + 5, 5), "a", &info);
  std::string flipped = sealed;
  flipped[flipped.size() - kTagSize - 1] ^= 0x01;
  ExpectedFile expected = Expect("a", 2 * kS + 5, info);
  EXPECT_THAT(Open(flipped, expected),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("segment_auth_failed")));
  std::string flipped_tag = sealed;
  flipped_tag.back() ^= 0x80;
  EXPECT_FALSE(Open(flipped_tag, expected).ok());
}

// S3: a last tag cut to 0 or 12 bytes is refused.
TEST(SegmentStream, RefusesCutTags) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(kS + 9, 6), "a", &info);
  for (size_t keep : {0, 12}) {
    std::string cut = sealed.substr(0, sealed.size() - kTagSize + keep);
    EXPECT_THAT(Open(cut, Expect("a", kS + 9, info)),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ciphertext_size_mismatch")));
  }
}

// A file moved to another path, or a header changed, fails authentication.
TEST(SegmentStream, BindsPathAndHeader) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(kS, 8), "a/one.bin", &info);
  ExpectedFile moved{"a/two.bin", kS, kS, "", ""};
  EXPECT_THAT(Open(sealed, moved),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("segment_auth_failed")));
  std::string salted = sealed;
  salted[20] ^= 1;
  ExpectedFile same{"a/one.bin", kS, kS, "", ""};
  EXPECT_THAT(Open(salted, same),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("segment_auth_failed")));
  std::string magic = sealed;
  magic[0] = 'X';
  EXPECT_THAT(Open(magic, same),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("header_bad_magic")));
  std::string version = sealed;
  version[11] = 2;
  EXPECT_THAT(Open(version, same),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("header_bad_version")));
}

// A wrong DEK fails on the first segment; a DEK of the wrong size is refused.
TEST(SegmentStream, RefusesWrongDek) {
  SealedFileInfo info;
  std::string sealed = Seal(testing::PatternBytes(10, 9), "a", &info);
  SecretBytes other(32);
  EXPECT_THAT(OpenSealedBuffer(Bytes(sealed), other, Expect("a", 10, info)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("segment_auth_failed")));
  SecretBytes short_dek(16);
  EXPECT_THAT(OpenSealedBuffer(Bytes(sealed), short_dek, Expect("a", 10, info)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dek")));
}

// A plaintext digest that does not match the manifest is refused.
TEST(SegmentStream, ChecksPlaintextDigest) {
  SealedFileInfo info;
  std::string sealed = Seal("hello", "a", &info);
  ExpectedFile expected = Expect("a", 5, info);
  expected.sha256_hex = std::string(64, '0');
  EXPECT_THAT(Open(sealed, expected),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("plaintext_digest_mismatch")));
}

}  // namespace
}  // namespace hosn::bundle
