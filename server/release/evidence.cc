// Conversion and checks of a node's evidence; see evidence.h.
#include "server/release/evidence.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

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
  const auto* p = reinterpret_cast<const unsigned char*>(spki_der.data());
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())), EVP_PKEY_free);
  if (key == nullptr ||
      p != reinterpret_cast<const unsigned char*>(spki_der.data()) + spki_der.size()) {
    return absl::InvalidArgumentError("ephemeral_public_key: not one DER SubjectPublicKeyInfo");
  }
  char group[64] = {};
  size_t group_size = 0;
  if (!EVP_PKEY_is_a(key.get(), "EC") ||
      EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                     &group_size) != 1 ||
      std::string(group, group_size) != "prime256v1") {
    return absl::InvalidArgumentError("ephemeral_public_key: not a P-256 key");
  }
  return absl::OkStatus();
}

}  // namespace hosn::release
