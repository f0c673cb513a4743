// KeyStore: the release key, the challenge MAC key, and the release
// operation of scheme ecdh-p256-kwp (docs/release-wrap.md). The DEK exists
// in plaintext only inside the HSM: it is unwrapped, wrapped to the node's
// ephemeral key and destroyed in one pooled session.
//
// Thread safety: as KeyStore (every method may be called from any thread).
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "server/hsm/ckr.h"
#include "server/hsm/key_store.h"
#include "server/hsm/key_store_internal.h"
#include "server/hsm/openssl_util.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/session_pool.h"

namespace hosn::hsm {
namespace {

constexpr size_t kHmacBytes = 32;

// The wrapping key ECDH1 derives: a session AES-256 key that can wrap and
// do nothing else, never extractable.
void WrappingKeyAttributes(Template& t) {
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY);
  t.Ulong(CKA_KEY_TYPE, CKK_AES);
  t.Ulong(CKA_VALUE_LEN, 32);
  t.Bool(CKA_TOKEN, false);
  t.Bool(CKA_PRIVATE, true);
  t.Bool(CKA_SENSITIVE, true);
  t.Bool(CKA_EXTRACTABLE, false);
  t.Bool(CKA_WRAP, true);
  t.Bool(CKA_UNWRAP, false);
  t.Bool(CKA_ENCRYPT, false);
  t.Bool(CKA_DECRYPT, false);
  t.Bool(CKA_SIGN, false);
  t.Bool(CKA_VERIFY, false);
  t.Bool(CKA_DERIVE, false);
}

std::string_view KdfName(CK_ULONG kdf) { return kdf == CKD_NULL ? "CKD_NULL" : "CKD_SHA256_KDF"; }

absl::Status CheckMacKey(const KeyRef& key) {
  if (key.key_class != KeyClass::kSecretKey || key.key_type != KeyType::kGenericSecret) {
    return absl::FailedPreconditionError(
        absl::StrCat("key '", key.label, "' is not a generic-secret mac key"));
  }
  return absl::OkStatus();
}

}  // namespace

void MacKeyAttributes(Template& t, std::string_view label, std::string_view id, bool token_object) {
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY);
  t.Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
  t.Bool(CKA_TOKEN, token_object);
  t.Bool(CKA_PRIVATE, true);
  t.Bool(CKA_SENSITIVE, true);
  t.Bool(CKA_EXTRACTABLE, false);
  t.Bool(CKA_SIGN, true);
  t.Bool(CKA_VERIFY, true);
  t.Bool(CKA_WRAP, false);
  t.Bool(CKA_UNWRAP, false);
  t.Bool(CKA_ENCRYPT, false);
  t.Bool(CKA_DECRYPT, false);
  t.Bool(CKA_DERIVE, false);
  t.Bytes(CKA_LABEL, label);
  t.Bytes(CKA_ID, id);
}

absl::StatusOr<ReleasePeer> ParseReleasePeer(std::string_view peer_public_spki,
                                             std::string_view kdf, std::string_view shared_info) {
  ReleasePeer peer;
  if (kdf == "null") {
    peer.kdf = CKD_NULL;  // shared_info unused, as on the node
  } else if (kdf == "x963-sha256") {
    peer.kdf = CKD_SHA256_KDF;
    peer.shared_info = std::string(shared_info);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown release kdf ", ToAbsl(kdf)));
  }
  HOSN_ASSIGN_OR_RETURN(peer.point, P256PointFromSpki(peer_public_spki));
  return peer;
}

absl::StatusOr<std::string> WrapToPeerIn(Session& session, const MechanismTable& mechanisms,
                                         CK_OBJECT_HANDLE dek, const KeyRef& release_key,
                                         const ReleasePeer& peer) {
  if (release_key.key_class != KeyClass::kPrivateKey || release_key.key_type != KeyType::kEc) {
    return absl::FailedPreconditionError(
        absl::StrCat("key '", release_key.label, "' is not an ec release key"));
  }
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE kwp, mechanisms.Get("aes-kwp"));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE ecdh, mechanisms.Get("ecdh-derive"));
  HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE private_key, session.Resolve(release_key));

  CK_ECDH1_DERIVE_PARAMS params = {};
  params.kdf = peer.kdf;
  params.public_data = reinterpret_cast<CK_BYTE*>(const_cast<char*>(peer.point.data()));
  params.public_data_len = peer.point.size();
  if (!peer.shared_info.empty()) {
    params.shared_data = reinterpret_cast<CK_BYTE*>(const_cast<char*>(peer.shared_info.data()));
    params.shared_data_len = peer.shared_info.size();
  }
  CK_MECHANISM mechanism = {ecdh, &params, sizeof(params)};
  Template t;
  WrappingKeyAttributes(t);
  CK_OBJECT_HANDLE wrapping_key = CK_INVALID_HANDLE;
  const CK_RV rv = session.fn()->C_DeriveKey(session.handle(), &mechanism, private_key, t.data(),
                                             t.size(), &wrapping_key);
  // A refused mechanism or KDF is a capability of the module, not a broken
  // session: no object exists and no operation is left active, so the
  // status carries no CKR and the session goes back to the pool.
  if (rv == CKR_MECHANISM_INVALID) {
    return absl::UnimplementedError(
        absl::StrCat("capability: module refuses CKM_ECDH1_DERIVE (", CkrName(rv), ")"));
  }
  if (rv == CKR_MECHANISM_PARAM_INVALID && peer.kdf != CKD_NULL) {
    return absl::UnimplementedError(absl::StrCat("capability: module refuses ",
                                                 ToAbsl(KdfName(peer.kdf)),
                                                 " for CKM_ECDH1_DERIVE (", CkrName(rv), ")"));
  }
  HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_DeriveKey"));
  ScopedObject derived(session, wrapping_key);
  return WrapWith(session, kwp, derived.get(), dek);
}

absl::StatusOr<KeyRef> KeyStore::GenerateReleaseKey(std::string_view label, std::string_view id) {
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE keygen, internals_->mechanisms.Get("keygen:ec-p256"));
  if (!internals_->Supports(keygen)) {
    return absl::UnimplementedError("capability: module cannot generate ec-p256 keys");
  }
  const KeyRef ref = KeyRef::ReleaseKey(std::string(label), std::string(id));
  MutexLock create_lock(&internals_->create_mu);
  HOSN_RETURN_IF_ERROR(internals_->pool->Run(OpKind::kGenerate, [&](Session& session) {
    HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> existing, session.FindAll(ref));
    if (!existing.empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat("release key already exists: '", ref.label, "'"));
    }
    Template pub;
    pub.Bytes(CKA_EC_PARAMS, kOidP256);
    return GenerateTokenKeyPair(session, keygen, KeyType::kEc, label, id, KeyPairUse::kDerive, pub)
        .status();
  }));
  internals_->pool->KeysChanged();
  return ref;
}

absl::StatusOr<KeyRef> KeyStore::GenerateMacKey(std::string_view label, std::string_view id) {
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE keygen,
                        internals_->mechanisms.Get("keygen:generic-secret"));
  const KeyRef ref = KeyRef::MacKey(std::string(label), std::string(id));
  Template t;
  MacKeyAttributes(t, label, id, true);
  t.Ulong(CKA_VALUE_LEN, kHmacBytes);
  HOSN_RETURN_IF_ERROR(
      CreateUniqueSecretKey(*internals_->pool, internals_->create_mu, keygen, ref, "mac key", t));
  return ref;
}

absl::StatusOr<std::string> KeyStore::Mac(const KeyRef& key, std::string_view data) {
  HOSN_RETURN_IF_ERROR(CheckMacKey(key));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE hmac, internals_->mechanisms.Get("hmac-sha256"));
  return internals_->pool->RunFor<std::string>(
      OpKind::kSign, [&](Session& session) -> absl::StatusOr<std::string> {
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle, session.Resolve(key));
        CK_MECHANISM mechanism = {hmac, nullptr, 0};
        HOSN_RETURN_IF_ERROR(CkrStatus(
            session.fn()->C_SignInit(session.handle(), &mechanism, handle), "C_SignInit"));
        std::string out(kHmacBytes, '\0');
        CK_ULONG length = out.size();
        HOSN_RETURN_IF_ERROR(CkrStatus(
            session.fn()->C_Sign(session.handle(),
                                 reinterpret_cast<CK_BYTE*>(const_cast<char*>(data.data())),
                                 data.size(), reinterpret_cast<CK_BYTE*>(out.data()), &length),
            "C_Sign"));
        if (length != kHmacBytes) return absl::InternalError("C_Sign: bad hmac length");
        return out;
      });
}

absl::Status KeyStore::VerifyMac(const KeyRef& key, std::string_view data, std::string_view mac) {
  HOSN_RETURN_IF_ERROR(CheckMacKey(key));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE hmac, internals_->mechanisms.Get("hmac-sha256"));
  const absl::Status mismatch = absl::PermissionDeniedError("mac mismatch");
  // A wrong length is a mismatch too; it never reaches the HSM.
  if (mac.size() != kHmacBytes) return mismatch;
  return internals_->pool->Run(OpKind::kSign, [&](Session& session) -> absl::Status {
    HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle, session.Resolve(key));
    CK_MECHANISM mechanism = {hmac, nullptr, 0};
    HOSN_RETURN_IF_ERROR(CkrStatus(session.fn()->C_VerifyInit(session.handle(), &mechanism, handle),
                                   "C_VerifyInit"));
    // C_Verify ends the operation whatever its result.
    const CK_RV rv = session.fn()->C_Verify(
        session.handle(), reinterpret_cast<CK_BYTE*>(const_cast<char*>(data.data())), data.size(),
        reinterpret_cast<CK_BYTE*>(const_cast<char*>(mac.data())), mac.size());
    if (rv == CKR_SIGNATURE_INVALID || rv == CKR_SIGNATURE_LEN_RANGE) return mismatch;
    return CkrStatus(rv, "C_Verify");
  });
}

absl::StatusOr<std::string> KeyStore::WrapDekToPeer(const KeyRef& kek, const WrappedKey& wrapped,
                                                    const KeyRef& release_key,
                                                    std::string_view peer_public_spki,
                                                    std::string_view kdf,
                                                    std::string_view shared_info) {
  // Everything the node sent is checked before the HSM does any work.
  HOSN_ASSIGN_OR_RETURN(ReleasePeer peer, ParseReleasePeer(peer_public_spki, kdf, shared_info));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE unwrap, internals_->mechanisms.Get(wrapped.algorithm));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE ecdh, internals_->mechanisms.Get("ecdh-derive"));
  if (!internals_->Supports(ecdh)) {
    return absl::UnimplementedError("capability: module does not list CKM_ECDH1_DERIVE");
  }
  return internals_->pool->RunFor<std::string>(
      OpKind::kWrap, [&](Session& session) -> absl::StatusOr<std::string> {
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE kek_handle, session.Resolve(kek));
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle,
                              UnwrapWith(session, unwrap, kek_handle, wrapped));
        ScopedObject dek(session, handle);
        return WrapToPeerIn(session, internals_->mechanisms, dek.get(), release_key, peer);
      });
}

absl::Status KeyStore::CheckPeerPublicKey(std::string_view peer_public_spki) {
  return P256PointFromSpki(peer_public_spki).status();
}

}  // namespace hosn::hsm
