// KeyStore: the key operations of the broker on one PKCS#11 token.
//
// This is the only public entry to the HSM. It loads a vendor PKCS#11 module
// (SoftHSMv2, Luna, nShield, Utimaco, YubiHSM...), selects one token by RFC
// 7512 URI (label and/or serial, never a slot number), logs in once with a PIN
// read from a file or a systemd credential, and runs every operation on a
// fixed pool of sessions that recovers from HSM restarts (see docs/hsm.md).
//
// Keys are named by KeyRef (class, key type, label, CKA_ID), never by object
// handle: handles are resolved inside each session and never outlive it.
// Algorithms are named by string ("aes-kwp", "ecdsa-p256-sha256"...); the
// PKCS#11 mechanism behind each name is configurable because vendors number
// some of them differently. DEKs exist in plaintext only inside the HSM: they
// leave it wrapped under a KEK (RFC 5649), and rotation rewraps them without
// the plaintext leaving the HSM.
//
// Ownership: the KeyStore owns the module, the sessions and the login; its
// destructor closes the sessions and finalizes the module. Thread safety: all
// methods are safe to call concurrently from any number of threads; calls
// beyond the pool size wait up to KeyStoreOptions::acquire_timeout.
//
// Error codes, in terms of what the caller should do next:
//   InvalidArgument     bad name, bad reference, malformed input; do not retry.
//   NotFound            no key matches the reference.
//   FailedPrecondition  ambiguous key ("ambiguous key: N matches"), key
//                       unusable (missing or unavailable attributes), wrong
//                       key kind for the operation; fix the token.
//   DataLoss            a wrapped key failed its integrity check.
//   Unimplemented       the module cannot do this algorithm ("capability: ").
//   DeadlineExceeded    every session stayed busy until the deadline; retry
//                       later.
//   Unavailable         the HSM is gone and recovery failed; retry later.
//   Internal            any other PKCS#11 error (the CKR name is in the
//                       message).
#ifndef HOSN_SERVER_HSM_KEY_STORE_H_
#define HOSN_SERVER_HSM_KEY_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/secret_bytes.h"
#include "server/hsm/pool_metrics.h"

namespace hosn::hsm {

// CKA_CLASS values we use.
enum class KeyClass { kSecretKey, kPrivateKey, kPublicKey };
// CKA_KEY_TYPE values we use.
enum class KeyType { kAes, kGenericSecret, kEc, kRsa, kEcEdwards };

std::string_view KeyClassName(KeyClass key_class);
std::string_view KeyTypeName(KeyType key_type);

// How to find one key. The search template always pins CKA_CLASS and
// CKA_KEY_TYPE, so an RSA key that shares a label with a KEK never matches.
// `id` is the raw CKA_ID; without it the label alone must be unique.
struct KeyRef {
  KeyClass key_class = KeyClass::kSecretKey;
  KeyType key_type = KeyType::kAes;
  std::string label;
  std::optional<std::string> id;

  // An AES key-encryption key.
  static KeyRef Kek(std::string label, std::optional<std::string> id = std::nullopt) {
    return {KeyClass::kSecretKey, KeyType::kAes, std::move(label), std::move(id)};
  }
  // A MAC key (generic secret, HMAC-SHA256).
  static KeyRef MacKey(std::string label, std::optional<std::string> id = std::nullopt) {
    return {KeyClass::kSecretKey, KeyType::kGenericSecret, std::move(label), std::move(id)};
  }
  // The private half of a release key pair (EC P-256, derive only).
  static KeyRef ReleaseKey(std::string label, std::optional<std::string> id = std::nullopt) {
    return {KeyClass::kPrivateKey, KeyType::kEc, std::move(label), std::move(id)};
  }
};

// A DEK wrapped under a KEK. Safe to store and log the length of; the bytes
// are ciphertext. `algorithm` is the name kept in our metadata ("aes-kwp").
struct WrappedKey {
  std::string algorithm;
  KeyType dek_type = KeyType::kAes;  // kAes (16/24/32 bytes) or kGenericSecret
  std::string wrapped;
};

// Public attributes of a key found on the token.
struct KeyInfo {
  KeyClass key_class = KeyClass::kSecretKey;
  KeyType key_type = KeyType::kAes;
  std::string label;
  std::string id;
  bool token = false;        // CKA_TOKEN
  bool sensitive = false;    // CKA_SENSITIVE (secret and private keys)
  bool extractable = false;  // CKA_EXTRACTABLE (secret and private keys)
  // Filled by ListKeys only:
  bool can_sign = false;    // CKA_SIGN (secret and private keys)
  bool can_derive = false;  // CKA_DERIVE
  size_t secret_bytes = 0;  // CKA_VALUE_LEN of a secret key
};

// A signing key pair on the token, plus its public key as DER
// SubjectPublicKeyInfo (built with OpenSSL from CKA_EC_POINT/CKA_MODULUS...).
struct SigningKey {
  KeyRef private_key;
  KeyRef public_key;
  std::string public_key_der;
};

// What Sign returns.
//   kPkcs11Raw: what the module returns. ECDSA: r||s, each zero-padded to the
//               field size. RSA and Ed25519: the standard signature bytes.
//   kDer:       ECDSA as an X9.62 DER SEQUENCE { r, s } (what OpenSSL and
//               X.509 verify); identical to kPkcs11Raw for RSA and Ed25519.
enum class SignatureFormat { kPkcs11Raw, kDer };

struct KeyStoreOptions {
  // RFC 7512 URI; must name a token label and/or serial. A module-path in the
  // query is used unless `module_path` is set.
  std::string uri;
  std::string module_path;
  // "file:/path" or "credential:NAME" (see hosn::ReadSecretReference). If
  // empty, the URI's pin-source is used. Never the PIN itself.
  std::string pin_reference;
  int pool_size = 4;
  // How long a caller waits for a free session before DeadlineExceeded.
  absl::Duration acquire_timeout = absl::Seconds(2);
  // Algorithm name -> CKM number, for vendors whose numbering differs from
  // our defaults (docs/hsm.md has the table). Example: {"aes-kwp", 0x210B}
  // for a PKCS#11 3.0 module, where SoftHSM uses 0x210A.
  std::map<std::string, uint64_t> mechanism_overrides;
  // On CKR_DEVICE_REMOVED/CKR_TOKEN_NOT_PRESENT, also C_Finalize and
  // C_Initialize the module before reopening sessions.
  bool reinitialize_module_on_device_error = true;
  // Keep object handles found in a session for that session's lifetime. They
  // are dropped with the session on every recovery or replacement.
  bool cache_handles_per_session = true;
  // Use a session-object copy of each key in each session (with caching on).
  // SoftHSM serialises operations on token objects through file locks;
  // copies run 1.5-5x faster and in parallel. Copies die with their session.
  bool copy_keys_to_session_objects = true;
  // How often the index of fleet-state data objects is rebuilt from a full
  // scan of the token (server/hsm/data_object_index.h). It bounds how long
  // a put that failed midway on another replica can leave this one reading
  // the older of two versions.
  absl::Duration data_index_refresh = absl::Seconds(30);
};

// A DEK unwrapped into a session object, valid only inside the callback of
// KeyStore::WithUnwrappedDek. The object is destroyed when the callback
// returns, on every path.
class UnwrappedDek {
 public:
  // Wraps this DEK under `kek` with `algorithm`, inside the HSM.
  virtual absl::StatusOr<WrappedKey> WrapUnder(const KeyRef& kek,
                                               std::string_view algorithm = "aes-kwp") const = 0;
  // The key check value computed inside the HSM; see ExpectedCheckValue.
  virtual absl::StatusOr<std::string> CheckValue() const = 0;
  // Wraps this DEK to a node, inside the HSM, exactly as
  // KeyStore::WrapDekToPeer does after its unwrap step (same arguments, same
  // errors). Used when a fresh model key goes to a packing station.
  virtual absl::StatusOr<std::string> WrapToPeer(const KeyRef& release_key,
                                                 std::string_view peer_public_spki,
                                                 std::string_view kdf,
                                                 std::string_view shared_info) const = 0;

 protected:
  virtual ~UnwrappedDek() = default;
};

// The key check value of a plaintext DEK, computed with OpenSSL: for an AES
// key, AES-ECB of one zero block (16 bytes); for a generic secret, SHA-256 of
// the key (32 bytes, what C_DigestKey gives inside the HSM). Used to check a
// DEK against a known answer without extracting it. InvalidArgument for
// other key types or AES lengths.
absl::StatusOr<std::string> ExpectedCheckValue(const SecretBytes& key, KeyType key_type);

class KeyStore {
 public:
  // Loads the module, selects the token, reads the PIN, opens the pool and
  // logs in. InvalidArgument on a bad URI or options; NotFound if no token
  // matches; FailedPrecondition if several tokens match or the PIN reference
  // is unusable; Internal on PKCS#11 errors (e.g. CKR_PIN_INCORRECT by name).
  static absl::StatusOr<std::unique_ptr<KeyStore>> Create(const KeyStoreOptions& options);
  ~KeyStore();
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  // Creates an AES-256 token KEK: CKA_SENSITIVE, not extractable,
  // CKA_WRAP/CKA_UNWRAP only (no encrypt, decrypt, sign, verify, derive).
  // AlreadyExists if a secret AES key with this label and id is on the token.
  absl::StatusOr<KeyRef> GenerateKek(std::string_view label, std::string_view id);

  // Generates a fresh DEK of `dek_bytes` (16, 24 or 32) inside the HSM as a
  // session object and returns it wrapped under `kek` with `algorithm`. The
  // session object is destroyed on every path.
  absl::StatusOr<WrappedKey> GenerateWrappedDek(const KeyRef& kek,
                                                std::string_view algorithm = "aes-kwp",
                                                size_t dek_bytes = 32);

  // Unwraps `wrapped` under `kek` into a session object and runs `fn` on it.
  // DataLoss if the blob fails its integrity check (no object is created).
  // If the HSM restarts while `fn` runs, the pool recovers and runs `fn` once
  // more on a fresh session; `fn` must therefore be safe to repeat.
  absl::Status WithUnwrappedDek(const KeyRef& kek, const WrappedKey& wrapped,
                                const std::function<absl::Status(const UnwrappedDek&)>& fn);

  // Rotation: unwraps under `old_kek` and wraps under `new_kek` inside the
  // HSM; the DEK never leaves it in plaintext.
  absl::StatusOr<WrappedKey> Rewrap(const KeyRef& old_kek, const WrappedKey& wrapped,
                                    const KeyRef& new_kek);

  // Unwraps and returns the DEK's check value (see ExpectedCheckValue).
  absl::StatusOr<std::string> DekCheckValue(const KeyRef& kek, const WrappedKey& wrapped);

  // Generates a token key pair. `key_algorithm` is "ec-p256", "ec-p384",
  // "rsa-3072" or "ed25519". The private key is sensitive, not extractable,
  // sign-only. Unimplemented if the module lacks the mechanism;
  // AlreadyExists if a private key with this label and id exists.
  absl::StatusOr<SigningKey> GenerateSigningKey(std::string_view key_algorithm,
                                                std::string_view label, std::string_view id);

  // Signs `message` (the whole message; hashing happens in the HSM) with
  // `signature_algorithm`: "ecdsa-p256-sha256", "ecdsa-p384-sha384",
  // "rsa-pss-sha256", "rsa-pkcs1-sha256" or "ed25519". FailedPrecondition if
  // the key type does not fit the algorithm.
  absl::StatusOr<std::string> Sign(const KeyRef& private_key, std::string_view signature_algorithm,
                                   std::string_view message,
                                   SignatureFormat format = SignatureFormat::kDer);

  // DER SubjectPublicKeyInfo of the public key matching `key` (a private or
  // public key reference; the public half is found by the same label and id).
  absl::StatusOr<std::string> ExportPublicKey(const KeyRef& key);

  // Finds exactly one key. NotFound if none; FailedPrecondition
  // "ambiguous key: N matches" if several; FailedPrecondition if its
  // attributes are unavailable (CK_UNAVAILABLE_INFORMATION).
  absl::StatusOr<KeyInfo> FindKey(const KeyRef& key);

  // Every token key of `key_class` whose type this project knows (AES,
  // generic secret, EC, RSA, EdDSA), sorted by label then id. Never reads key
  // material. ResourceExhausted beyond 10,000 keys.
  absl::StatusOr<std::vector<KeyInfo>> ListKeys(KeyClass key_class);

  // Destroys exactly one token key (same matching rules as FindKey).
  absl::Status DestroyKey(const KeyRef& key);

  // OK if the module can run `algorithm` (any name above, or
  // "rsa-oaep-sha256"); Unimplemented "capability: ..." otherwise. Probes the
  // module where the mechanism list alone is not enough (SoftHSM lists
  // RSA-OAEP but refuses SHA-256 parameters); never falls back.
  absl::Status CheckCapability(std::string_view algorithm);

  // Test-only: imports raw key bytes as a KEK (`key_type` kAes, the
  // attributes GenerateKek sets) or as a MAC key (kGenericSecret, the
  // attributes GenerateMacKey sets), so known-answer vectors can
  // run through the HSM path. With `token_object` false the key is a session
  // object (much faster on SoftHSM); it then lives only as long as the pooled
  // session that created it. Never used by the daemon.
  absl::StatusOr<KeyRef> ImportSecretKeyForTesting(std::string_view label, std::string_view id,
                                                   KeyType key_type, const SecretBytes& value,
                                                   bool token_object = true);

  // --- Release (scheme ecdh-p256-kwp, docs/release-wrap.md) --------------
  // Implemented in key_store_release.cc.

  // Creates the token's release key pair: EC P-256, the private half
  // PRIVATE, SENSITIVE, not EXTRACTABLE, CKA_DERIVE only (no sign, decrypt,
  // unwrap); the public half exportable with ExportPublicKey (DER SPKI).
  // Returns the private key's reference. AlreadyExists if an EC private key
  // with this label and id is on the token; Unimplemented if the module
  // cannot generate EC keys.
  absl::StatusOr<KeyRef> GenerateReleaseKey(std::string_view label, std::string_view id);

  // Creates a 32-byte CKK_GENERIC_SECRET token key for CKM_SHA256_HMAC:
  // PRIVATE, SENSITIVE, not EXTRACTABLE, SIGN and VERIFY only.
  // AlreadyExists if a generic secret with this label and id exists.
  absl::StatusOr<KeyRef> GenerateMacKey(std::string_view label, std::string_view id);

  // HMAC-SHA256 of `data` under `key`, computed in the HSM; 32 bytes.
  // FailedPrecondition if `key` is not a generic secret.
  absl::StatusOr<std::string> Mac(const KeyRef& key, std::string_view data);

  // C_Verify of an HMAC-SHA256. OK on a match; PermissionDenied "mac
  // mismatch" otherwise (also for a wrong length), never saying where.
  absl::Status VerifyMac(const KeyRef& key, std::string_view data, std::string_view mac);

  // The release operation, in one pooled session: unwraps `wrapped` under
  // `kek` as a session object; C_DeriveKey(CKM_ECDH1_DERIVE) with
  // `release_key` (an EC private key) and the P-256 point of
  // `peer_public_spki` into a session AES-256 key that can only wrap; kdf
  // "null" -> CKD_NULL (`shared_info` unused, as on the node),
  // "x963-sha256" -> CKD_SHA256_KDF over `shared_info`; C_WrapKey with the
  // "aes-kwp" mechanism (RFC 5649). Both session objects are destroyed on
  // every path. Returns the wrapped DEK, which the node opens with
  // hosn::agent::EphemeralKey::OpenWrappedDek. InvalidArgument for an SPKI
  // that is not exactly one DER P-256 public key, or an unknown kdf;
  // DataLoss if `wrapped` fails its integrity check; Unimplemented
  // ("capability: ...", naming CKM_ECDH1_DERIVE or CKD_SHA256_KDF) if the
  // module lacks the mechanism or refuses the KDF (SoftHSM 2.6 refuses
  // every KDF but CKD_NULL); FailedPrecondition if `release_key` is not an
  // EC private key.
  absl::StatusOr<std::string> WrapDekToPeer(const KeyRef& kek, const WrappedKey& wrapped,
                                            const KeyRef& release_key,
                                            std::string_view peer_public_spki, std::string_view kdf,
                                            std::string_view shared_info);

  // OK if `peer_public_spki` is a public key that WrapDekToPeer accepts:
  // exactly one DER SubjectPublicKeyInfo of a P-256 point on the curve.
  // InvalidArgument otherwise. Host-only, no HSM call: about 1.5 us for the
  // canonical encoding every node sends, against 170 us for OpenSSL 3's
  // general decoder, so callers can refuse a bad key before other work.
  static absl::Status CheckPeerPublicKey(std::string_view peer_public_spki);

  // --- Token data objects (data_objects.cc) ------------------------------
  // Fleet state shared by daemon replicas on one token: CKO_DATA token
  // objects, CKA_PRIVATE, CKA_APPLICATION "hosn-keyd", named by CKA_LABEL.
  // Every call searches the token afresh (no handle outlives its call), so
  // another replica's writes and deletes are seen at once. A put is
  // crash-safe: it creates the new version before destroying older ones,
  // and readers take the newest complete version (docs/hsm.md, "Data
  // objects"). Labels: 1-128 bytes; values: at most kMaxDataObjectBytes.
  static constexpr size_t kMaxDataObjectBytes = 64 * 1024;

  // Creates or replaces. InvalidArgument on a bad label or a value too long.
  absl::Status PutDataObject(std::string_view label, std::string_view value);
  // The value, or nullopt if no object has this label.
  absl::StatusOr<std::optional<std::string>> GetDataObject(std::string_view label);
  // Labels that start with `label_prefix` (each once), sorted.
  absl::StatusOr<std::vector<std::string>> ListDataObjects(std::string_view label_prefix);
  // Destroys every version; OK if absent.
  absl::Status DeleteDataObject(std::string_view label);

  PoolMetrics Metrics() const;

 private:
  struct Internals;
  explicit KeyStore(std::unique_ptr<Internals> internals);

  // Constant after construction; thread-safe itself.
  std::unique_ptr<Internals> internals_;
};

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_KEY_STORE_H_
