// MakeCredential in software: the broker's half of proving that an AK lives in
// the same TPM as an EK, before the AK is enrolled.
//
// The broker picks a random credential, encrypts it so that only the TPM
// holding the EK's private key can recover it, and only when the AK named
// in the blob is loaded in that same TPM (TPM 2.0 Part 1, "Credential
// Protection"; TPM2_ActivateCredential on the node). The node returns the
// credential; a match proves EK and AK share a TPM. Every step is OpenSSL:
// ECDH with a fresh key on the EK's curve, KDFe (SSKDF), KDFa (KBKDF in
// counter mode with HMAC), AES-CFB and HMAC.
//
// Supported EKs: ECC (NIST P-256/P-384) with an AES symmetric definition, as
// in the TCG EK Credential Profile's ECC templates. RSA EKs: TODO(#5) (needs
// RSA-OAEP with the label "IDENTITY"). Stateless and thread-safe.
#ifndef HOSN_SERVER_ENROLL_MAKE_CREDENTIAL_H_
#define HOSN_SERVER_ENROLL_MAKE_CREDENTIAL_H_

#include <tss2/tss2_tpm2_types.h>

#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"
#include "common/tpm/tpm_types.h"

namespace hosn::enroll {

// What the node's TPM takes in TPM2_ActivateCredential.
struct CredentialChallenge {
  tpm::Bytes credential_blob;   // marshalled TPM2B_ID_OBJECT
  tpm::Bytes encrypted_secret;  // marshalled TPM2B_ENCRYPTED_SECRET
};

// The TPM name of a public area: nameAlg (2 bytes, big-endian) followed by
// the nameAlg digest of the marshalled TPMT_PUBLIC. InvalidArgument for an
// unknown nameAlg.
absl::StatusOr<tpm::Bytes> ObjectName(const TPMT_PUBLIC& public_area);

// Makes a challenge that only the TPM holding `ek` can open, and only for the
// object named by `ak`. `credential` must be 1 to 32 bytes. InvalidArgument
// for a credential of another size or an EK that is not a restricted
// decryption key; Unimplemented for an RSA EK or an unsupported curve or
// symmetric definition; Internal if OpenSSL fails.
absl::StatusOr<CredentialChallenge> MakeCredential(const TPMT_PUBLIC& ek, const TPMT_PUBLIC& ak,
                                                   const SecretBytes& credential);

}  // namespace hosn::enroll

#endif  // HOSN_SERVER_ENROLL_MAKE_CREDENTIAL_H_
