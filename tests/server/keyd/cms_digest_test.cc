// CheckCmsMessageDigest: the DER walk that decides whether the daemon signs
// a set of CMS signed attributes for the manifest it was given.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/keyd/hsm_backend.h"
#include "tests/testing/status_matchers.h"

namespace hosn::keyd {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kDigest(32, '\x11');

// Attribute { messageDigest (1.2.840.113549.1.9.4), SET { OCTET STRING value } }.
std::string DigestAttribute(const std::string& value) {
  std::string octets = std::string("\x04") + static_cast<char>(value.size()) + value;
  std::string set = std::string("\x31") + static_cast<char>(octets.size()) + octets;
  const std::string oid("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x04", 11);
  std::string body = oid + set;
  return std::string("\x30") + static_cast<char>(body.size()) + body;
}

// Attribute { contentType (1.2.840.113549.1.9.3), SET { OID data } }.
std::string ContentTypeAttribute() {
  const std::string oid("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x03", 11);
  const std::string data("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01", 11);
  std::string set = std::string("\x31") + static_cast<char>(data.size()) + data;
  std::string body = oid + set;
  return std::string("\x30") + static_cast<char>(body.size()) + body;
}

std::string Set(const std::string& content) {
  return std::string("\x31") + static_cast<char>(content.size()) + content;
}

// Exactly one matching messageDigest among other attributes is accepted.
TEST(CmsMessageDigest, AcceptsMatchingDigest) {
  HOSN_EXPECT_OK(
      CheckCmsMessageDigest(Set(ContentTypeAttribute() + DigestAttribute(kDigest)), kDigest));
}

// A digest of another manifest is refused.
TEST(CmsMessageDigest, RefusesOtherDigest) {
  EXPECT_THAT(CheckCmsMessageDigest(Set(DigestAttribute(std::string(32, '\x22'))), kDigest),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
}

// Two digests, none, trailing bytes and truncation are refused.
TEST(CmsMessageDigest, RefusesMalformedSets) {
  EXPECT_THAT(
      CheckCmsMessageDigest(Set(DigestAttribute(kDigest) + DigestAttribute(kDigest)), kDigest),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
  EXPECT_THAT(CheckCmsMessageDigest(Set(ContentTypeAttribute()), kDigest),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
  EXPECT_THAT(CheckCmsMessageDigest(Set(DigestAttribute(kDigest)) + "x", kDigest),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a der set")));
  const std::string good = Set(DigestAttribute(kDigest));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(CheckCmsMessageDigest(good.substr(0, cut), kDigest).ok()) << cut;
  }
  EXPECT_FALSE(CheckCmsMessageDigest("", kDigest).ok());
}

// Indefinite lengths (BER, not DER) are refused.
TEST(CmsMessageDigest, RefusesIndefiniteLength) {
  const std::string inner = DigestAttribute(kDigest);
  EXPECT_FALSE(CheckCmsMessageDigest(
                   std::string("\x31\x80", 2) + inner + std::string("\x00\x00", 2), kDigest)
                   .ok());
}

}  // namespace
}  // namespace hosn::keyd
