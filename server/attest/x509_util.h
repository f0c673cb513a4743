// OpenSSL X.509 helpers shared by the AK and EK certificate checks: RAII
// owners and strict parsing (one DER certificate with nothing after it, or the
// first PEM certificate of a text). Header-only, stateless and thread-safe.
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
using UniqueX509 = std::unique_ptr<X509, X509Deleter>;

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

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_X509_UTIL_H_
