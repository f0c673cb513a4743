// Attestation key (AK) public areas: the acceptance rule for an AK and its
// conversion to an OpenSSL public key.
//
// An AK is acceptable only if its TPMT_PUBLIC says the TPM will sign with it
// only data the TPM itself generated (restricted + sign), that it never leaves
// this TPM (fixedTPM) or its parent (fixedParent), and that it is not a
// decryption key. Those attributes are what make a quote signed by it mean
// anything. AkPublicKey owns its EVP_PKEY (RAII); it is immutable after
// Create() and safe to use from several threads at once.
#ifndef HOSN_COMMON_TPM_AK_PUBLIC_H_
#define HOSN_COMMON_TPM_AK_PUBLIC_H_

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace hosn::tpm {

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using UniqueEvpPkey = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// OK if `public_area` is an RSA or ECC key with restricted, sign, fixedTPM and
// fixedParent set and decrypt clear. FailedPrecondition naming the first
// missing attribute otherwise; InvalidArgument for another key type.
absl::Status CheckAkAttributes(const TPMT_PUBLIC& public_area);

// Builds an OpenSSL public key from an RSA or ECC (NIST P-256/P-384/P-521)
// public area. Performs no attribute check. InvalidArgument for another type,
// curve or a malformed key; Internal if OpenSSL fails.
absl::StatusOr<UniqueEvpPkey> PublicKeyFromTpm(const TPMT_PUBLIC& public_area);

// An accepted AK: its public area and the matching OpenSSL key.
class AkPublicKey {
 public:
  // Checks CheckAkAttributes, then PublicKeyFromTpm; returns their errors.
  static absl::StatusOr<std::unique_ptr<AkPublicKey>> Create(const TPMT_PUBLIC& public_area);

  const TPMT_PUBLIC& public_area() const { return public_area_; }
  EVP_PKEY* pkey() const { return pkey_.get(); }

 private:
  AkPublicKey(const TPMT_PUBLIC& public_area, UniqueEvpPkey pkey)
      : public_area_(public_area), pkey_(std::move(pkey)) {}

  const TPMT_PUBLIC public_area_;
  const UniqueEvpPkey pkey_;
};

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_AK_PUBLIC_H_
