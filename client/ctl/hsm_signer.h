// HsmManifestSigner: a ManifestSigner whose private key is a signing key on
// a PKCS#11 token, reached through the one session pool of server/hsm's
// KeyStore. OpenSSL never sees the key: SignManifest hands over the DER
// signed attributes and gets back the token's raw signature.
//
// TODO(#4): hosnctl links hosn_hsm only until hosn-keyd offers a signing RPC;
// then this adapter moves behind the daemon and the client stops including
// server/.
//
// Thread-safe: KeyStore::Sign is, and the adapter holds no mutable state.
// The KeyStore must outlive the signer.
#ifndef HOSN_CLIENT_CTL_HSM_SIGNER_H_
#define HOSN_CLIENT_CTL_HSM_SIGNER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/bundle/signature.h"
#include "server/hsm/key_store.h"

namespace hosn::ctl {

class HsmManifestSigner : public bundle::ManifestSigner {
 public:
  // `key` names the private key; `chain_pem` starts with its certificate.
  // InvalidArgument if the certificate's public key is neither P-256 EC nor
  // RSA, or does not match the token's public key for `key`.
  static absl::StatusOr<std::unique_ptr<HsmManifestSigner>> Create(hsm::KeyStore* store,
                                                                   hsm::KeyRef key,
                                                                   std::string chain_pem);

  bundle::SignatureAlgorithm algorithm() const override { return algorithm_; }
  std::string CertificateChainPem() const override { return chain_pem_; }
  absl::StatusOr<std::string> SignRaw(std::string_view message) override;

 private:
  HsmManifestSigner() = default;

  hsm::KeyStore* store_ = nullptr;
  hsm::KeyRef key_;
  std::string chain_pem_;
  bundle::SignatureAlgorithm algorithm_ = bundle::SignatureAlgorithm::kEcdsaSha256;
};

}  // namespace hosn::ctl

#endif  // HOSN_CLIENT_CTL_HSM_SIGNER_H_
