// Peer identity parsing, status mapping and TLS material validation, on
// certificates from deploy/pki/dev-pki.sh.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/peer_identity.h"
#include "server/api/status_mapping.h"
#include "server/api/tls_material.h"
#include "tests/server/api/test_pki.h"
#include "tests/testing/status_matchers.h"

namespace hosn::api {
namespace {

using ::hosn::testing::DevPki;
using ::hosn::testing::ReadTestFile;
using ::hosn::testing::StatusIs;
using ::testing::HasSubstr;

// Every client role of the dev PKI parses to its role and name.
TEST(PeerIdentity, ParsesEachRole) {
  DevPki pki;
  struct Case {
    const char* file;
    Role role;
    const char* name;
  };
  for (const Case& c :
       {Case{"node-a", Role::kNode, "a"}, Case{"operator", Role::kOperator, "alice"},
        Case{"signer", Role::kSigner, "ci"}, Case{"auditor", Role::kAuditor, "audit"}}) {
    HOSN_ASSERT_OK_AND_ASSIGN(PeerIdentity id, PeerIdentityFromPem(ReadTestFile(pki.Cert(c.file))));
    EXPECT_EQ(id.role, c.role) << c.file;
    EXPECT_EQ(id.name, c.name) << c.file;
  }
}

// Certificates without clientAuth or without a hosn:// URI are unauthenticated.
TEST(PeerIdentity, RefusesWrongUsageAndMissingUri) {
  DevPki pki;
  EXPECT_THAT(PeerIdentityFromPem(ReadTestFile(pki.Cert("server"))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("clientAuth")));
  EXPECT_THAT(PeerIdentityFromPem(ReadTestFile(pki.Cert("bad-nouri"))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("no hosn:// uri")));
  EXPECT_THAT(PeerIdentityFromPem(""),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("absent")));
  EXPECT_THAT(PeerIdentityFromPem("garbage"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("unparsable")));
}

// Authorize admits listed roles only and names the refused role.
TEST(PeerIdentity, AuthorizeByRole) {
  PeerIdentity node{Role::kNode, "a", "hosn://node/a"};
  HOSN_EXPECT_OK(Authorize(node, "/x/Y", {Role::kNode}));
  EXPECT_THAT(
      Authorize(node, "/x/Y", {Role::kOperator, Role::kSigner}),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("role node may not call /x/Y")));
}

// Codes pass through; internal details never reach the caller.
TEST(StatusMapping, KeepsCodeAndHidesInternalDetail) {
  grpc::Status denied = ToGrpcStatus(absl::PermissionDeniedError("no"));
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(), "no");
  grpc::Status internal = ToGrpcStatus(absl::InternalError("CKR_DEVICE_ERROR in slot 3"));
  EXPECT_EQ(internal.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(internal.error_message(), "internal error");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAVAILABLE), "UNAVAILABLE");
}

// A matching, valid set validates and reports the leaf's expiry.
TEST(TlsMaterial, ValidSetValidates) {
  DevPki pki;
  HOSN_ASSERT_OK_AND_ASSIGN(
      TlsMaterialInfo info,
      ValidateTlsMaterial(ReadTestFile(pki.Cert("server")), ReadTestFile(pki.Key("server")),
                          ReadTestFile(pki.Cert("ca"))));
  EXPECT_GT(info.server_not_after, absl::Now() + absl::Hours(24 * 700));
  EXPECT_THAT(info.server_subject, HasSubstr("hosn-keyd dev"));
}

// Mismatched, expired, truncated and empty inputs are refused with the part named.
TEST(TlsMaterial, RefusesBadSets) {
  DevPki pki;
  const std::string cert = ReadTestFile(pki.Cert("server"));
  const std::string key = ReadTestFile(pki.Key("server"));
  const std::string ca = ReadTestFile(pki.Cert("ca"));
  EXPECT_THAT(ValidateTlsMaterial(cert, ReadTestFile(pki.Key("node-a")), ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
  EXPECT_THAT(ValidateTlsMaterial(ReadTestFile(pki.Cert("bad-expired")),
                                  ReadTestFile(pki.Key("bad-expired")), ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expired")));
  EXPECT_THAT(ValidateTlsMaterial(cert.substr(0, cert.size() / 2), key, ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("server certificate")));
  EXPECT_THAT(ValidateTlsMaterial(cert, key.substr(0, key.size() / 2), ca),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("private key")));
  EXPECT_THAT(ValidateTlsMaterial(cert, key, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("client ca bundle")));
}

}  // namespace
}  // namespace hosn::api
