// Fine-tune lineage statements and their DSSE envelopes (docs/lineage.md).
//
// A lineage statement is an in-toto Statement v1 (hosn.keyd.v1.
// LineageStatement) whose predicate (predicateType
// https://hosn.dev/lineage/v1) records one fine-tune, LoRA adapter or merge
// run. It is serialized as canonical JSON (protobuf's JSON printer, compact)
// and accepted only in that form, so a statement has exactly one byte string
// and the daemon that signs it and every verifier see the same values. The
// signed form is a DSSE v1 JSON envelope with one signature: ECDSA P-256 over
// SHA-256 of PAE(payloadType, payload), made by hosn-keyd's HSM key; the
// signer's certificate chain is carried inside the signature object and
// checked against a pinned CA bundle only.
//
// Errors are named like the bundle format's (common/bundle/errors.h): the
// message starts with the name, then ": " and a detail.
//
// Stateless; every function is thread-safe. Used by hosnctl (build, verify)
// and hosn-keyd (check before signing).
#ifndef HOSN_COMMON_LINEAGE_LINEAGE_H_
#define HOSN_COMMON_LINEAGE_LINEAGE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/bundle/signature.h"
#include "hosn/keyd/v1/lineage.pb.h"

namespace hosn::lineage {

using ::hosn::keyd::v1::DsseEnvelope;
using ::hosn::keyd::v1::LineagePredicate;
using ::hosn::keyd::v1::LineageStatement;

inline constexpr std::string_view kPayloadType = "application/vnd.in-toto+json";
inline constexpr std::string_view kStatementType = "https://in-toto.io/Statement/v1";
// Ours: hosn.dev is the project's name space; the URI need not resolve.
inline constexpr std::string_view kPredicateType = "https://hosn.dev/lineage/v1";
inline constexpr size_t kMaxPayloadBytes = 1u << 20;
inline constexpr size_t kMaxEnvelopeBytes = 4u << 20;

// Lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

// Lowercase hex SHA-256 of a file's content, read in chunks (data sets may be
// large). NotFound / Internal naming the path.
absl::StatusOr<std::string> FileSha256Hex(const std::string& path);

// Checks a statement: _type, predicateType, one subject equal to the output
// model ("name@version", digest {"sha256": output.manifest_sha256}), the run
// kind and its number of input models, digests (64 lowercase hex), unique
// data set names, sorted unique hyperparameter names, complete quote,
// created_at (RFC 3339 UTC seconds), unique parents. InvalidArgument
// statement_malformed or predicate_type_unsupported naming the field.
absl::Status ValidateStatement(const LineageStatement& statement);

// The statement for `predicate`: fills _type, subject and predicateType, then
// validates. Errors as ValidateStatement.
absl::StatusOr<LineageStatement> MakeStatement(const LineagePredicate& predicate);

// The canonical bytes of a valid statement. Errors as ValidateStatement.
absl::StatusOr<std::string> SerializeStatement(const LineageStatement& statement);

// Parses canonical statement bytes: statement_too_large, statement_not_json
// (not JSON of the schema, unknown keys included), statement_not_canonical
// (the bytes differ from the re-serialization), then ValidateStatement.
absl::StatusOr<LineageStatement> ParseStatement(std::string_view payload);

// DSSE v1 pre-authentication encoding:
// "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in ASCII decimal.
std::string Pae(std::string_view payload_type, std::string_view payload);

// The envelope as indented JSON (protobuf JSON names: payloadType, payload,
// signatures[{keyid, sig, certificateChain}]), ending in a newline.
// InvalidArgument envelope_malformed if it has no signature.
absl::StatusOr<std::string> SerializeEnvelope(const DsseEnvelope& envelope);

// Parses envelope JSON (unknown keys ignored, as DSSE requires). Checks the
// shape only: envelope_too_large, envelope_malformed (not JSON of the schema,
// not exactly one signature, empty signature or chain),
// payload_type_unsupported. Does not verify anything.
absl::StatusOr<DsseEnvelope> ParseEnvelope(std::string_view bytes);

// Lowercase hex SHA-256 of the SubjectPublicKeyInfo of a DER certificate
// (the DSSE keyid we write). InvalidArgument for a malformed certificate.
absl::StatusOr<std::string> KeyIdOfCertificate(std::string_view certificate_der);

struct VerifiedStatement {
  LineageStatement statement;
  std::string payload;          // the verified canonical bytes
  std::string envelope_sha256;  // hex SHA-256 of the envelope bytes as given
  std::string signer_subject;   // one-line subject of the signer certificate
};

// ParseEnvelope, then: the chain (certificates in the envelope are untrusted
// intermediates) to the pinned roots of `trust` at its time, purpose "any"
// (PermissionDenied signer_untrusted; InvalidArgument trust_bundle_invalid);
// keyUsage digitalSignature and extendedKeyUsage codeSigning on the signer
// (signer_key_usage); an EC key and the signature over PAE (DataLoss
// signature_invalid); then ParseStatement of the verified payload.
absl::StatusOr<VerifiedStatement> VerifyEnvelope(std::string_view envelope_bytes,
                                                 const bundle::TrustOptions& trust);

}  // namespace hosn::lineage

#endif  // HOSN_COMMON_LINEAGE_LINEAGE_H_
