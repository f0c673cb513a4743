// Lineage statements and DSSE envelopes; see lineage.h and docs/lineage.md.
#include "common/lineage/lineage.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/absl_compat.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "common/bundle/errors.h"

namespace hosn::lineage {
namespace {

namespace v1 = ::hosn::keyd::v1;
using bundle::BundleError;

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;
void FreeCertStack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using X509Owned = Owned<X509, X509_free>;
using StackOwned = Owned<STACK_OF(X509), FreeCertStack>;
using StoreOwned = Owned<X509_STORE, X509_STORE_free>;
using StoreCtxOwned = Owned<X509_STORE_CTX, X509_STORE_CTX_free>;
using MdCtxOwned = Owned<EVP_MD_CTX, EVP_MD_CTX_free>;
using BioOwned = Owned<BIO, BIO_free_all>;

constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%SZ";

absl::Status Malformed(std::string_view detail) {
  return BundleError(absl::StatusCode::kInvalidArgument, "statement_malformed", detail);
}

bool IsHexDigest(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status CheckModel(const v1::LineageModel& model, std::string_view field) {
  if (model.name().empty() || model.version().empty()) {
    return Malformed(absl::StrCat(ToAbsl(field), ": empty name or version"));
  }
  if (!IsHexDigest(model.manifest_sha256())) {
    return Malformed(absl::StrCat(ToAbsl(field), ".manifest_sha256: not 64 lowercase hex"));
  }
  return absl::OkStatus();
}

std::string SubjectName(const v1::LineageModel& output) {
  return absl::StrCat(output.name(), "@", output.version());
}

X509Owned ParseDerCertificate(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Owned cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert != nullptr && p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    cert.reset();
  }
  return cert;
}

std::string SubjectLine(X509* cert) {
  BioOwned bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_ONELINE);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string OsslError() {
  const unsigned long err = ERR_peek_error();
  char text[256] = {0};
  ERR_error_string_n(err, text, sizeof(text));
  ERR_clear_error();
  return text;
}

// Prints `message` as JSON (compact unless `indent`).
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message, bool indent) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = indent;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return absl::InternalError("lineage: JSON printer failed");
  }
  return out;
}

// Parses JSON into `message`; false if it is not JSON of the schema.
bool FromJson(std::string_view bytes, bool ignore_unknown, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = ignore_unknown;
  return google::protobuf::util::JsonStringToMessage(
             google::protobuf::StringPiece(bytes.data(), bytes.size()), message, options)
      .ok();
}

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::StatusOr<std::string> FileSha256Hex(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int error = errno;
    return error == ENOENT ? absl::NotFoundError(absl::StrCat(path, ": not found"))
                           : absl::InternalError(absl::StrCat(path, ": cannot open"));
  }
  MdCtxOwned ctx(EVP_MD_CTX_new());
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sha256: init failed");
  }
  std::string buffer(1 << 20, '\0');
  for (;;) {
    const ssize_t got = ::read(fd.get(), buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return absl::InternalError(absl::StrCat(path, ": read failed"));
    if (got == 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(got));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::Status ValidateStatement(const LineageStatement& statement) {
  if (statement.type() != kStatementType) return Malformed("_type: not in-toto Statement v1");
  if (statement.predicate_type() != kPredicateType) {
    return BundleError(absl::StatusCode::kInvalidArgument, "predicate_type_unsupported",
                       statement.predicate_type());
  }
  if (!statement.has_predicate()) return Malformed("predicate: missing");
  const LineagePredicate& p = statement.predicate();
  // The run kind decides how many input models there are.
  switch (p.run_kind()) {
    case v1::LINEAGE_RUN_KIND_FINE_TUNE:
    case v1::LINEAGE_RUN_KIND_LORA_ADAPTER:
      if (p.base_models_size() != 1) return Malformed("base_models: want exactly one");
      break;
    case v1::LINEAGE_RUN_KIND_MERGE:
      if (p.base_models_size() < 2) return Malformed("base_models: a merge wants two or more");
      break;
    default:
      return Malformed("run_kind: unspecified or unknown");
  }
  if (!p.has_output()) return Malformed("output: missing");
  HOSN_RETURN_IF_ERROR(CheckModel(p.output(), "output"));
  std::set<std::string> seen;
  for (const v1::LineageModel& base : p.base_models()) {
    HOSN_RETURN_IF_ERROR(CheckModel(base, "base_models"));
    if (base.manifest_sha256() == p.output().manifest_sha256()) {
      return Malformed("base_models: equal to the output");
    }
    if (!seen.insert(base.manifest_sha256()).second) return Malformed("base_models: duplicate");
  }
  seen.clear();
  for (const v1::LineageDataset& dataset : p.datasets()) {
    if (dataset.name().empty()) return Malformed("datasets: empty name");
    if (!IsHexDigest(dataset.sha256())) return Malformed("datasets.sha256: not 64 lowercase hex");
    if (!seen.insert(dataset.name()).second) return Malformed("datasets: duplicate name");
  }
  for (int i = 0; i < p.hyperparameters_size(); ++i) {
    const std::string& name = p.hyperparameters(i).name();
    if (name.empty()) return Malformed("hyperparameters: empty name");
    if (i > 0 && !(p.hyperparameters(i - 1).name() < name)) {
      return Malformed("hyperparameters: not sorted by name or duplicate");
    }
  }
  if (p.has_training_host_quote()) {
    const v1::LineageTpmQuote& quote = p.training_host_quote();
    if (quote.attest().empty() || quote.signature().empty() || quote.ak_public().empty()) {
      return Malformed("training_host_quote: attest, signature and ak_public are required");
    }
  }
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(kTimeFormat, p.created_at(), &time, &error) ||
      absl::FormatTime(kTimeFormat, time, absl::UTCTimeZone()) != p.created_at()) {
    return Malformed("created_at: not RFC 3339 UTC seconds");
  }
  seen.clear();
  for (const v1::LineageParent& parent : p.parents()) {
    if (!IsHexDigest(parent.envelope_sha256())) {
      return Malformed("parents.envelope_sha256: not 64 lowercase hex");
    }
    if (!seen.insert(parent.envelope_sha256()).second) return Malformed("parents: duplicate");
  }
  if (statement.subject_size() != 1) return Malformed("subject: want exactly one");
  const v1::LineageSubject& subject = statement.subject(0);
  if (subject.name() != SubjectName(p.output())) {
    return Malformed("subject.name: not the output's name@version");
  }
  auto digest = subject.digest().find("sha256");
  if (subject.digest_size() != 1 || digest == subject.digest().end() ||
      digest->second != p.output().manifest_sha256()) {
    return Malformed("subject.digest: want only sha256, equal to output.manifest_sha256");
  }
  return absl::OkStatus();
}

absl::StatusOr<LineageStatement> MakeStatement(const LineagePredicate& predicate) {
  LineageStatement statement;
  statement.set_type(std::string(kStatementType));
  v1::LineageSubject* subject = statement.add_subject();
  subject->set_name(SubjectName(predicate.output()));
  (*subject->mutable_digest())["sha256"] = predicate.output().manifest_sha256();
  statement.set_predicate_type(std::string(kPredicateType));
  *statement.mutable_predicate() = predicate;
  HOSN_RETURN_IF_ERROR(ValidateStatement(statement));
  return statement;
}

absl::StatusOr<std::string> SerializeStatement(const LineageStatement& statement) {
  HOSN_RETURN_IF_ERROR(ValidateStatement(statement));
  // Compact, JSON names, default values omitted: one byte string per value.
  return ToJson(statement, /*indent=*/false);
}

absl::StatusOr<LineageStatement> ParseStatement(std::string_view payload) {
  if (payload.size() > kMaxPayloadBytes) {
    return BundleError(absl::StatusCode::kInvalidArgument, "statement_too_large",
                       absl::StrCat(payload.size(), " bytes"));
  }
  LineageStatement statement;
  if (!FromJson(payload, /*ignore_unknown=*/false, &statement)) {
    return BundleError(absl::StatusCode::kInvalidArgument, "statement_not_json", "payload");
  }
  HOSN_RETURN_IF_ERROR(ValidateStatement(statement));
  HOSN_ASSIGN_OR_RETURN(std::string again, SerializeStatement(statement));
  if (again != payload) {
    return BundleError(absl::StatusCode::kInvalidArgument, "statement_not_canonical", "payload");
  }
  return statement;
}

std::string Pae(std::string_view payload_type, std::string_view payload) {
  return absl::StrCat("DSSEv1 ", payload_type.size(), " ", ToAbsl(payload_type), " ",
                      payload.size(), " ", ToAbsl(payload));
}

absl::StatusOr<std::string> SerializeEnvelope(const DsseEnvelope& envelope) {
  if (envelope.signatures_size() == 0) {
    return BundleError(absl::StatusCode::kInvalidArgument, "envelope_malformed", "no signature");
  }
  return ToJson(envelope, /*indent=*/true);
}

absl::StatusOr<DsseEnvelope> ParseEnvelope(std::string_view bytes) {
  if (bytes.size() > kMaxEnvelopeBytes) {
    return BundleError(absl::StatusCode::kInvalidArgument, "envelope_too_large",
                       absl::StrCat(bytes.size(), " bytes"));
  }
  DsseEnvelope envelope;
  // DSSE: consumers ignore unknown fields (the envelope is not signed).
  if (!FromJson(bytes, /*ignore_unknown=*/true, &envelope)) {
    return BundleError(absl::StatusCode::kInvalidArgument, "envelope_malformed", "not DSSE JSON");
  }
  if (envelope.payload_type() != kPayloadType) {
    return BundleError(absl::StatusCode::kInvalidArgument, "payload_type_unsupported",
                       envelope.payload_type());
  }
  if (envelope.signatures_size() != 1) {
    return BundleError(absl::StatusCode::kInvalidArgument, "envelope_malformed",
                       "want exactly one signature");
  }
  const v1::DsseSignature& signature = envelope.signatures(0);
  if (signature.sig().empty() || signature.certificate_chain_size() == 0) {
    return BundleError(absl::StatusCode::kInvalidArgument, "envelope_malformed",
                       "empty signature or certificate chain");
  }
  return envelope;
}

absl::StatusOr<std::string> KeyIdOfCertificate(std::string_view certificate_der) {
  X509Owned cert = ParseDerCertificate(certificate_der);
  unsigned char* spki = nullptr;
  const int length = cert ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &spki) : -1;
  if (length <= 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: malformed");
  }
  std::string hex = Sha256Hex(std::string_view(reinterpret_cast<char*>(spki), length));
  OPENSSL_free(spki);
  return hex;
}

absl::StatusOr<VerifiedStatement> VerifyEnvelope(std::string_view envelope_bytes,
                                                 const bundle::TrustOptions& trust) {
  ERR_clear_error();
  HOSN_ASSIGN_OR_RETURN(DsseEnvelope envelope, ParseEnvelope(envelope_bytes));
  const v1::DsseSignature& signature = envelope.signatures(0);

  // The chain: the signer first, the rest untrusted intermediates.
  X509Owned signer = ParseDerCertificate(signature.certificate_chain(0));
  StackOwned intermediates(sk_X509_new_null());
  if (signer == nullptr || intermediates == nullptr) {
    ERR_clear_error();
    return BundleError(absl::StatusCode::kInvalidArgument, "envelope_malformed",
                       "bad signer certificate");
  }
  for (int i = 1; i < signature.certificate_chain_size(); ++i) {
    X509Owned cert = ParseDerCertificate(signature.certificate_chain(i));
    if (cert == nullptr || sk_X509_push(intermediates.get(), cert.get()) == 0) {
      ERR_clear_error();
      return BundleError(absl::StatusCode::kInvalidArgument, "envelope_malformed",
                         "bad intermediate certificate");
    }
    cert.release();
  }

  // The pinned roots, and nothing else.
  StoreOwned store(X509_STORE_new());
  int roots = 0;
  {
    BioOwned bio(
        BIO_new_mem_buf(trust.ca_bundle_pem.data(), static_cast<int>(trust.ca_bundle_pem.size())));
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      if (store != nullptr && X509_STORE_add_cert(store.get(), cert) == 1) ++roots;
      X509_free(cert);
    }
    ERR_clear_error();
  }
  if (store == nullptr || roots == 0) {
    return BundleError(absl::StatusCode::kInvalidArgument, "trust_bundle_invalid",
                       "no CA certificate");
  }
  X509_VERIFY_PARAM* param = X509_STORE_get0_param(store.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_ANY);
  if (trust.at_time) X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(*trust.at_time));
  StoreCtxOwned ctx(X509_STORE_CTX_new());
  if (ctx == nullptr ||
      X509_STORE_CTX_init(ctx.get(), store.get(), signer.get(), intermediates.get()) != 1) {
    return absl::InternalError("x509: context");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    const std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return BundleError(absl::StatusCode::kPermissionDenied, "signer_untrusted",
                       absl::StrCat(SubjectLine(signer.get()), ": ", why));
  }
  const uint32_t ext = X509_get_extension_flags(signer.get());
  if (!(ext & EXFLAG_KUSAGE) || !(X509_get_key_usage(signer.get()) & KU_DIGITAL_SIGNATURE) ||
      !(ext & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(signer.get()) & XKU_CODE_SIGN)) {
    return BundleError(absl::StatusCode::kPermissionDenied, "signer_key_usage",
                       SubjectLine(signer.get()));
  }

  // The signature over PAE(payloadType, payload).
  EVP_PKEY* key = X509_get0_pubkey(signer.get());
  if (key == nullptr || EVP_PKEY_base_id(key) != EVP_PKEY_EC) {
    ERR_clear_error();
    return BundleError(absl::StatusCode::kDataLoss, "signature_invalid", "signer key is not EC");
  }
  const std::string pae = Pae(envelope.payload_type(), envelope.payload());
  MdCtxOwned md(EVP_MD_CTX_new());
  if (md == nullptr || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature.sig().data()),
                       signature.sig().size(), reinterpret_cast<const unsigned char*>(pae.data()),
                       pae.size()) != 1) {
    return BundleError(absl::StatusCode::kDataLoss, "signature_invalid", OsslError());
  }

  VerifiedStatement verified;
  HOSN_ASSIGN_OR_RETURN(verified.statement, ParseStatement(envelope.payload()));
  verified.payload = envelope.payload();
  verified.envelope_sha256 = Sha256Hex(envelope_bytes);
  verified.signer_subject = SubjectLine(signer.get());
  return verified;
}

}  // namespace hosn::lineage
