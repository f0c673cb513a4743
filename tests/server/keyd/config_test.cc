// Parsing, defaults and validation of the daemon configuration, and the
// example configs shipped in deploy/config/.
#include "server/keyd/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::keyd {
namespace {

using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kMinimal[] = R"(
listen_address: "127.0.0.1:7443"
tls { server_certificate_path: "s.pem" server_private_key_path: "s.key" client_ca_bundle_path: "ca.pem" }
hsm { module_path: "/m.so" token_uri: "pkcs11:token=t" pin_reference: "file:/pin" }
audit { directory: "/var/lib/a" checkpoint_key_label: "cp" checkpoint_certificate_chain_path: "cp.pem" }
)";

// Unset optional fields get their documented defaults.
TEST(Config, MinimalTextGetsDefaults) {
  HOSN_ASSERT_OK_AND_ASSIGN(auto config, ParseConfig(kMinimal, /*json=*/false));
  EXPECT_EQ(config.hsm().pool_size(), 4u);
  EXPECT_EQ(config.tls().reload_interval_seconds(), 10u);
  EXPECT_EQ(config.limits().max_request_bytes(), 4u << 20);
  EXPECT_EQ(config.limits().shutdown_grace_seconds(), 10u);
  EXPECT_EQ(config.logging().format(), "json");
  EXPECT_FALSE(config.replica_id().empty());
}

// Both example configs in deploy/config parse and validate.
TEST(Config, ShippedExamplesAreValid) {
  HOSN_EXPECT_OK(LoadConfig(hosn::testing::SourcePath("deploy/config/hosn-keyd.textproto")));
  HOSN_EXPECT_OK(LoadConfig(hosn::testing::SourcePath("deploy/config/hosn-keyd.dev.json")));
}

// A PIN given inline instead of as a reference is refused.
TEST(Config, InlinePinIsRefused) {
  std::string text = kMinimal;
  text.replace(text.find("file:/pin"), 9, "1234");
  EXPECT_THAT(ParseConfig(text, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hsm.pin_reference")));
}

// Unknown fields, bad addresses and bad levels name the field.
TEST(Config, ErrorsNameTheField) {
  EXPECT_THAT(ParseConfig("bogus: 1", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(ParseConfig(R"({"listenAddress": "x", "nope": 1})", true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("json")));
  std::string text = std::string(kMinimal) + "logging { level: \"loud\" }";  // a new block
  EXPECT_THAT(ParseConfig(text, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("logging.level")));
  std::string no_port = kMinimal;
  no_port.replace(no_port.find("127.0.0.1:7443"), 14, "127.0.0.1");
  EXPECT_THAT(ParseConfig(no_port, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen_address")));
}

// A signing key without its certificate chain is refused.
TEST(Config, SigningKeyNeedsChain) {
  std::string text = kMinimal;
  text.replace(text.find("pin_reference"), 0, "signing_key_label: \"s\" ");
  EXPECT_THAT(ParseConfig(text, false), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("signing_certificate_chain_path")));
}

// kMinimal with `hsm_fields` added to its hsm section.
std::string WithHsm(const std::string& hsm_fields) {
  std::string text = kMinimal;
  text.replace(text.find("pin_reference"), 0, hsm_fields + " ");
  return text;
}

// Several signing keys: the single fields stay the default key, signing_keys
// adds more, and the default may be named by label alone.
TEST(Config, SeveralSigningKeys) {
  HOSN_ASSERT_OK_AND_ASSIGN(
      auto config,
      ParseConfig(WithHsm(R"(signing_key_label: "b" signing_certificate_chain_path: "b.pem"
        signing_keys { label: "a" certificate_chain_path: "a.pem" })"),
                  false));
  auto keys = ConfiguredSigningKeys(config.hsm());
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].label(), "b");
  EXPECT_EQ(keys[0].certificate_chain_path(), "b.pem");
  EXPECT_EQ(keys[1].label(), "a");

  // The default named by label takes its chain from its entry, and so do
  // the audit checkpoint defaults.
  std::string by_label = WithHsm(R"(signing_key_label: "b"
        signing_keys { label: "a" certificate_chain_path: "a.pem" }
        signing_keys { label: "b" certificate_chain_path: "b.pem" })");
  by_label.replace(
      by_label.find("checkpoint_key_label"),
      by_label.find('}', by_label.find("audit")) - by_label.find("checkpoint_key_label"), "");
  HOSN_ASSERT_OK_AND_ASSIGN(config, ParseConfig(by_label, false));
  EXPECT_EQ(config.hsm().signing_certificate_chain_path(), "b.pem");
  EXPECT_EQ(config.audit().checkpoint_key_label(), "b");
  EXPECT_EQ(config.audit().checkpoint_certificate_chain_path(), "b.pem");
  keys = ConfiguredSigningKeys(config.hsm());
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].label(), "b");
  EXPECT_EQ(keys[1].label(), "a");

  // A lone entry is the default.
  HOSN_ASSERT_OK_AND_ASSIGN(
      config, ParseConfig(WithHsm(R"(signing_keys { label: "a" certificate_chain_path: "a.pem" })"),
                          false));
  EXPECT_EQ(config.hsm().signing_key_label(), "a");
  EXPECT_EQ(config.hsm().signing_certificate_chain_path(), "a.pem");

  // No signing key at all is still valid (signing RPCs answer FAILED_PRECONDITION).
  HOSN_ASSERT_OK_AND_ASSIGN(config, ParseConfig(kMinimal, false));
  EXPECT_TRUE(ConfiguredSigningKeys(config.hsm()).empty());
}

// Ambiguous or contradictory signing keys are refused, naming the field.
TEST(Config, AmbiguousSigningKeysAreRefused) {
  const auto refused = [](const std::string& fields, const std::string& field) {
    EXPECT_THAT(ParseConfig(WithHsm(fields), false),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << fields;
  };
  // Several keys and no default.
  refused(R"(signing_keys { label: "a" certificate_chain_path: "a.pem" }
             signing_keys { label: "b" certificate_chain_path: "b.pem" })",
          "config hsm.signing_key_label: missing");
  // A default label that is neither given a chain nor listed.
  refused(R"(signing_key_label: "c" signing_keys { label: "a" certificate_chain_path: "a.pem" })",
          "config hsm.signing_certificate_chain_path: required");
  // A chain without a label.
  refused(R"(signing_certificate_chain_path: "a.pem")",
          "config hsm.signing_certificate_chain_path: set without");
  // One label, two chains.
  refused(R"(signing_key_label: "a" signing_certificate_chain_path: "a.pem"
             signing_keys { label: "a" certificate_chain_path: "other.pem" })",
          "config hsm.signing_keys[0].certificate_chain_path: contradicts");
  refused(R"(signing_key_label: "a" signing_certificate_chain_path: "a.pem"
             signing_keys { label: "b" certificate_chain_path: "b.pem" }
             signing_keys { label: "b" certificate_chain_path: "b.pem" })",
          "config hsm.signing_keys[1].label: b listed twice");
  refused(R"(signing_key_label: "a" signing_certificate_chain_path: "a.pem"
             signing_keys { certificate_chain_path: "b.pem" })",
          "config hsm.signing_keys[0].label: missing");
  refused(R"(signing_key_label: "a" signing_certificate_chain_path: "a.pem"
             signing_keys { label: "b" })",
          "config hsm.signing_keys[0].certificate_chain_path: missing");
  // The same key listed again with the same chain is redundant, not contradictory.
  HOSN_EXPECT_OK(
      ParseConfig(WithHsm(R"(signing_key_label: "a" signing_certificate_chain_path: "a.pem"
             signing_keys { label: "a" certificate_chain_path: "a.pem" })"),
                  false));
}

// The audit log is required; its checkpoint key defaults to the signing key.
TEST(Config, AuditIsRequiredAndDefaultsToTheSigningKey) {
  std::string no_audit = kMinimal;
  no_audit.erase(no_audit.find("audit {"));
  EXPECT_THAT(ParseConfig(no_audit, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("audit.directory")));
  std::string defaulted = no_audit + R"(audit { directory: "/a" })";
  EXPECT_THAT(ParseConfig(defaulted, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("checkpoint_key_label")));
  defaulted.replace(defaulted.find("pin_reference"), 0,
                    "signing_key_label: \"s\" signing_certificate_chain_path: \"s.pem\" ");
  HOSN_ASSERT_OK_AND_ASSIGN(auto config, ParseConfig(defaulted, false));
  EXPECT_EQ(config.audit().checkpoint_key_label(), "s");
  EXPECT_EQ(config.audit().checkpoint_certificate_chain_path(), "s.pem");
  EXPECT_EQ(config.audit().checkpoint_interval(), 1000u);
  EXPECT_EQ(config.audit().max_file_bytes(), 64u << 20);
}

}  // namespace
}  // namespace hosn::keyd
