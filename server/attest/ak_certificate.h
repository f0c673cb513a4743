// Checks an AK certificate at enrollment: that it chains to a trusted root
// through the given intermediates, and that it certifies exactly the AK public
// area being enrolled.
//
// Cloud vTPMs (and some enterprise CAs) issue AK certificates; where one
// exists, enrolling the AK against it proves the AK lives in a TPM the CA
// vouched for, instead of trusting the operator's word. Verification uses
// OpenSSL's default X.509 chain rules at the current time, with no extended
// key usage requirement (TCG AK certificates carry TCG-specific EKUs). With
// CRLs given, every certificate of the chain must be covered by a current CRL
// of its issuer (docs/attestation.md, "Revocation"). Stateless and
// thread-safe.
#ifndef HOSN_SERVER_ATTEST_AK_CERTIFICATE_H_
#define HOSN_SERVER_ATTEST_AK_CERTIFICATE_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace hosn::attest {

// `certificate_der`: the AK certificate, DER. `roots` and `intermediates`:
// certificates, each PEM or DER. `crl_pem_bundle`: PEM CRLs of the CAs of the
// chain, or empty for no revocation check. Returns OK if the chain verifies
// and the certificate's public key equals `ak`'s.
// Denied(kAkCertificateInvalid) if a certificate does not parse (or trailing
// bytes follow the DER) or the chain does not verify (with CRLs: also when a
// CA of the chain has no CRL in the bundle), with OpenSSL's reason;
// Denied(kAkCertificateRevoked) if a CRL lists a certificate of the chain;
// Denied(kCrlExpired) if a CRL the check needs is past its nextUpdate;
// Denied(kAkCertificateMismatch) if it certifies another key; InvalidArgument
// if `roots` is empty, a root or the CRL bundle does not parse, or `ak` is
// not an RSA/ECC key; Internal if OpenSSL fails.
absl::Status VerifyAkCertificate(std::span<const uint8_t> certificate_der, const TPMT_PUBLIC& ak,
                                 const std::vector<std::string>& roots,
                                 const std::vector<std::string>& intermediates,
                                 std::string_view crl_pem_bundle = {});

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_AK_CERTIFICATE_H_
