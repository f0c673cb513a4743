// Checks an AK certificate at enrollment: that it chains to a trusted root
// through the given intermediates, and that it certifies exactly the AK public
// area being enrolled.
//
// Cloud vTPMs (and some enterprise CAs) issue AK certificates; where one
// exists, enrolling the AK against it proves the AK lives in a TPM the CA
// vouched for, instead of trusting the operator's word. Verification uses
// OpenSSL's default X.509 chain rules at the current time, with no extended
// key usage requirement (TCG AK certificates carry TCG-specific EKUs).
// Stateless and thread-safe.
#ifndef HOSN_SERVER_ATTEST_AK_CERTIFICATE_H_
#define HOSN_SERVER_ATTEST_AK_CERTIFICATE_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace hosn::attest {

// `certificate_der`: the AK certificate, DER. `roots` and `intermediates`:
// certificates, each PEM or DER. Returns OK if the chain verifies and the
// certificate's public key equals `ak`'s.
// Denied(kAkCertificateInvalid) if a certificate does not parse (or trailing
// bytes follow the DER) or the chain does not verify, with OpenSSL's reason;
// Denied(kAkCertificateMismatch) if it certifies another key; InvalidArgument
// if `roots` is empty or `ak` is not an RSA/ECC key; Internal if OpenSSL fails.
absl::Status VerifyAkCertificate(std::span<const uint8_t> certificate_der, const TPMT_PUBLIC& ak,
                                 const std::vector<std::string>& roots,
                                 const std::vector<std::string>& intermediates);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_AK_CERTIFICATE_H_
