#include "server/attest/ek_certificate.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/ek_template.h"
#include "server/attest/denial.h"

namespace hosn::attest {
namespace {

// subjectDirectoryAttributes: TPM specification and security assertions.
constexpr int kToleratedCriticalNid = NID_subject_directory_attributes;

struct BignumDeleter {
  void operator()(BIGNUM* p) const { BN_free(p); }
};

absl::Status Invalid(std::string_view why) {
  return Denied(DenialReason::kEkCertificateInvalid,
                absl::StrCat("ek certificate invalid: ", std::string(why)));
}

// The critical extensions of `cert` that OpenSSL does not implement, other
// than the tolerated one; empty if none.
std::string RefusedCriticalExtensions(X509* cert) {
  std::string refused;
  for (int i = 0; i < X509_get_ext_count(cert); ++i) {
    X509_EXTENSION* ext = X509_get_ext(cert, i);
    if (X509_EXTENSION_get_critical(ext) == 0 || X509_supported_extension(ext) == 1) continue;
    ASN1_OBJECT* oid = X509_EXTENSION_get_object(ext);
    if (OBJ_obj2nid(oid) == kToleratedCriticalNid) continue;
    char text[80] = {};
    OBJ_obj2txt(text, sizeof(text), oid, /*no_name=*/1);
    absl::StrAppend(&refused, refused.empty() ? "" : ",", text);
  }
  return refused;
}

// Accepts X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION only on the leaf and only
// when every such extension is the tolerated one; every other error stands.
int VerifyCallback(int ok, X509_STORE_CTX* ctx) {
  if (ok == 1) return 1;
  if (X509_STORE_CTX_get_error(ctx) != X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION) return 0;
  if (X509_STORE_CTX_get_error_depth(ctx) != 0) return 0;
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  if (cert == nullptr || !RefusedCriticalExtensions(cert).empty()) return 0;
  X509_STORE_CTX_set_error(ctx, X509_V_OK);
  return 1;
}

absl::StatusOr<std::vector<uint8_t>> BigEndian(EVP_PKEY* key, const char* param, size_t size) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) return absl::InternalError("openssl: key");
  std::unique_ptr<BIGNUM, BignumDeleter> bn(raw);
  std::vector<uint8_t> out(size);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(size)) != static_cast<int>(size)) {
    return absl::UnimplementedError("ek certificate: key size does not fit the tcg template");
  }
  return out;
}

// The TCG template public area of the certified key.
absl::StatusOr<TPMT_PUBLIC> TemplateFor(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA") == 1) {
    if (EVP_PKEY_get_bits(key) != 2048) {
      return absl::UnimplementedError("ek certificate: rsa key is not 2048 bits; send ek_public");
    }
    BIGNUM* e = nullptr;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
      return absl::InternalError("openssl: rsa exponent");
    }
    std::unique_ptr<BIGNUM, BignumDeleter> exponent(e);
    if (!BN_is_word(exponent.get(), 65537)) {
      return absl::UnimplementedError("ek certificate: rsa exponent is not 65537; send ek_public");
    }
    TPMT_PUBLIC ek = tpm::EkTemplate(tpm::EkKeyType::kRsa2048);
    absl::StatusOr<std::vector<uint8_t>> n = BigEndian(key, OSSL_PKEY_PARAM_RSA_N, 256);
    if (!n.ok()) return n.status();
    std::memcpy(ek.unique.rsa.buffer, n->data(), n->size());
    return ek;
  }
  char group[32] = {};
  if (EVP_PKEY_is_a(key, "EC") == 1 &&
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                     nullptr) == 1 &&
      std::string_view(group) == "prime256v1") {
    TPMT_PUBLIC ek = tpm::EkTemplate(tpm::EkKeyType::kEccP256);
    absl::StatusOr<std::vector<uint8_t>> x = BigEndian(key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    if (!x.ok()) return x.status();
    absl::StatusOr<std::vector<uint8_t>> y = BigEndian(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    if (!y.ok()) return y.status();
    std::memcpy(ek.unique.ecc.x.buffer, x->data(), 32);
    std::memcpy(ek.unique.ecc.y.buffer, y->data(), 32);
    return ek;
  }
  return absl::UnimplementedError(
      "ek certificate: key is neither rsa 2048 nor ecc p-256; send ek_public");
}

}  // namespace

absl::StatusOr<std::unique_ptr<EkCertificateVerifier>> EkCertificateVerifier::Create(
    std::string_view ca_pem_bundle, std::string_view crl_pem_bundle) {
  absl::StatusOr<std::vector<UniqueX509>> anchors =
      ParsePemCertificates(ca_pem_bundle, "ek ca bundle");
  if (!anchors.ok()) return anchors.status();
  std::unique_ptr<EkCertificateVerifier> verifier(new EkCertificateVerifier(*std::move(anchors)));
  if (absl::Status crls = verifier->ReplaceCrls(crl_pem_bundle); !crls.ok()) return crls;
  return verifier;
}

absl::Status EkCertificateVerifier::ReplaceCrls(std::string_view crl_pem_bundle) {
  std::vector<UniqueX509Crl> crls;
  if (!crl_pem_bundle.empty()) {
    absl::StatusOr<std::vector<UniqueX509Crl>> parsed =
        ParsePemCrls(crl_pem_bundle, "ek crl bundle");
    if (!parsed.ok()) return parsed.status();
    crls = *std::move(parsed);
  }
  absl::StatusOr<UniqueX509Store> store = NewTrustStore(anchors_, crls);
  if (!store.ok()) return store.status();
  X509_STORE_set_flags(store->get(), X509_V_FLAG_PARTIAL_CHAIN);
  X509_STORE_set_verify_cb(store->get(), VerifyCallback);
  std::shared_ptr<X509_STORE> shared(store->release(), X509StoreDeleter());
  absl::MutexLock lock(&mu_);
  store_ = std::move(shared);
  return absl::OkStatus();
}

absl::StatusOr<CertifiedEk> EkCertificateVerifier::Verify(
    std::span<const uint8_t> certificate_der) const {
  // 1. One DER certificate.
  UniqueX509 leaf = ParseDerCertificate(certificate_der);
  if (leaf == nullptr) return Invalid("malformed");

  // 2. The chain, at the current time, under the callback's extension rule;
  // with CRLs, the revocation state of each certificate.
  std::shared_ptr<X509_STORE> store;
  {
    absl::MutexLock lock(&mu_);
    store = store_;
  }
  std::unique_ptr<X509_STORE_CTX, X509StoreCtxDeleter> ctx(X509_STORE_CTX_new());
  if (ctx == nullptr || X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) != 1) {
    return absl::InternalError("cannot start chain verification");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    std::string detail;
    if (X509_STORE_CTX_get_error(ctx.get()) == X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION) {
      X509* cert = X509_STORE_CTX_get_current_cert(ctx.get());
      if (cert != nullptr) detail = RefusedCriticalExtensions(cert);
    }
    return ChainDenial(ctx.get(), "ek certificate", DenialReason::kEkCertificateInvalid,
                       DenialReason::kEkCertificateRevoked, detail);
  }

  // 3. The EK it certifies.
  EVP_PKEY* key = X509_get0_pubkey(leaf.get());
  if (key == nullptr) return Invalid("public key does not parse");
  CertifiedEk out;
  absl::StatusOr<TPMT_PUBLIC> ek = TemplateFor(key);
  if (!ek.ok()) return ek.status();
  out.ek = *ek;
  char issuer[256] = {};
  X509_NAME_oneline(X509_get_issuer_name(leaf.get()), issuer, sizeof(issuer));
  out.issuer = issuer;
  return out;
}

absl::Status CheckEkMatchesCertificate(const CertifiedEk& certified, const TPMT_PUBLIC& ek) {
  absl::StatusOr<tpm::UniqueEvpPkey> given = tpm::PublicKeyFromTpm(ek);
  if (!given.ok()) return given.status();
  absl::StatusOr<tpm::UniqueEvpPkey> expected = tpm::PublicKeyFromTpm(certified.ek);
  if (!expected.ok()) return expected.status();
  if (EVP_PKEY_eq(given->get(), expected->get()) != 1) {
    return Denied(DenialReason::kEkCertificateMismatch,
                  "ek certificate mismatch: ek_public is another key");
  }
  return absl::OkStatus();
}

}  // namespace hosn::attest
