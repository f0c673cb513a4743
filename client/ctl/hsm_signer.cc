#include "client/ctl/hsm_signer.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace hosn::ctl {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// DER SubjectPublicKeyInfo of the first certificate in `pem`, and its type.
absl::StatusOr<std::pair<std::string, int>> CertificateKey(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError("signer certificate: no PEM certificate");
  }
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  uint8_t* der = nullptr;
  int len = key == nullptr ? -1 : i2d_PUBKEY(key, &der);
  if (len <= 0) return absl::InvalidArgumentError("signer certificate: unreadable key");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return std::make_pair(out, EVP_PKEY_get_base_id(key));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HsmManifestSigner>> HsmManifestSigner::Create(
    hsm::KeyStore* store, hsm::KeyRef key, std::string chain_pem) {
  auto cert_key = CertificateKey(chain_pem);
  if (!cert_key.ok()) return cert_key.status();
  auto signer = std::unique_ptr<HsmManifestSigner>(new HsmManifestSigner());
  if (cert_key->second == EVP_PKEY_EC) {
    signer->algorithm_ = bundle::SignatureAlgorithm::kEcdsaSha256;
    key.key_type = hsm::KeyType::kEc;
  } else if (cert_key->second == EVP_PKEY_RSA) {
    signer->algorithm_ = bundle::SignatureAlgorithm::kRsaPkcs1Sha256;
    key.key_type = hsm::KeyType::kRsa;
  } else {
    return absl::InvalidArgumentError("signer certificate: only EC P-256 and RSA keys");
  }
  key.key_class = hsm::KeyClass::kPrivateKey;

  // The certificate must certify the token's key, or every bundle signed
  // would fail verification later.
  auto token_key = store->ExportPublicKey(key);
  if (!token_key.ok()) return token_key.status();
  if (*token_key != cert_key->first) {
    return absl::InvalidArgumentError("signer certificate: does not match the token key");
  }
  signer->store_ = store;
  signer->key_ = std::move(key);
  signer->chain_pem_ = std::move(chain_pem);
  return signer;
}

absl::StatusOr<std::string> HsmManifestSigner::SignRaw(std::string_view message) {
  bool ec = algorithm_ == bundle::SignatureAlgorithm::kEcdsaSha256;
  return store_->Sign(key_, ec ? "ecdsa-p256-sha256" : "rsa-pkcs1-sha256", message,
                      hsm::SignatureFormat::kPkcs11Raw);
}

}  // namespace hosn::ctl
