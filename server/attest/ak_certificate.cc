#include "server/attest/ak_certificate.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/tpm/ak_public.h"
#include "server/attest/denial.h"
#include "server/attest/x509_util.h"

namespace hosn::attest {

absl::Status VerifyAkCertificate(std::span<const uint8_t> certificate_der, const TPMT_PUBLIC& ak,
                                 const std::vector<std::string>& roots,
                                 const std::vector<std::string>& intermediates,
                                 std::string_view crl_pem_bundle) {
  if (roots.empty()) return absl::InvalidArgumentError("no trusted root for ak certificates");
  absl::StatusOr<tpm::UniqueEvpPkey> ak_key = tpm::PublicKeyFromTpm(ak);
  if (!ak_key.ok()) return ak_key.status();

  // 1. Parse everything; any unparsable certificate is a denial.
  UniqueX509 leaf = ParseDerCertificate(certificate_der);
  if (leaf == nullptr) {
    return Denied(DenialReason::kAkCertificateInvalid, "ak certificate invalid: malformed");
  }
  std::vector<UniqueX509> anchors;
  for (const std::string& root : roots) {
    anchors.push_back(ParsePemOrDerCertificate(root));
    if (anchors.back() == nullptr) return absl::InvalidArgumentError("trusted root does not parse");
  }
  std::vector<UniqueX509Crl> crls;
  if (!crl_pem_bundle.empty()) {
    absl::StatusOr<std::vector<UniqueX509Crl>> parsed = ParsePemCrls(crl_pem_bundle, "ak crls");
    if (!parsed.ok()) return parsed.status();
    crls = *std::move(parsed);
  }
  absl::StatusOr<UniqueX509Store> store = NewTrustStore(anchors, crls);
  if (!store.ok()) return store.status();
  std::unique_ptr<STACK_OF(X509), X509StackDeleter> chain(sk_X509_new_null());
  if (chain == nullptr) return absl::InternalError("openssl allocation failed");
  for (const std::string& intermediate : intermediates) {
    UniqueX509 cert = ParsePemOrDerCertificate(intermediate);
    if (cert == nullptr) {
      return Denied(DenialReason::kAkCertificateInvalid,
                    "ak certificate invalid: intermediate does not parse");
    }
    if (sk_X509_push(chain.get(), cert.get()) == 0) return absl::InternalError("stack push failed");
    (void)cert.release();  // owned by `chain`
  }

  // 2. The chain, and with CRLs the revocation state of each certificate.
  std::unique_ptr<X509_STORE_CTX, X509StoreCtxDeleter> ctx(X509_STORE_CTX_new());
  if (ctx == nullptr ||
      X509_STORE_CTX_init(ctx.get(), store->get(), leaf.get(), chain.get()) != 1) {
    return absl::InternalError("cannot start chain verification");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    return ChainDenial(ctx.get(), "ak certificate", DenialReason::kAkCertificateInvalid,
                       DenialReason::kAkCertificateRevoked);
  }

  // 3. The key it certifies is this AK.
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), ak_key->get()) != 1) {
    return Denied(DenialReason::kAkCertificateMismatch);
  }
  return absl::OkStatus();
}

}  // namespace hosn::attest
