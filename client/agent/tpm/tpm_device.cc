#include "client/agent/tpm/tpm_device.h"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <openssl/crypto.h>

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tpm/ek_template.h"
#include "common/tpm/marshal.h"

namespace hosn::agent {
namespace {

// ESAPI allocates every output structure; this frees it on every path.
struct EsysFreeDeleter {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFreeDeleter>;

absl::Status TpmError(std::string_view what, TSS2_RC rc) {
  const std::string message = absl::StrCat(std::string(what), ": ", Tss2_RC_Decode(rc));
  // TCTI-layer failures mean the TPM is not reachable at all.
  if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

TPM2B_PUBLIC EkCreateTemplate(EkAlgorithm algorithm) {
  TPM2B_PUBLIC t{};
  t.publicArea = tpm::EkTemplate(algorithm);
  return t;
}

TPM2B_PUBLIC AkTemplate(AkAlgorithm algorithm) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  if (algorithm == AkAlgorithm::kEcdsaP256Sha256) {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  } else {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
    p.parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
  }
  return t;
}

// Creates a primary key under the endorsement hierarchy (empty auth, as on a
// node whose owner has not set an endorsement password).
absl::StatusOr<ESYS_TR> CreateEndorsementPrimary(ESYS_CONTEXT* esys, const TPM2B_PUBLIC& templ,
                                                 tpm::Bytes* public_area) {
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside_info{};
  TPML_PCR_SELECTION creation_pcrs{};
  ESYS_TR handle = ESYS_TR_NONE;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  const TSS2_RC rc =
      Esys_CreatePrimary(esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         &sensitive, &templ, &outside_info, &creation_pcrs, &handle, &out_public,
                         &creation_data, &creation_hash, &creation_ticket);
  EsysPtr<TPM2B_PUBLIC> out_public_owner(out_public);
  EsysPtr<TPM2B_CREATION_DATA> creation_data_owner(creation_data);
  EsysPtr<TPM2B_DIGEST> creation_hash_owner(creation_hash);
  EsysPtr<TPMT_TK_CREATION> creation_ticket_owner(creation_ticket);
  if (rc != TSS2_RC_SUCCESS) return TpmError("create endorsement primary", rc);

  auto marshalled = tpm::MarshalPublic(out_public->publicArea);
  if (!marshalled.ok()) {
    Esys_FlushContext(esys, handle);
    return marshalled.status();
  }
  *public_area = std::move(*marshalled);
  return handle;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TpmDevice>> TpmDevice::Open(const std::string& tcti, AkAlgorithm ak,
                                                           EkAlgorithm ek) {
  TSS2_TCTI_CONTEXT* tcti_context = nullptr;
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &tcti_context);
  if (rc != TSS2_RC_SUCCESS) {
    return absl::UnavailableError(
        absl::StrCat("cannot open TPM via tcti \"", tcti, "\": ", Tss2_RC_Decode(rc)));
  }
  ESYS_CONTEXT* esys = nullptr;
  rc = Esys_Initialize(&esys, tcti_context, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    Tss2_TctiLdr_Finalize(&tcti_context);
    return TpmError("esys initialize", rc);
  }
  auto device = std::unique_ptr<TpmDevice>(new TpmDevice(tcti_context, esys, ak, ek));

  // A TPM that the firmware already started answers TPM_RC_INITIALIZE.
  rc = Esys_Startup(esys, TPM2_SU_CLEAR);
  if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) return TpmError("tpm startup", rc);
  return device;
}

TpmDevice::~TpmDevice() {
  if (ak_ != ESYS_TR_NONE) Esys_FlushContext(esys_, ak_);
  if (ek_ != ESYS_TR_NONE) Esys_FlushContext(esys_, ek_);
  Esys_Finalize(&esys_);
  Tss2_TctiLdr_Finalize(&tcti_);
}

absl::StatusOr<ESYS_TR> TpmDevice::LoadEk() {
  if (ek_ == ESYS_TR_NONE) {
    HOSN_ASSIGN_OR_RETURN(
        ek_, CreateEndorsementPrimary(esys_, EkCreateTemplate(ek_algorithm_), &ek_public_));
  }
  return ek_;
}

absl::StatusOr<ESYS_TR> TpmDevice::LoadAk() {
  if (ak_ == ESYS_TR_NONE) {
    HOSN_ASSIGN_OR_RETURN(ak_,
                          CreateEndorsementPrimary(esys_, AkTemplate(ak_algorithm_), &ak_public_));
  }
  return ak_;
}

absl::StatusOr<tpm::Bytes> TpmDevice::EndorsementKeyPublic() {
  HOSN_RETURN_IF_ERROR(LoadEk().status());
  return ek_public_;
}

absl::StatusOr<tpm::Bytes> TpmDevice::AttestationKeyPublic() {
  HOSN_RETURN_IF_ERROR(LoadAk().status());
  return ak_public_;
}

absl::StatusOr<tpm::PcrValues> TpmDevice::ReadPcrs(const tpm::PcrSelection& selection) {
  tpm::PcrValues values;
  // TPM2_PCR_Read returns at most eight digests per call, so read one PCR at
  // a time: simple, and the count is small (at most 24 per bank).
  for (const tpm::PcrBankSelection& bank : selection) {
    for (uint32_t index : bank.pcrs) {
      HOSN_ASSIGN_OR_RETURN(TPML_PCR_SELECTION one, tpm::PcrSelectionToTpm({{bank.hash, {index}}}));
      UINT32 update_counter = 0;
      TPML_PCR_SELECTION* selection_out = nullptr;
      TPML_DIGEST* digests = nullptr;
      const TSS2_RC rc = Esys_PCR_Read(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &one,
                                       &update_counter, &selection_out, &digests);
      EsysPtr<TPML_PCR_SELECTION> selection_owner(selection_out);
      EsysPtr<TPML_DIGEST> digests_owner(digests);
      if (rc != TSS2_RC_SUCCESS) return TpmError("pcr read", rc);
      if (digests->count != 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("tpm has no pcr ", index, " in bank ", tpm::HashAlgName(bank.hash)));
      }
      values[bank.hash][index] = tpm::Bytes(digests->digests[0].buffer,
                                            digests->digests[0].buffer + digests->digests[0].size);
    }
  }
  return values;
}

absl::StatusOr<TpmQuote> TpmDevice::Quote(const tpm::PcrSelection& selection,
                                          std::span<const uint8_t> qualifying_data) {
  // The TPM's limit is its largest digest plus two bytes; 32 is what every
  // SHA-256 TPM takes, and all our nonce bindings are 32 bytes.
  if (qualifying_data.size() > 32) {
    return absl::InvalidArgumentError("nonce too large for this TPM");
  }
  HOSN_ASSIGN_OR_RETURN(ESYS_TR ak, LoadAk());
  HOSN_ASSIGN_OR_RETURN(TPML_PCR_SELECTION tpm_selection, tpm::PcrSelectionToTpm(selection));

  TPM2B_DATA qualifying{};
  qualifying.size = static_cast<UINT16>(qualifying_data.size());
  std::memcpy(qualifying.buffer, qualifying_data.data(), qualifying_data.size());
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;  // the AK's own scheme

  TPM2B_ATTEST* quoted = nullptr;
  TPMT_SIGNATURE* signature = nullptr;
  const TSS2_RC rc = Esys_Quote(esys_, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                &qualifying, &scheme, &tpm_selection, &quoted, &signature);
  EsysPtr<TPM2B_ATTEST> quoted_owner(quoted);
  EsysPtr<TPMT_SIGNATURE> signature_owner(signature);
  if (rc != TSS2_RC_SUCCESS) return TpmError("quote", rc);

  TpmQuote out;
  out.attest.assign(quoted->attestationData, quoted->attestationData + quoted->size);
  HOSN_ASSIGN_OR_RETURN(out.signature, tpm::MarshalSignature(*signature));
  out.selection = selection;
  // Read after quoting: if a PCR moved in between, the verifier's pcrDigest
  // check fails and the agent simply quotes again.
  HOSN_ASSIGN_OR_RETURN(out.pcr_values, ReadPcrs(selection));
  return out;
}

absl::StatusOr<SecretBytes> TpmDevice::ActivateCredential(
    std::span<const uint8_t> credential_blob, std::span<const uint8_t> encrypted_secret) {
  HOSN_ASSIGN_OR_RETURN(ESYS_TR ek, LoadEk());
  HOSN_ASSIGN_OR_RETURN(ESYS_TR ak, LoadAk());

  TPM2B_ID_OBJECT id_object{};
  size_t offset = 0;
  if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(credential_blob.data(), credential_blob.size(), &offset,
                                        &id_object) != TSS2_RC_SUCCESS ||
      offset != credential_blob.size()) {
    return absl::InvalidArgumentError("malformed credential blob");
  }
  TPM2B_ENCRYPTED_SECRET secret{};
  offset = 0;
  if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encrypted_secret.data(), encrypted_secret.size(),
                                               &offset, &secret) != TSS2_RC_SUCCESS ||
      offset != encrypted_secret.size()) {
    return absl::InvalidArgumentError("malformed encrypted secret");
  }

  // The EK is usable only through PolicySecret(TPM_RH_ENDORSEMENT).
  TPMT_SYM_DEF symmetric{};
  symmetric.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(esys_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &symmetric,
                                     TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TpmError("start policy session", rc);
  struct SessionFlusher {
    ESYS_CONTEXT* esys;
    ESYS_TR session;
    ~SessionFlusher() { Esys_FlushContext(esys, session); }
  } flusher{esys_, session};

  TPM2B_DIGEST* timeout = nullptr;
  TPMT_TK_AUTH* ticket = nullptr;
  rc = Esys_PolicySecret(esys_, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, &timeout, &ticket);
  EsysPtr<TPM2B_DIGEST> timeout_owner(timeout);
  EsysPtr<TPMT_TK_AUTH> ticket_owner(ticket);
  if (rc != TSS2_RC_SUCCESS) return TpmError("policy secret", rc);

  TPM2B_DIGEST* cert_info = nullptr;
  rc = Esys_ActivateCredential(esys_, ak, ek, ESYS_TR_PASSWORD, session, ESYS_TR_NONE, &id_object,
                               &secret, &cert_info);
  EsysPtr<TPM2B_DIGEST> cert_info_owner(cert_info);
  if (rc != TSS2_RC_SUCCESS) {
    // Integrity or value failures: the blob was not made for this TPM.
    return absl::PermissionDeniedError(
        absl::StrCat("tpm refused the credential: ", Tss2_RC_Decode(rc)));
  }
  SecretBytes credential =
      SecretBytes::CopyOf(std::span<const uint8_t>(cert_info->buffer, cert_info->size));
  OPENSSL_cleanse(cert_info->buffer, cert_info->size);
  return credential;
}

}  // namespace hosn::agent
