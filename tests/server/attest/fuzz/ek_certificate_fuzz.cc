// libFuzzer target: EkCertificateVerifier::Verify on the DER EK certificate
// a node sends at enrollment (BeginEnrollment/EnrollNode ek_certificate).
// The first byte picks the mode; the rest is the certificate:
//   even: the bytes as sent, against a CA bundle made once per process (the
//         DER parse and chain building; a forged chain never verifies);
//   odd:  the bytes re-issued by that CA (issuer, validity and signature
//         replaced, everything else as fuzzed), so the extension rule and
//         the key-to-TCG-template conversion see attacker-chosen content.
// Invariants: a refusal is a denial with its reason, Unimplemented or
// Internal; an accepted certificate yields an EK public area holding exactly
// the certificate's key, which CheckEkMatchesCertificate accepts.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "common/tpm/ak_public.h"
#include "server/attest/denial.h"
#include "server/attest/ek_certificate.h"
#include "server/attest/x509_util.h"

namespace {

using hosn::attest::EkCertificateVerifier;
using hosn::attest::UniqueX509;
using hosn::tpm::UniqueEvpPkey;

struct TestCa {
  UniqueEvpPkey key;
  UniqueX509 cert;
  std::unique_ptr<EkCertificateVerifier> verifier;
};

void Require(bool ok) {
  if (!ok) std::abort();
}

// A P-256 self-signed CA (CA:TRUE, keyCertSign) and a verifier trusting it.
const TestCa& Ca() {
  static const TestCa* ca = [] {
    auto* out = new TestCa;
    out->key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    out->cert.reset(X509_new());
    X509* cert = out->cert.get();
    Require(out->key != nullptr && cert != nullptr && X509_set_version(cert, 2) == 1);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("hosn fuzz ek ca"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509_gmtime_adj(X509_getm_notBefore(cert), -86400);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * 3650);
    X509_set_pubkey(cert, out->key.get());
    for (const auto& [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                                     std::pair{NID_key_usage, "critical,keyCertSign"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value);
      Require(ext != nullptr && X509_add_ext(cert, ext, -1) == 1);
      X509_EXTENSION_free(ext);
    }
    Require(X509_sign(cert, out->key.get(), EVP_sha256()) > 0);
    std::unique_ptr<BIO, hosn::attest::BioDeleter> bio(BIO_new(BIO_s_mem()));
    Require(bio != nullptr && PEM_write_bio_X509(bio.get(), cert) == 1);
    char* pem = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &pem);
    auto verifier = EkCertificateVerifier::Create(std::string(pem, static_cast<size_t>(length)));
    Require(verifier.ok());
    out->verifier = *std::move(verifier);
    return out;
  }();
  return *ca;
}

// `der` re-issued by the test CA, valid now; empty if it does not parse.
std::string Reissue(std::span<const uint8_t> der) {
  UniqueX509 cert = hosn::attest::ParseDerCertificate(der);
  if (cert == nullptr) return {};
  const TestCa& ca = Ca();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) == nullptr ||
      X509_sign(cert.get(), ca.key.get(), EVP_sha256()) <= 0) {
    return {};
  }
  unsigned char* out = nullptr;
  const int length = i2d_X509(cert.get(), &out);
  if (length <= 0) return {};
  std::string bytes(reinterpret_cast<char*>(out), static_cast<size_t>(length));
  OPENSSL_free(out);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn;
  if (size < 1) return 0;
  std::span<const uint8_t> der(data + 1, size - 1);
  std::string reissued;
  if (data[0] & 1) {
    reissued = Reissue(der);
    if (reissued.empty()) return 0;
    der = {reinterpret_cast<const uint8_t*>(reissued.data()), reissued.size()};
  }
  absl::StatusOr<attest::CertifiedEk> certified = Ca().verifier->Verify(der);
  if (!certified.ok()) {
    const absl::StatusCode code = certified.status().code();
    if (!attest::GetDenialReason(certified.status()).has_value() &&
        code != absl::StatusCode::kUnimplemented && code != absl::StatusCode::kInternal) {
      std::fprintf(stderr, "refusal without a denial reason: %s\n",
                   certified.status().ToString().c_str());
      std::abort();
    }
    return 0;
  }
  // The template holds the certificate's own key.
  UniqueX509 leaf = attest::ParseDerCertificate(der);
  Require(leaf != nullptr && !certified->issuer.empty());
  absl::StatusOr<UniqueEvpPkey> ek_key = tpm::PublicKeyFromTpm(certified->ek);
  Require(ek_key.ok() && EVP_PKEY_eq(ek_key->get(), X509_get0_pubkey(leaf.get())) == 1);
  Require(attest::CheckEkMatchesCertificate(*certified, certified->ek).ok());
  return 0;
}
