// Detached CMS (PKCS#7) SignedData over the exact manifest bytes
// (docs/bundle-format.md, "Signature").
//
// Signing: OpenSSL's CMS code builds the SignerInfo and its signed attributes
// (contentType, signingTime, messageDigest = SHA-256 of the manifest bytes)
// from the signer's certificate alone; only the DER of the signed attributes
// goes to a ManifestSigner, which returns the raw signature. The private key
// therefore never has to be an OpenSSL object: the production signer is an
// HSM key reached through the PKCS#11 layer (no second PKCS#11 stack).
//
// Verification: CMS_verify against a pinned CA bundle only (certificates in
// the message are untrusted intermediates), at the current time or a given
// one; exactly one signer; the signer certificate must carry keyUsage
// digitalSignature and extendedKeyUsage codeSigning. VerifyAndParseManifest
// then parses the very buffer it verified.
//
// ManifestSigner implementations say whether they are thread-safe;
// OpenSslKeySigner is immutable and thread-safe. The free functions are
// thread-safe.
#ifndef HOSN_COMMON_BUNDLE_SIGNATURE_H_
#define HOSN_COMMON_BUNDLE_SIGNATURE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"
#include "common/bundle/manifest.h"

namespace hosn::bundle {

enum class SignatureAlgorithm {
  kEcdsaSha256,     // raw r||s, each half the group order's size (PKCS#11 CKM_ECDSA)
  kRsaPkcs1Sha256,  // RSASSA-PKCS1-v1_5 signature bytes (CKM_SHA256_RSA_PKCS)
};

// Produces the raw signature over bytes chosen by the CMS code.
class ManifestSigner {
 public:
  virtual ~ManifestSigner() = default;
  virtual SignatureAlgorithm algorithm() const = 0;
  // PEM: the signer certificate first, then any intermediates to embed.
  virtual std::string CertificateChainPem() const = 0;
  // Signs `signed_attributes` (the DER the CMS code built over
  // `manifest_bytes`) with SHA-256 as the digest, in the form algorithm()
  // names. A signer that cannot trust its caller (a daemon holding the key)
  // checks the attributes against `manifest_bytes` before signing; a local
  // key may ignore them. Errors are passed through to the caller of
  // SignManifest.
  virtual absl::StatusOr<std::string> SignRaw(std::string_view manifest_bytes,
                                              std::string_view signed_attributes) = 0;
};

// A signer whose key is an OpenSSL private key (tests, development).
class OpenSslKeySigner : public ManifestSigner {
 public:
  // `key_pem` is a PKCS#8 or traditional PEM private key (EC or RSA) that
  // matches the first certificate of `chain_pem`. InvalidArgument otherwise.
  static absl::StatusOr<std::unique_ptr<OpenSslKeySigner>> Create(const SecretBytes& key_pem,
                                                                  std::string chain_pem);
  ~OpenSslKeySigner() override;

  SignatureAlgorithm algorithm() const override { return algorithm_; }
  std::string CertificateChainPem() const override { return chain_pem_; }
  absl::StatusOr<std::string> SignRaw(std::string_view manifest_bytes,
                                      std::string_view signed_attributes) override;

 private:
  OpenSslKeySigner() = default;
  struct Key;
  std::unique_ptr<Key> key_;
  SignatureAlgorithm algorithm_ = SignatureAlgorithm::kEcdsaSha256;
  std::string chain_pem_;
};

// Converts between raw r||s and DER ECDSA-Sig-Value. InvalidArgument on
// malformed input.
absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw);
absl::StatusOr<std::string> EcdsaDerToRaw(std::string_view der, size_t half_size);

// The DER ContentInfo of a detached SignedData over `manifest_bytes`.
// `signing_time` is seconds since the epoch (nullopt: now).
absl::StatusOr<std::string> SignManifest(std::string_view manifest_bytes, ManifestSigner& signer,
                                         std::optional<int64_t> signing_time = std::nullopt);

struct TrustOptions {
  std::string ca_bundle_pem;       // the pinned roots
  std::optional<int64_t> at_time;  // nullopt: now
};

struct VerifiedManifest {
  BundleManifest manifest;
  std::string bytes;           // the exact bytes that were verified and parsed
  std::string signer_subject;  // one-line subject of the signer certificate
};

// Verifies `signature_der` over `manifest_bytes`. Errors:
// InvalidArgument signature_malformed (not DER CMS SignedData, not detached,
// not exactly one signer) or trust_bundle_invalid; PermissionDenied
// signer_untrusted (chain, validity time) or signer_key_usage; DataLoss
// signature_invalid (digest or signature mismatch). On success returns the
// subject of the signer.
absl::StatusOr<std::string> VerifyManifestSignature(std::string_view manifest_bytes,
                                                    std::string_view signature_der,
                                                    const TrustOptions& trust);

// VerifyManifestSignature, then ParseManifest of the same bytes.
absl::StatusOr<VerifiedManifest> VerifyAndParseManifest(std::string manifest_bytes,
                                                        std::string_view signature_der,
                                                        const TrustOptions& trust);

}  // namespace hosn::bundle

#endif  // HOSN_COMMON_BUNDLE_SIGNATURE_H_
