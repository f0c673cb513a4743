#include "common/bundle/manifest.h"

#include <string>
#include <vector>

#include "common/bundle/errors.h"
#include "common/bundle/path_rules.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/bundle/bundle_test_util.h"
#include "tests/testing/status_matchers.h"

namespace hosn::bundle {
namespace {

using ::hosn::testing::IsOk;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kDigest(64, 'a');

BundleManifest ValidManifest(const std::vector<std::string>& paths) {
  BundleManifest m;
  m.set_format_version(1);
  m.mutable_model()->set_name("embeddings-en");
  m.mutable_model()->set_version("0.2.0");
  m.set_created_at("2026-12-03T17:00:00Z");
  auto* enc = m.mutable_encryption();
  enc->set_aead("AES-256-GCM");
  enc->set_kdf("HKDF-SHA256");
  enc->set_segment_size(1 << 20);
  enc->set_key_wrap("AES-256-KWP");
  enc->set_wrapped_dek(testing::TestWrappedDek());
  enc->set_kek_label("model-kek");
  enc->set_kek_id("01");
  for (const auto& path : paths) {
    auto* f = m.add_files();
    f->set_path(path);
    f->set_size(3);
    f->set_sha256(kDigest);
    f->set_tags_sha256(kDigest);
  }
  return m;
}

absl::Status ErrorOf(const BundleManifest& m) { return ValidateManifest(m); }

// A valid manifest serializes canonically and parses back to the same message.
TEST(Manifest, RoundTripsCanonicalJson) {
  BundleManifest m = ValidManifest({"config.json", "weights/shard-1.bin"});
  auto bytes = SerializeManifest(m);
  ASSERT_THAT(bytes, IsOk());
  EXPECT_THAT(*bytes, HasSubstr("\"format_version\": 1"));
  auto parsed = ParseManifest(*bytes);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->SerializeAsString(), m.SerializeAsString());
}

// The canonical bytes of version 1 are pinned: a protobuf upgrade that
// prints differently must fail here, not in the field.
TEST(Manifest, PinsCanonicalBytes) {
  BundleManifest m = ValidManifest({"a"});
  m.mutable_encryption()->set_wrapped_dek(std::string(40, '\0'));
  m.mutable_files(0)->set_size(0);
  auto bytes = SerializeManifest(m);
  ASSERT_THAT(bytes, IsOk());
  const std::string digest(64, 'a');
  EXPECT_EQ(*bytes,
            "{\n \"format_version\": 1,\n \"model\": {\n  \"name\": \"embeddings-en\",\n"
            "  \"version\": \"0.2.0\"\n },\n \"created_at\": \"2026-12-03T17:00:00Z\",\n"
            " \"encryption\": {\n  \"aead\": \"AES-256-GCM\",\n  \"kdf\": \"HKDF-SHA256\",\n"
            "  \"segment_size\": 1048576,\n  \"key_wrap\": \"AES-256-KWP\",\n"
            "  \"wrapped_dek\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\",\n"
            "  \"kek_label\": \"model-kek\",\n  \"kek_id\": \"01\"\n },\n \"files\": [\n  {\n"
            "   \"path\": \"a\",\n   \"size\": \"0\",\n   \"sha256\": \"" +
                digest + "\",\n   \"tags_sha256\": \"" + digest + "\"\n  }\n ]\n}\n");
}

// Any byte string other than the canonical one is refused: spacing, an
// unknown field, a duplicated key.
TEST(Manifest, RefusesNonCanonicalBytes) {
  auto bytes = SerializeManifest(ValidManifest({"a"}));
  ASSERT_THAT(bytes, IsOk());
  std::string spaced = *bytes + " ";
  EXPECT_THAT(ParseManifest(spaced),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("manifest_not_canonical")));
  std::string duplicated = *bytes;
  duplicated.insert(duplicated.find('{') + 1, "\n \"format_version\": 1,");
  EXPECT_FALSE(ParseManifest(duplicated).ok());
  std::string unknown = *bytes;
  unknown.insert(unknown.find('{') + 1, "\n \"extra\": 1,");
  EXPECT_THAT(ParseManifest(unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("manifest_not_json")));
  EXPECT_THAT(ParseManifest("not json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("manifest_not_json")));
}

// The version field is checked first; only version 1 exists.
TEST(Manifest, RefusesOtherVersions) {
  BundleManifest m = ValidManifest({"a"});
  m.set_format_version(2);
  EXPECT_THAT(ErrorOf(m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported_version")));
}

// Algorithm names, segment size, wrapped DEK, digests and order are checked.
TEST(Manifest, RefusesBadParameters) {
  BundleManifest m = ValidManifest({"a"});
  m.mutable_encryption()->set_aead("AES-128-GCM");
  EXPECT_THAT(ErrorOf(m), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad_algorithm")));
  m = ValidManifest({"a"});
  m.mutable_encryption()->set_segment_size(16);
  EXPECT_THAT(ErrorOf(m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad_segment_size")));
  m = ValidManifest({"a"});
  m.mutable_encryption()->set_wrapped_dek("short");
  EXPECT_THAT(ErrorOf(m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad_wrapped_dek")));
  m = ValidManifest({"a"});
  m.mutable_files(0)->set_sha256("ABC");
  EXPECT_THAT(ErrorOf(m), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad_digest")));
  m = ValidManifest({"b", "a"});
  EXPECT_THAT(ErrorOf(m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("files_not_sorted")));
  m = ValidManifest({"a"});
  m.set_created_at("yesterday");
  EXPECT_THAT(ErrorOf(m),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad_created_at")));
  m = ValidManifest({"a"});
  m.mutable_model()->clear_name();
  EXPECT_THAT(ErrorOf(m), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing_field")));
}

// B1: traversal and absolute paths in a manifest are refused while parsing.
TEST(PathRules, RefusesTraversalWhileParsing) {
  for (const char* path : {"../../etc/hostname", "/etc/hostname", "w/../../../etc/hostname"}) {
    BundleManifest m = ValidManifest({path});
    absl::Status status = ErrorOf(m);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(std::string(BundleErrorName(status)),
                ::testing::AnyOf("path_traversal", "path_absolute"))
        << path;
  }
}

// Each single-path rule gives its own named error.
TEST(PathRules, NamesEachViolation) {
  struct Case {
    std::string path;
    const char* error;
  };
  std::vector<Case> cases = {
      {"", "path_empty"},
      {"a//b", "path_empty_component"},
      {"a/", "path_empty_component"},
      {"./a", "path_traversal"},
      {"a/..", "path_traversal"},
      {"/abs", "path_absolute"},
      {"a\\b", "path_bad_character"},
      {std::string("a\nb"), "path_bad_character"},
      {std::string("a\0b", 3), "path_bad_character"},
      {"\xff\xfe", "path_invalid_utf8"},
      {"\xc0\xaf", "path_invalid_utf8"},
      {"e\xcc\x81.json", "path_not_nfc"},  // "e" + combining acute (NFD)
      {".hosn-staging/x", "path_reserved"},
      {std::string(300, 'a'), "path_too_long"},
  };
  for (const auto& c : cases) {
    absl::Status status = ValidateBundlePath(c.path);
    EXPECT_EQ(BundleErrorName(status), c.error) << status;
  }
  EXPECT_THAT(ValidateBundlePath("caf\xc3\xa9/tokenizer.json"), IsOk());
  EXPECT_THAT(ValidateBundlePath("adapters/lora-1/adapter_model.safetensors"), IsOk());
}

// B2: duplicates, case-only and normalisation-only twins, and a path that is
// also a directory are refused over the set.
TEST(PathRules, RefusesCollisionsInSet) {
  EXPECT_EQ(BundleErrorName(ValidateBundlePathSet({"a", "a"})), "path_duplicate");
  EXPECT_EQ(BundleErrorName(ValidateBundlePathSet({"Model.bin", "model.bin"})),
            "path_case_collision");
  EXPECT_EQ(BundleErrorName(ValidateBundlePathSet({"STRASSE",
                                                   "stra\xc3\x9f"
                                                   "e"})),
            "path_case_collision");
  EXPECT_EQ(BundleErrorName(ValidateBundlePathSet({"w", "w/x"})), "path_prefix_conflict");
  EXPECT_EQ(BundleErrorName(ValidateBundlePathSet({"W", "w/x"})), "path_prefix_conflict");
  EXPECT_EQ(BundleErrorName(ValidateBundlePathSet({"w", "w-1/x", "w/x"})), "path_prefix_conflict");
  EXPECT_THAT(ValidateBundlePathSet({"w", "w-1/x", "wx"}), IsOk());
  // Duplicates in a manifest are named as such even though they also break
  // the sort order.
  EXPECT_EQ(BundleErrorName(ErrorOf(ValidManifest({"a", "a"}))), "path_duplicate");
}

}  // namespace
}  // namespace hosn::bundle
