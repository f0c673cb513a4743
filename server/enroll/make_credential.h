// MakeCredential in software: the broker's half of proving that an AK lives in
// the same TPM as an EK, before the AK is enrolled.
//
// The broker picks a random credential, encrypts it so that only the TPM
// holding the EK's private key can recover it, and only when the AK named
// in the blob is loaded in that same TPM (TPM 2.0 Part 1, "Credential
// Protection"; TPM2_ActivateCredential on the node). The node returns the
// credential; a match proves EK and AK share a TPM. Every step is OpenSSL;
// TPM structures are marshalled with tss2-mu.
//
// The seed (32 bytes, the size of the EK's nameAlg SHA-256) reaches the TPM
// in one of two ways, by EK type:
// - ECC (NIST P-256/P-384): ECDH with a fresh key on the EK's curve, seed =
//   KDFe (SSKDF) of the shared x-coordinate; the secret is the fresh point.
// - RSA (2048, 3072 or 4096 bits): a random seed encrypted to the EK with
//   RSA-OAEP (SHA-256, MGF1-SHA256, label "IDENTITY" with its NUL).
// From the seed on both share one path: KDFa (KBKDF in counter mode with
// HMAC) gives the AES-CFB and HMAC keys, then the TPM2B_ID_OBJECT.
//
// Supported EKs: the TCG EK Credential Profile's templates with nameAlg
// SHA-256 and an AES-CFB symmetric definition (L-1 RSA 2048, L-2 ECC P-256).
// Stateless and thread-safe.
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
// decryption key; Unimplemented for an EK outside the supported set (type,
// nameAlg, RSA size, curve or symmetric definition); Internal if OpenSSL
// fails.
absl::StatusOr<CredentialChallenge> MakeCredential(const TPMT_PUBLIC& ek, const TPMT_PUBLIC& ak,
                                                   const SecretBytes& credential);

}  // namespace hosn::enroll

#endif  // HOSN_SERVER_ENROLL_MAKE_CREDENTIAL_H_
