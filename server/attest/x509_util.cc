#include "server/attest/x509_util.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"

namespace hosn::attest {
namespace {

// Reads PEM objects with `read` until the text ends. Stopping anywhere but at
// the end of the text means an object did not parse.
template <typename T, typename Owner, typename Reader>
absl::StatusOr<std::vector<Owner>> ParsePemObjects(std::string_view pem_bundle,
                                                   std::string_view what, Reader read) {
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(pem_bundle.data(), static_cast<int>(pem_bundle.size())));
  if (bio == nullptr) return absl::InternalError("openssl allocation failed");
  ERR_clear_error();
  std::vector<Owner> out;
  while (T* object = read(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(object);
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": no PEM object"));
  if (error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": an entry does not parse"));
  }
  return out;
}

std::string IssuerOf(X509* cert) {
  char issuer[256] = {};
  if (cert != nullptr) X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof(issuer));
  return issuer;
}

}  // namespace

absl::StatusOr<std::vector<UniqueX509>> ParsePemCertificates(std::string_view pem_bundle,
                                                             std::string_view what) {
  return ParsePemObjects<X509, UniqueX509>(pem_bundle, what, PEM_read_bio_X509);
}

absl::StatusOr<std::vector<UniqueX509Crl>> ParsePemCrls(std::string_view pem_bundle,
                                                        std::string_view what) {
  return ParsePemObjects<X509_CRL, UniqueX509Crl>(pem_bundle, what, PEM_read_bio_X509_CRL);
}

absl::StatusOr<UniqueX509Store> NewTrustStore(const std::vector<UniqueX509>& anchors,
                                              const std::vector<UniqueX509Crl>& crls) {
  UniqueX509Store store(X509_STORE_new());
  if (store == nullptr) return absl::InternalError("openssl allocation failed");
  for (const UniqueX509& cert : anchors) {
    if (X509_STORE_add_cert(store.get(), cert.get()) != 1) {
      return absl::InternalError("cannot add a trust anchor");
    }
  }
  for (const UniqueX509Crl& crl : crls) {
    if (X509_STORE_add_crl(store.get(), crl.get()) != 1) {
      return absl::InternalError("cannot add a crl");
    }
  }
  if (!crls.empty()) {
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  return store;
}

absl::Status ChainDenial(X509_STORE_CTX* ctx, std::string_view what, DenialReason invalid,
                         DenialReason revoked, std::string_view detail) {
  const int error = X509_STORE_CTX_get_error(ctx);
  const int depth = X509_STORE_CTX_get_error_depth(ctx);
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  if (error == X509_V_ERR_CERT_REVOKED) {
    return Denied(revoked, absl::StrCat(ToAbsl(what), " revoked: depth ", depth, ", issuer ",
                                        IssuerOf(cert)));
  }
  if (error == X509_V_ERR_CRL_HAS_EXPIRED) {
    return Denied(DenialReason::kCrlExpired,
                  absl::StrCat("crl expired: ", ToAbsl(what), " chain depth ", depth, ", crl of ",
                               IssuerOf(cert), " is past its next update"));
  }
  return Denied(invalid,
                absl::StrCat(ToAbsl(what), " invalid: ", X509_verify_cert_error_string(error),
                             detail.empty() ? "" : " ", ToAbsl(detail)));
}

}  // namespace hosn::attest
