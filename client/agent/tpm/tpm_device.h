// TpmDevice: the node's TPM 2.0 as hosn-agent uses it, through tpm2-tss ESAPI.
//
// The agent needs four things from its TPM: the endorsement key's public area
// (to enroll), a restricted signing attestation key (AK), PCR values, and
// quotes over a PCR selection with caller-chosen qualifyingData. Enrollment
// also needs ActivateCredential, which proves to the broker that the AK lives
// in the same TPM as the EK.
//
// Both keys are primary keys of the endorsement hierarchy, made from fixed
// templates: the TPM derives the same key from its endorsement seed every
// time, so nothing is persisted on the node and no key material ever leaves
// the TPM. The EK follows the TCG EK Credential Profile's ECC P-256 template
// L-2 (default) or RSA 2048 template L-1, the key most TPMs ship an EK
// certificate for; the AK is ECDSA-P256-SHA256 (default) or RSASSA-2048-SHA256, with
// fixedTPM, fixedParent, restricted and sign set.
//
// The TCTI is any tpm2-tss TCTI configuration string: "device:/dev/tpmrm0" on
// a node, "swtpm:host=127.0.0.1,port=2321" for the software TPM.
//
// Ownership: a TpmDevice owns its TCTI and ESAPI contexts and the transient
// key handles it loaded; the destructor flushes and finalizes them. Not
// thread-safe: ESAPI contexts serve one caller at a time.
#ifndef HOSN_CLIENT_AGENT_TPM_TPM_DEVICE_H_
#define HOSN_CLIENT_AGENT_TPM_TPM_DEVICE_H_

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"
#include "common/tpm/ek_template.h"
#include "common/tpm/tpm_types.h"

namespace hosn::agent {

enum class AkAlgorithm { kEcdsaP256Sha256, kRsassa2048Sha256 };
// The EK template: TCG EK Credential Profile L-2 (ECC P-256) or L-1 (RSA 2048).
using EkAlgorithm = tpm::EkKeyType;

// One quote as the TPM produced it, plus the PCR values read right after.
struct TpmQuote {
  tpm::Bytes attest;     // marshalled TPMS_ATTEST (the signed bytes)
  tpm::Bytes signature;  // marshalled TPMT_SIGNATURE
  tpm::PcrSelection selection;
  tpm::PcrValues pcr_values;
};

class TpmDevice {
 public:
  // Opens the TPM behind `tcti` and sends TPM2_Startup(CLEAR) when the TPM
  // needs it. Unavailable if the TCTI cannot be loaded or the TPM does not
  // answer; Internal for other TPM errors (the TPM_RC text is in the message).
  static absl::StatusOr<std::unique_ptr<TpmDevice>> Open(
      const std::string& tcti, AkAlgorithm ak = AkAlgorithm::kEcdsaP256Sha256,
      EkAlgorithm ek = EkAlgorithm::kEccP256);
  ~TpmDevice();
  TpmDevice(const TpmDevice&) = delete;
  TpmDevice& operator=(const TpmDevice&) = delete;

  // Marshalled TPMT_PUBLIC of the EK and the AK (created on first use).
  absl::StatusOr<tpm::Bytes> EndorsementKeyPublic();
  absl::StatusOr<tpm::Bytes> AttestationKeyPublic();

  // Reads every PCR in `selection`. InvalidArgument for a bad selection,
  // FailedPrecondition if the TPM has no such bank.
  absl::StatusOr<tpm::PcrValues> ReadPcrs(const tpm::PcrSelection& selection);

  // Quotes `selection` with the AK. `qualifying_data` must be at most 32
  // bytes: a TPM refuses more than its largest digest (TPM_RC_SIZE), so the
  // limit is checked here with the error "nonce too large for this TPM" and
  // the TPM is never asked.
  absl::StatusOr<TpmQuote> Quote(const tpm::PcrSelection& selection,
                                 std::span<const uint8_t> qualifying_data);

  // TPM2_ActivateCredential with the AK as the activated object and the EK as
  // the decryption key (authorised by PolicySecret on the endorsement
  // hierarchy). `credential_blob` is a marshalled TPM2B_ID_OBJECT and
  // `encrypted_secret` a marshalled TPM2B_ENCRYPTED_SECRET, as made by
  // MakeCredential for this EK and the AK's name. Returns the credential;
  // PermissionDenied if the TPM refuses it (the blob was not made for this
  // TPM's EK and AK).
  absl::StatusOr<SecretBytes> ActivateCredential(std::span<const uint8_t> credential_blob,
                                                 std::span<const uint8_t> encrypted_secret);

 private:
  TpmDevice(TSS2_TCTI_CONTEXT* tcti, ESYS_CONTEXT* esys, AkAlgorithm ak, EkAlgorithm ek)
      : tcti_(tcti), esys_(esys), ak_algorithm_(ak), ek_algorithm_(ek) {}

  absl::StatusOr<ESYS_TR> LoadEk();
  absl::StatusOr<ESYS_TR> LoadAk();

  TSS2_TCTI_CONTEXT* tcti_;
  ESYS_CONTEXT* esys_;
  AkAlgorithm ak_algorithm_;
  EkAlgorithm ek_algorithm_;
  ESYS_TR ek_ = ESYS_TR_NONE;
  ESYS_TR ak_ = ESYS_TR_NONE;
  tpm::Bytes ek_public_;
  tpm::Bytes ak_public_;
};

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_TPM_TPM_DEVICE_H_
