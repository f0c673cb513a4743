// Internals shared by the .cc files that implement KeyStore (key_store.cc,
// key_store_release.cc, data_objects.cc): the KeyStore's private state, the
// attribute template builder, and the wrap/unwrap/derive steps that run on a
// pooled Session. Not a public header: server/hsm only.
//
// Ownership: Internals is owned by its KeyStore. Thread safety: Internals is
// constant after KeyStore::Create except the members guarded by its mutexes;
// the free functions run on a Session, which one thread uses at a time.
#ifndef HOSN_SERVER_HSM_KEY_STORE_INTERNAL_H_
#define HOSN_SERVER_HSM_KEY_STORE_INTERNAL_H_

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/sync.h"
#include "server/hsm/data_object_index.h"
#include "server/hsm/key_store.h"
#include "server/hsm/mechanisms.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/session_pool.h"

namespace hosn::hsm {

struct KeyStore::Internals {
  std::unique_ptr<SessionPool> pool;
  MechanismTable mechanisms;
  std::vector<CK_MECHANISM_TYPE> supported;  // as reported at start-up

  bool Supports(CK_MECHANISM_TYPE mechanism) const {
    return std::find(supported.begin(), supported.end(), mechanism) != supported.end();
  }

  // Serialises find-then-create in the Generate* functions, so two callers
  // in this process cannot both create a key with one label and id.
  // hosn-keyd owns the token's keys; no other process creates keys on it.
  Mutex create_mu;
  // Label -> handle hints for the data objects (data_objects.cc).
  std::unique_ptr<DataObjectIndex> data_index;
  // Data-object reads hold this shared, puts and deletes exclusively. SoftHSM
  // re-reads an object's attributes without locking out other sessions of
  // the process, so a search that runs while a put creates or destroys a
  // version can miss every version of the label, and the put's own
  // C_CreateObject can fail (CKR_GENERAL_ERROR). Other processes (replicas)
  // are not covered; their readers search again when objects vanish.
  SharedMutex data_mu;
  Mutex capability_mu;
  absl::flat_hash_map<std::string, absl::Status> capabilities ABSL_GUARDED_BY(capability_mu);
};

inline constexpr CK_BBOOL kCkTrue = CK_TRUE;
inline constexpr CK_BBOOL kCkFalse = CK_FALSE;

// Attribute template builder: keeps every value alive for the call.
class Template {
 public:
  static constexpr size_t kMaxAttributes = 24;

  void Bool(CK_ATTRIBUTE_TYPE type, bool value) {
    Add({type, const_cast<CK_BBOOL*>(value ? &kCkTrue : &kCkFalse), sizeof(CK_BBOOL)});
  }
  // CK_ULONG values, always with sizeof(CK_ULONG) (case P6).
  void Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
    ulongs_[size_] = value;
    Add({type, &ulongs_[size_], sizeof(CK_ULONG)});
  }
  void Bytes(CK_ATTRIBUTE_TYPE type, std::string_view value) {
    Add({type, const_cast<char*>(value.data()), value.size()});
  }
  CK_ATTRIBUTE* data() { return attributes_.data(); }
  CK_ULONG size() const { return size_; }

 private:
  // Fixed storage: no allocation on the hot path, and the CK_ULONG values
  // stay where the attributes point. Templates here are constant and small.
  void Add(const CK_ATTRIBUTE& attribute) {
    if (size_ == kMaxAttributes) std::abort();
    attributes_[size_++] = attribute;
  }

  std::array<CK_ATTRIBUTE, kMaxAttributes> attributes_{};
  std::array<CK_ULONG, kMaxAttributes> ulongs_{};
  size_t size_ = 0;
};

// Wraps `key` under `wrapping_key` with `mechanism_type` (no parameters).
// The CKR status of C_WrapKey on failure.
absl::StatusOr<std::string> WrapWith(Session& session, CK_MECHANISM_TYPE mechanism_type,
                                     CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key);

// Unwraps `wrapped` under `kek` into a DEK session object (sensitive,
// extractable so that it can be wrapped again). DataLoss if the blob fails
// its integrity check (no object exists then). The caller owns the handle.
absl::StatusOr<CK_OBJECT_HANDLE> UnwrapWith(Session& session, CK_MECHANISM_TYPE mechanism_type,
                                            CK_OBJECT_HANDLE kek, const WrappedKey& wrapped);

// Creates a token secret key from `t` with `keygen` unless a key matching
// `ref` exists (AlreadyExists "<what> already exists"). Holds `create_mu`
// across the check and the create; tells the pool that keys changed.
absl::Status CreateUniqueSecretKey(SessionPool& pool, Mutex& create_mu, CK_MECHANISM_TYPE keygen,
                                   const KeyRef& ref, std::string_view what, Template& t);

// What a token key pair is for. kSign: private SIGN, public VERIFY.
// kDerive: private DERIVE (release keys), public nothing.
enum class KeyPairUse { kSign, kDerive };

// Generates a token key pair with `keygen`: the private half PRIVATE,
// SENSITIVE, not EXTRACTABLE, with only the usage `use` names, never
// DECRYPT or UNWRAP. `pub` comes in with the curve or RSA parameters.
// Returns the public half's handle; the CKR status on failure.
absl::StatusOr<CK_OBJECT_HANDLE> GenerateTokenKeyPair(Session& session, CK_MECHANISM_TYPE keygen,
                                                      KeyType key_type, std::string_view label,
                                                      std::string_view id, KeyPairUse use,
                                                      Template& pub);

// The attributes of a MAC key (GenerateMacKey, and the test import):
// CKK_GENERIC_SECRET, sensitive, not extractable, SIGN and VERIFY only.
void MacKeyAttributes(Template& t, std::string_view label, std::string_view id, bool token_object);

// The node's side of a release, checked and decoded before any HSM work.
struct ReleasePeer {
  std::string point;  // uncompressed P-256 point, 65 bytes
  CK_ULONG kdf = CKD_NULL;
  std::string shared_info;  // empty for CKD_NULL
};

// InvalidArgument unless `peer_public_spki` is a DER SubjectPublicKeyInfo of
// a P-256 point (nothing after it) and `kdf` is "null" or "x963-sha256".
absl::StatusOr<ReleasePeer> ParseReleasePeer(std::string_view peer_public_spki,
                                             std::string_view kdf, std::string_view shared_info);

// Steps 2-4 of docs/release-wrap.md on `session`: derives a session AES-256
// wrap-only key with ECDH1 from `release_key` and `peer`, wraps `dek` under it
// with "aes-kwp", destroys the derived key on every path. Unimplemented
// ("capability: ...") if the module refuses CKM_ECDH1_DERIVE or the KDF;
// FailedPrecondition if `release_key` is not an EC private key.
absl::StatusOr<std::string> WrapToPeerIn(Session& session, const MechanismTable& mechanisms,
                                         CK_OBJECT_HANDLE dek, const KeyRef& release_key,
                                         const ReleasePeer& peer);

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_KEY_STORE_INTERNAL_H_
