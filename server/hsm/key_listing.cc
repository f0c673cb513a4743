// KeyStore::ListKeys: the token's keys of one class, described without key
// material, for the daemon's ListKeys RPC and operators' inventories.
//
// One search per call in one pooled session, afresh every time (no handle
// survives the call), so keys created by another replica or a vendor tool
// show up at once. Keys of types this project does not use are skipped, not
// reported as errors: an HSM partition often holds other applications' keys.
// Thread safety: as KeyStore.
#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/base/status_macros.h"
#include "server/hsm/attributes.h"
#include "server/hsm/key_store.h"
#include "server/hsm/key_store_internal.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/session_pool.h"

namespace hosn::hsm {
namespace {

// The most keys one listing returns; a partition with more is refused with
// ResourceExhausted rather than paged, since no deployment of ours has that many.
constexpr size_t kMaxListedKeys = 10'000;
constexpr size_t kMaxNameBytes = 4096;

std::optional<KeyType> KnownKeyType(CK_ULONG type) {
  for (KeyType known :
       {KeyType::kAes, KeyType::kGenericSecret, KeyType::kEc, KeyType::kRsa, KeyType::kEcEdwards}) {
    if (ToCkKeyType(known) == type) return known;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::vector<KeyInfo>> KeyStore::ListKeys(KeyClass key_class) {
  return internals_->pool->RunFor<std::vector<KeyInfo>>(
      OpKind::kFind, [&](Session& session) -> absl::StatusOr<std::vector<KeyInfo>> {
        CK_OBJECT_CLASS ck_class = ToCkClass(key_class);
        CK_BBOOL on_token = CK_TRUE;
        CK_ATTRIBUTE search[] = {{CKA_CLASS, &ck_class, sizeof(ck_class)},
                                 {CKA_TOKEN, &on_token, sizeof(on_token)}};
        HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                              session.FindObjects(search, 2, kMaxListedKeys));
        std::vector<KeyInfo> keys;
        for (CK_OBJECT_HANDLE handle : handles) {
          HOSN_ASSIGN_OR_RETURN(CK_ULONG type, GetUlongAttribute(session, handle, CKA_KEY_TYPE));
          std::optional<KeyType> key_type = KnownKeyType(type);
          if (!key_type.has_value()) continue;
          KeyInfo info;
          info.key_class = key_class;
          info.key_type = *key_type;
          info.token = true;
          HOSN_ASSIGN_OR_RETURN(info.label,
                                GetBytesAttribute(session, handle, CKA_LABEL, kMaxNameBytes));
          HOSN_ASSIGN_OR_RETURN(info.id, GetBytesAttribute(session, handle, CKA_ID, kMaxNameBytes));
          if (key_class != KeyClass::kPublicKey) {
            HOSN_ASSIGN_OR_RETURN(info.sensitive, GetBoolAttribute(session, handle, CKA_SENSITIVE));
            HOSN_ASSIGN_OR_RETURN(info.extractable,
                                  GetBoolAttribute(session, handle, CKA_EXTRACTABLE));
            HOSN_ASSIGN_OR_RETURN(info.can_sign, GetBoolAttribute(session, handle, CKA_SIGN));
            HOSN_ASSIGN_OR_RETURN(info.can_derive, GetBoolAttribute(session, handle, CKA_DERIVE));
          }
          if (key_class == KeyClass::kSecretKey) {
            HOSN_ASSIGN_OR_RETURN(CK_ULONG length,
                                  GetUlongAttribute(session, handle, CKA_VALUE_LEN));
            info.secret_bytes = length;
          }
          keys.push_back(std::move(info));
        }
        std::sort(keys.begin(), keys.end(), [](const KeyInfo& a, const KeyInfo& b) {
          return std::tie(a.label, a.id) < std::tie(b.label, b.id);
        });
        return keys;
      });
}

}  // namespace hosn::hsm
