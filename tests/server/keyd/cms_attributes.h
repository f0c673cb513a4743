// The CMS signed attributes that common/bundle builds for a manifest, as a
// client must send them in SignManifestRequest.cms_signed_attributes. Tests
// and the load benchmark use it to make well-formed signing requests.
#ifndef HOSN_TESTS_SERVER_KEYD_CMS_ATTRIBUTES_H_
#define HOSN_TESTS_SERVER_KEYD_CMS_ATTRIBUTES_H_

#include <string>
#include <string_view>

#include "common/bundle/signature.h"

namespace hosn::testing {

// A ManifestSigner that records the attributes it is asked to sign and
// refuses to sign them, so SignManifest stops right after building them.
class CmsAttributeCapture : public bundle::ManifestSigner {
 public:
  explicit CmsAttributeCapture(std::string chain_pem) : chain_pem_(std::move(chain_pem)) {}
  bundle::SignatureAlgorithm algorithm() const override {
    return bundle::SignatureAlgorithm::kEcdsaSha256;
  }
  std::string CertificateChainPem() const override { return chain_pem_; }
  absl::StatusOr<std::string> SignRaw(std::string_view /*manifest*/,
                                      std::string_view attributes) override {
    attributes_ = std::string(attributes);
    return absl::InternalError("captured");
  }
  const std::string& attributes() const { return attributes_; }

 private:
  std::string chain_pem_;
  std::string attributes_;
};

// The signed attributes for `manifest`, built with the signer certificate
// chain `chain_pem` (the daemon's signing certificate). Empty on failure.
inline std::string CmsAttributesFor(std::string_view manifest, std::string chain_pem) {
  CmsAttributeCapture capture(std::move(chain_pem));
  (void)bundle::SignManifest(manifest, capture);
  return capture.attributes();
}

}  // namespace hosn::testing

#endif  // HOSN_TESTS_SERVER_KEYD_CMS_ATTRIBUTES_H_
