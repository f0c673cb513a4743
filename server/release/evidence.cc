// Conversion and checks of a node's evidence; see evidence.h.
#include "server/release/evidence.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/hsm/key_store.h"

namespace hosn::release {

absl::StatusOr<tpm::PcrValues> PcrValuesFromRequest(
    const google::protobuf::RepeatedPtrField<keyd::v1::PcrValue>& values) {
  tpm::PcrValues out;
  for (const keyd::v1::PcrValue& value : values) {
    absl::StatusOr<TPM2_ALG_ID> bank = tpm::HashAlgFromName(value.bank());
    if (!bank.ok()) return absl::InvalidArgumentError("pcr_values: unknown bank");
    if (value.index() > tpm::kMaxPcrIndex) {
      return absl::InvalidArgumentError("pcr_values: index above 23");
    }
    auto [it, inserted] =
        out[*bank].emplace(value.index(), tpm::Bytes(value.digest().begin(), value.digest().end()));
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("pcr_values: ", value.bank(), ":", value.index(), " sent twice"));
    }
  }
  return out;
}

absl::Status CheckEphemeralKey(std::string_view spki_der) {
  // The parser of the HSM re-wrap itself, so that a key accepted here is
  // one the wrap accepts; it has a fast path for the canonical encoding.
  absl::Status status = hsm::KeyStore::CheckPeerPublicKey(spki_der);
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat("ephemeral_public_key: ", status.message()));
}

}  // namespace hosn::release
