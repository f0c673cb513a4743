// HsmCheckpointSigner: signs the audit log's checkpoints with an EC P-256 key
// on the daemon's HSM token, through the HsmBackend's KeyStore (the daemon's
// only PKCS#11 stack). The key is audit.checkpoint_key_label (default the
// signing key); its certificate chain is what auditors pin.
//
// Ownership: borrows the backend, which must outlive the signer. Thread-safe
// (the KeyStore is).
#ifndef HOSN_SERVER_KEYD_CHECKPOINT_SIGNER_H_
#define HOSN_SERVER_KEYD_CHECKPOINT_SIGNER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/audit/audit_log.h"
#include "server/keyd/hsm_backend.h"

namespace hosn::keyd {

class HsmCheckpointSigner final : public audit::CheckpointSigner {
 public:
  HsmCheckpointSigner(HsmBackend* backend, std::string key_label)
      : backend_(backend), key_label_(std::move(key_label)) {}

  std::string algorithm() const override { return "ecdsa-p256-sha256"; }
  // DER ECDSA signature; Unavailable while the token is unreachable (the log
  // retries at its next batch).
  absl::StatusOr<std::string> Sign(std::string_view message) override {
    return backend_->SignForDaemon(key_label_, message);
  }

 private:
  HsmBackend* const backend_;
  const std::string key_label_;
};

}  // namespace hosn::keyd

#endif  // HOSN_SERVER_KEYD_CHECKPOINT_SIGNER_H_
