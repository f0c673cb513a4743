#include "server/hsm/mechanisms.h"

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"

namespace hosn::hsm {

absl::StatusOr<MechanismTable> MechanismTable::Create(
    const std::map<std::string, uint64_t>& overrides) {
  MechanismTable table;
  table.by_name = {
      // Key wrapping. "aes-kwp" is RFC 5649; SoftHSM numbers it 0x210A.
      {"aes-kwp", CKM_AES_KEY_WRAP_PAD},
      {"aes-kw", CKM_AES_KEY_WRAP},
      {"rsa-oaep-sha256", CKM_RSA_PKCS_OAEP},
      // Signatures; hashing happens inside the HSM.
      {"ecdsa-p256-sha256", CKM_ECDSA_SHA256},
      {"ecdsa-p384-sha384", CKM_ECDSA_SHA384},
      {"rsa-pss-sha256", CKM_SHA256_RSA_PKCS_PSS},
      {"rsa-pkcs1-sha256", CKM_SHA256_RSA_PKCS},
      {"ed25519", CKM_EDDSA},
      // ECDSA over a digest computed on the host, for modules (SoftHSM 2.6)
      // without the hash-and-sign ECDSA mechanisms.
      {"ecdsa-prehashed", CKM_ECDSA},
      // Release (docs/release-wrap.md): ECDH on P-256 into a wrapping key.
      {"ecdh-derive", CKM_ECDH1_DERIVE},
      // Key check values.
      {"aes-ecb", CKM_AES_ECB},
      {"hmac-sha256", CKM_SHA256_HMAC},
      // Key generation.
      {"keygen:aes", CKM_AES_KEY_GEN},
      {"keygen:generic-secret", CKM_GENERIC_SECRET_KEY_GEN},
      {"keygen:ec-p256", CKM_EC_KEY_PAIR_GEN},
      {"keygen:ec-p384", CKM_EC_KEY_PAIR_GEN},
      {"keygen:rsa-3072", CKM_RSA_PKCS_KEY_PAIR_GEN},
      {"keygen:ed25519", CKM_EC_EDWARDS_KEY_PAIR_GEN},
  };
  for (const auto& [name, mechanism] : overrides) {
    auto it = table.by_name.find(name);
    if (it == table.by_name.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("mechanism override for unknown algorithm ", name));
    }
    it->second = static_cast<CK_MECHANISM_TYPE>(mechanism);
  }
  return table;
}

absl::StatusOr<CK_MECHANISM_TYPE> MechanismTable::Get(std::string_view name) const {
  auto it = by_name.find(name);
  if (it == by_name.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown algorithm ", ToAbsl(name)));
  }
  return it->second;
}

}  // namespace hosn::hsm
