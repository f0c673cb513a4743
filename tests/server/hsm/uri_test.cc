#include "server/hsm/uri.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace hosn::hsm {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

// Token, serial and the query's module-path are split and %-decoded.
TEST(Pkcs11Uri, ParsesTokenSerialAndModulePath) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      Pkcs11Uri uri,
      ParsePkcs11Uri("pkcs11:token=hosn%20dev;serial=abc123;manufacturer=SoftHSM%20project"
                     "?module-path=/usr/lib/softhsm/libsofthsm2.so"));
  EXPECT_EQ(uri.token, "hosn dev");
  EXPECT_EQ(uri.serial, "abc123");
  EXPECT_EQ(uri.manufacturer, "SoftHSM project");
  EXPECT_EQ(uri.module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_FALSE(uri.model.has_value());
  EXPECT_TRUE(uri.SelectsToken());
}

// The id attribute keeps arbitrary bytes, including NUL and 0xff.
TEST(Pkcs11Uri, DecodesBinaryId) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      Pkcs11Uri uri, ParsePkcs11Uri("pkcs11:token=t;object=kek;type=secret-key;id=%00%FF%41"));
  EXPECT_EQ(uri.id, std::string("\x00\xff"
                                "A",
                                3));
  EXPECT_EQ(uri.object, "kek");
  EXPECT_EQ(uri.type, "secret-key");
}

// Formatting and parsing again gives the same value.
TEST(Pkcs11Uri, FormatRoundTrips) {
  Pkcs11Uri uri;
  uri.token = "a;b=c d";
  uri.serial = "0042";
  uri.id = std::string("\x01\x02", 2);
  uri.module_path = "/opt/x y.so";
  HOSN_ASSERT_OK_AND_ASSIGN(Pkcs11Uri again, ParsePkcs11Uri(FormatPkcs11Uri(uri)));
  EXPECT_EQ(again.token, uri.token);
  EXPECT_EQ(again.serial, uri.serial);
  EXPECT_EQ(again.id, uri.id);
  EXPECT_EQ(again.module_path, uri.module_path);
}

// A slot number is refused: slot ids move after re-initialisation.
TEST(Pkcs11Uri, RefusesSlotId) {
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:slot-id=0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slot-id")));
}

// A PIN inside the URI is refused; PINs come from files or credentials.
TEST(Pkcs11Uri, RefusesPinValue) {
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=t?pin-value=1234"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pin-value")));
}

// Malformed input fails with a message naming the problem.
TEST(Pkcs11Uri, RejectsMalformedInput) {
  EXPECT_THAT(ParsePkcs11Uri("pkcs12:token=t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pkcs11:")));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=%4"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("%-escape")));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=%zz"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("%-escape")));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=a;token=b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repeated token")));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:tokn=a"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown attribute")));
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=a;type=key"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("object type")));
}

// A URI without label or serial parses but does not select a token.
TEST(Pkcs11Uri, ModelAloneDoesNotSelectToken) {
  HOSN_ASSERT_OK_AND_ASSIGN(Pkcs11Uri uri, ParsePkcs11Uri("pkcs11:model=SoftHSM%20v2"));
  EXPECT_FALSE(uri.SelectsToken());
}

}  // namespace
}  // namespace hosn::hsm
