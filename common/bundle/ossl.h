// RAII owners for the OpenSSL handles the bundle library uses, and one
// helper that turns the OpenSSL error queue into a status message.
//
// Internal to common/bundle; not a public header of the library. Each alias
// frees its handle with the matching OpenSSL function. Thread-compatible.
#ifndef HOSN_COMMON_BUNDLE_OSSL_H_
#define HOSN_COMMON_BUNDLE_OSSL_H_

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace hosn::bundle::internal {

template <typename T, void (*Free)(T*)>
struct OsslDeleter {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using OsslPtr = std::unique_ptr<T, OsslDeleter<T, Free>>;

inline void FreeX509Stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }

using CipherCtxPtr = OsslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using MdCtxPtr = OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using KdfPtr = OsslPtr<EVP_KDF, EVP_KDF_free>;
using KdfCtxPtr = OsslPtr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using BioPtr = OsslPtr<BIO, BIO_free_all>;
using CmsPtr = OsslPtr<CMS_ContentInfo, CMS_ContentInfo_free>;
using X509Ptr = OsslPtr<X509, X509_free>;
using X509StorePtr = OsslPtr<X509_STORE, X509_STORE_free>;
using X509StackPtr = OsslPtr<STACK_OF(X509), FreeX509Stack>;
using PkeyPtr = OsslPtr<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtxPtr = OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;

// The oldest queued OpenSSL error as text ("" if none); clears the queue.
std::string OsslErrorText();

}  // namespace hosn::bundle::internal

#endif  // HOSN_COMMON_BUNDLE_OSSL_H_
