// The daemon configuration's release section: defaults and validation.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/keyd/config.h"
#include "tests/testing/status_matchers.h"

namespace hosn::keyd {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kBase[] = R"(
listen_address: "127.0.0.1:7443"
tls { server_certificate_path: "s.pem" server_private_key_path: "s.key" client_ca_bundle_path: "ca.pem" }
audit { directory: "/var/lib/a" checkpoint_key_label: "cp" checkpoint_certificate_chain_path: "cp.pem" }
)";

std::string With(const std::string& hsm_extra, const std::string& release) {
  return std::string(kBase) +
         "hsm { module_path: \"/m.so\" token_uri: \"pkcs11:token=t\" pin_reference: \"file:/p\" " +
         hsm_extra + " }\nrelease { " + release + " }\n";
}

TEST(ReleaseConfig, DefaultsWhenConfigured) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      auto config, ParseConfig(With("challenge_mac_key_label: \"mac\"",
                                    "release_key_label: \"rel\" manifest_ca_bundle_path: \"ca\""),
                               false));
  EXPECT_EQ(config.release().kdf(), "null");
  EXPECT_EQ(config.release().challenge_ttl_seconds(), 60u);
  EXPECT_EQ(config.release().enrollment_ttl_seconds(), 300u);
}

TEST(ReleaseConfig, Refusals) {
  EXPECT_THAT(
      ParseConfig(With("", "release_key_label: \"rel\" manifest_ca_bundle_path: \"ca\""), false),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("challenge_mac_key_label")));
  EXPECT_THAT(
      ParseConfig(With("challenge_mac_key_label: \"mac\"", "release_key_label: \"rel\""), false),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("manifest_ca_bundle_path")));
  EXPECT_THAT(ParseConfig(With("challenge_mac_key_label: \"mac\"",
                               "release_key_label: \"rel\" manifest_ca_bundle_path: \"ca\" "
                               "kdf: \"sha1\""),
                          false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("release.kdf")));
  EXPECT_THAT(ParseConfig(With("challenge_mac_key_label: \"mac\"",
                               "release_key_label: \"rel\" manifest_ca_bundle_path: \"ca\" "
                               "challenge_ttl_seconds: 7200"),
                          false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("challenge_ttl_seconds")));
  // Without a release key the section is inert.
  HOSN_EXPECT_OK(ParseConfig(With("", "kdf: \"whatever\""), false).status());
}

}  // namespace
}  // namespace hosn::keyd
