// OpenSSL X.509 helpers shared by the AK and EK certificate checks: RAII
// owners, strict parsing (one DER certificate with nothing after it, the first
// PEM certificate of a text, every certificate or CRL of a PEM bundle), the
// trust store both checks build (anchors plus optional CRLs) and the denial a
// failed chain verification gives. Stateless and thread-safe.
#ifndef HOSN_SERVER_ATTEST_X509_UTIL_H_
#define HOSN_SERVER_ATTEST_X509_UTIL_H_

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/attest/denial.h"

namespace hosn::attest {

struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct X509StoreDeleter {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct X509StoreCtxDeleter {
  void operator()(X509_STORE_CTX* ctx) const { X509_STORE_CTX_free(ctx); }
};
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_pop_free(stack, X509_free); }
};
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509CrlDeleter {
  void operator()(X509_CRL* crl) const { X509_CRL_free(crl); }
};
using UniqueX509 = std::unique_ptr<X509, X509Deleter>;
using UniqueX509Crl = std::unique_ptr<X509_CRL, X509CrlDeleter>;
using UniqueX509Store = std::unique_ptr<X509_STORE, X509StoreDeleter>;

// Exactly one DER certificate, nothing after it; null otherwise.
inline UniqueX509 ParseDerCertificate(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  UniqueX509 cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert != nullptr && p != der.data() + der.size()) cert.reset();
  return cert;
}

// PEM if it looks like PEM (the first certificate), DER otherwise.
inline UniqueX509 ParsePemOrDerCertificate(const std::string& text) {
  if (text.find("-----BEGIN CERTIFICATE-----") != std::string::npos) {
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    return UniqueX509(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  }
  return ParseDerCertificate({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

// Every PEM certificate of `pem_bundle`. InvalidArgument naming `what` if it
// holds none or one does not parse.
absl::StatusOr<std::vector<UniqueX509>> ParsePemCertificates(std::string_view pem_bundle,
                                                             std::string_view what);

// Every PEM CRL (X509 CRL) of `pem_bundle`. InvalidArgument naming `what` if
// it holds none or one does not parse. Signatures and dates are checked only
// when a chain is verified against them.
absl::StatusOr<std::vector<UniqueX509Crl>> ParsePemCrls(std::string_view pem_bundle,
                                                        std::string_view what);

// A store trusting `anchors` (up-referenced, the caller keeps its own). With
// `crls` not empty they are added and revocation checking is turned on for
// every certificate of a chain, the anchor included (X509_V_FLAG_CRL_CHECK |
// X509_V_FLAG_CRL_CHECK_ALL): a certificate whose issuer has no CRL in the set
// then fails as "unable to get certificate CRL". Internal if OpenSSL fails.
absl::StatusOr<UniqueX509Store> NewTrustStore(const std::vector<UniqueX509>& anchors,
                                              const std::vector<UniqueX509Crl>& crls);

// The denial for a chain verification of `ctx` that failed: `revoked` for a
// revoked certificate, kCrlExpired for a CRL past its nextUpdate (both name
// the certificate's depth and issuer), `invalid` with OpenSSL's reason
// otherwise. `what` starts the message ("ak certificate"); `detail` is
// appended to an `invalid` message.
absl::Status ChainDenial(X509_STORE_CTX* ctx, std::string_view what, DenialReason invalid,
                         DenialReason revoked, std::string_view detail = "");

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_X509_UTIL_H_
