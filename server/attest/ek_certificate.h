// EkCertificateVerifier: checks a TPM endorsement-key (EK) certificate at
// enrollment against the TPM manufacturer CAs the operator configured
// (release.ek_ca_bundle_path), and yields the EK public area it certifies.
//
// Chain rules (docs/release.md, "EK certificates"): OpenSSL's X509_verify_cert
// at the current time, every certificate of the bundle a trust anchor
// (X509_V_FLAG_PARTIAL_CHAIN, so a pinned vendor intermediate suffices), no
// purpose or EKU requirement (vendors differ on tcg-kp-EKCertificate). TCG EK
// certificates carry a critical subjectAltName with TPM manufacturer, model
// and version attributes, which OpenSSL handles; of the critical extensions
// OpenSSL does not implement, exactly one is tolerated, and only on the EK
// certificate itself: subjectDirectoryAttributes (2.5.29.9), which carries
// the TPM specification and security assertions and constrains nothing. Any
// other unknown critical extension, and any on a CA, is refused.
//
// The EK public area is the TCG template of the certified key (L-1 for RSA
// 2048, L-2 for ECC P-256; common/tpm/ek_template.h), the key a TPM derives
// for that template.
//
// Revocation: with a CRL bundle (release.ek_crl_bundle_path), every
// certificate of the chain, the anchor included, must be covered by a current
// CRL of its issuer (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL). The
// anchors are fixed at Create(); the CRLs may be replaced at any time
// (ReplaceCrls), which is how the daemon picks up a new CRL file. Verify and
// ReplaceCrls may run concurrently: a Verify uses the CRL set that was current
// when it started.
#ifndef HOSN_SERVER_ATTEST_EK_CERTIFICATE_H_
#define HOSN_SERVER_ATTEST_EK_CERTIFICATE_H_

#include <openssl/x509_vfy.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/attest/x509_util.h"

namespace hosn::attest {

// What a verified EK certificate vouches for.
struct CertifiedEk {
  // The TCG template public area holding the certified key.
  TPMT_PUBLIC ek = {};
  // The issuer's distinguished name, one line (for the audit entry).
  std::string issuer;
};

class EkCertificateVerifier {
 public:
  // `ca_pem_bundle`: one or more PEM certificates; `crl_pem_bundle`: PEM
  // CRLs, or empty for no revocation check. InvalidArgument if the CA bundle
  // holds no certificate, or either bundle has an entry that does not parse.
  static absl::StatusOr<std::unique_ptr<EkCertificateVerifier>> Create(
      std::string_view ca_pem_bundle, std::string_view crl_pem_bundle = {});

  // Replaces the CRL set (empty: no revocation check from now on).
  // InvalidArgument if an entry does not parse; the old set then stays.
  absl::Status ReplaceCrls(std::string_view crl_pem_bundle);

  // Verifies `certificate_der` (one DER certificate, nothing after it).
  // Denied(kEkCertificateInvalid) with OpenSSL's reason if it does not parse,
  // does not chain to the bundle, is expired or not yet valid, has a critical
  // extension refused above, or (with CRLs) a CA of its chain has no CRL in the
  // set; Denied(kEkCertificateRevoked) if a CRL lists a certificate of the
  // chain; Denied(kCrlExpired) if a CRL the check needs is past its
  // nextUpdate; Unimplemented if its key is neither RSA 2048 (exponent 65537)
  // nor ECC P-256, the two templates whose EK the certificate alone
  // determines; Internal if OpenSSL fails.
  absl::StatusOr<CertifiedEk> Verify(std::span<const uint8_t> certificate_der) const;

 private:
  explicit EkCertificateVerifier(std::vector<UniqueX509> anchors) : anchors_(std::move(anchors)) {}

  // Constant after construction.
  const std::vector<UniqueX509> anchors_;

  mutable absl::Mutex mu_;
  // Anchors plus the current CRLs; replaced whole, never changed in place.
  std::shared_ptr<X509_STORE> store_ ABSL_GUARDED_BY(mu_);
};

// OK if `ek` holds the key `certified` certifies (its own template may
// differ). Denied(kEkCertificateMismatch) otherwise; InvalidArgument if `ek`
// is not an RSA or ECC key.
absl::Status CheckEkMatchesCertificate(const CertifiedEk& certified, const TPMT_PUBLIC& ek);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_EK_CERTIFICATE_H_
