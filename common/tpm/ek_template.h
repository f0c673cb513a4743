// The endorsement-key templates of the TCG EK Credential Profile for TPM 2.0
// that Hosn uses: L-1 (RSA 2048) and L-2 (ECC NIST P-256), both with nameAlg
// SHA-256, AES-128-CFB, PolicySecret(TPM_RH_ENDORSEMENT) as authPolicy and
// unique filled with zeros of the key's size.
//
// A TPM derives the same EK from its endorsement seed and one of these
// templates every time, and a manufacturer's EK certificate certifies the key
// of that template. So the node's agent creates its EK from them, and the
// broker rebuilds an EK's full public area from the key in an EK certificate
// (EkPublicFromTemplate). Header-only, stateless and thread-safe.
#ifndef HOSN_COMMON_TPM_EK_TEMPLATE_H_
#define HOSN_COMMON_TPM_EK_TEMPLATE_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <cstring>

namespace hosn::tpm {

enum class EkKeyType { kEccP256, kRsa2048 };

// TCG EK Credential Profile 2.0, templates L-1/L-2 authPolicy: PolicySecret on
// TPM_RH_ENDORSEMENT. The EK has no userWithAuth, so every use needs it.
inline constexpr uint8_t kEkAuthPolicy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

// The template of `type` (unique: zeros of the key's size), as given to
// TPM2_CreatePrimary.
inline TPMT_PUBLIC EkTemplate(EkKeyType type) {
  TPMT_PUBLIC p{};
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.authPolicy.size = sizeof(kEkAuthPolicy);
  std::memcpy(p.authPolicy.buffer, kEkAuthPolicy, sizeof(kEkAuthPolicy));
  TPMT_SYM_DEF_OBJECT symmetric{};
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  if (type == EkKeyType::kRsa2048) {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric = symmetric;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;  // 2^16 + 1
    p.unique.rsa.size = 256;
    return p;
  }
  p.type = TPM2_ALG_ECC;
  p.parameters.eccDetail.symmetric = symmetric;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  p.unique.ecc.x.size = 32;
  p.unique.ecc.y.size = 32;
  return p;
}

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_EK_TEMPLATE_H_
