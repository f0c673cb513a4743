#include "server/hsm/key_store.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/base/sync.h"
#include "server/hsm/attributes.h"
#include "server/hsm/ckr.h"
#include "server/hsm/key_store_internal.h"
#include "server/hsm/mechanisms.h"
#include "server/hsm/module.h"
#include "server/hsm/openssl_util.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/session_pool.h"
#include "server/hsm/uri.h"

namespace hosn::hsm {
namespace {

// Upper bound for public attributes we read (an RSA-16384 modulus fits).
constexpr size_t kMaxAttributeBytes = 4096;
// Message bytes per C_SignUpdate.
constexpr size_t kSignChunk = 64 * 1024;
// Text KeyStore hashes for generic-secret check values (see ExpectedCheckValue).

void KekAttributes(Template& t, std::string_view label, std::string_view id,
                   bool token_object = true) {
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY);
  t.Ulong(CKA_KEY_TYPE, CKK_AES);
  t.Bool(CKA_TOKEN, token_object);
  t.Bool(CKA_PRIVATE, true);
  t.Bool(CKA_SENSITIVE, true);
  t.Bool(CKA_EXTRACTABLE, false);
  t.Bool(CKA_WRAP, true);
  t.Bool(CKA_UNWRAP, true);
  t.Bool(CKA_ENCRYPT, false);
  t.Bool(CKA_DECRYPT, false);
  t.Bool(CKA_SIGN, false);
  t.Bool(CKA_VERIFY, false);
  t.Bool(CKA_DERIVE, false);
  t.Bytes(CKA_LABEL, label);
  t.Bytes(CKA_ID, id);
}

// A DEK as a session object: sensitive, wrappable (for rewrap), usable only
// for the check value (AES-ECB of a zero block); never a token object.
void DekAttributes(Template& t, KeyType dek_type) {
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY);
  t.Ulong(CKA_KEY_TYPE, ToCkKeyType(dek_type));
  t.Bool(CKA_TOKEN, false);
  t.Bool(CKA_PRIVATE, true);
  t.Bool(CKA_SENSITIVE, true);
  t.Bool(CKA_EXTRACTABLE, true);
  t.Bool(CKA_WRAP, false);
  t.Bool(CKA_UNWRAP, false);
  t.Bool(CKA_DECRYPT, false);
  t.Bool(CKA_DERIVE, false);
  if (dek_type == KeyType::kAes) t.Bool(CKA_ENCRYPT, true);
}

absl::Status CheckDekType(KeyType type) {
  if (type != KeyType::kAes && type != KeyType::kGenericSecret) {
    return absl::InvalidArgumentError("dek type must be aes or generic-secret");
  }
  return absl::OkStatus();
}

}  // namespace

// Wraps `key` under `kek_handle`; the output is at most 16 bytes longer than
// the key for RFC 5649/3394, so one call usually suffices.
absl::StatusOr<std::string> WrapWith(Session& session, CK_MECHANISM_TYPE mechanism_type,
                                     CK_OBJECT_HANDLE kek, CK_OBJECT_HANDLE key) {
  CK_MECHANISM mechanism = {mechanism_type, nullptr, 0};
  std::string out(512, '\0');
  CK_ULONG length = out.size();
  CK_RV rv = session.fn()->C_WrapKey(session.handle(), &mechanism, kek, key,
                                     reinterpret_cast<CK_BYTE*>(out.data()), &length);
  if (rv == CKR_BUFFER_TOO_SMALL && length <= 64 * 1024) {
    out.resize(length);
    rv = session.fn()->C_WrapKey(session.handle(), &mechanism, kek, key,
                                 reinterpret_cast<CK_BYTE*>(out.data()), &length);
  }
  HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_WrapKey"));
  if (length > out.size()) return absl::InternalError("C_WrapKey: bad length");
  out.resize(length);
  return out;
}

absl::StatusOr<CK_OBJECT_HANDLE> UnwrapWith(Session& session, CK_MECHANISM_TYPE mechanism_type,
                                            CK_OBJECT_HANDLE kek, const WrappedKey& wrapped) {
  HOSN_RETURN_IF_ERROR(CheckDekType(wrapped.dek_type));
  CK_MECHANISM mechanism = {mechanism_type, nullptr, 0};
  Template t;
  DekAttributes(t, wrapped.dek_type);
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  const CK_RV rv = session.fn()->C_UnwrapKey(
      session.handle(), &mechanism, kek,
      reinterpret_cast<CK_BYTE*>(const_cast<char*>(wrapped.wrapped.data())), wrapped.wrapped.size(),
      t.data(), t.size(), &handle);
  if (rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_WRAPPED_KEY_LEN_RANGE ||
      rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
      rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED) {
    // The integrity check failed and no object exists. SoftHSM reports a
    // failed RFC 5649 check as CKR_GENERAL_ERROR; with a KEK handle we just
    // resolved and a mechanism the token lists, that is the only cause left.
    absl::Status status(absl::StatusCode::kDataLoss,
                        absl::StrCat("wrapped key failed its integrity check (", CkrName(rv), ")"));
    return status;
  }
  HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_UnwrapKey"));
  return handle;
}

namespace {

absl::StatusOr<std::string> CheckValueOf(Session& session, const MechanismTable& mechanisms,
                                         CK_OBJECT_HANDLE key, KeyType key_type) {
  if (key_type == KeyType::kGenericSecret) {
    // SHA-256 over the key, inside the HSM.
    CK_MECHANISM mechanism = {CKM_SHA256, nullptr, 0};
    HOSN_RETURN_IF_ERROR(
        CkrStatus(session.fn()->C_DigestInit(session.handle(), &mechanism), "C_DigestInit"));
    const CK_RV rv = session.fn()->C_DigestKey(session.handle(), key);
    unsigned char digest[32];
    CK_ULONG length = sizeof(digest);
    const CK_RV final_rv = session.fn()->C_DigestFinal(session.handle(), digest, &length);
    HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_DigestKey"));
    HOSN_RETURN_IF_ERROR(CkrStatus(final_rv, "C_DigestFinal"));
    return std::string(reinterpret_cast<char*>(digest), std::min<CK_ULONG>(length, 32));
  }
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE ecb, mechanisms.Get("aes-ecb"));
  CK_MECHANISM mechanism = {ecb, nullptr, 0};
  HOSN_RETURN_IF_ERROR(
      CkrStatus(session.fn()->C_EncryptInit(session.handle(), &mechanism, key), "C_EncryptInit"));
  unsigned char zero[16] = {};
  unsigned char out[16];
  CK_ULONG length = sizeof(out);
  HOSN_RETURN_IF_ERROR(CkrStatus(
      session.fn()->C_Encrypt(session.handle(), zero, sizeof(zero), out, &length), "C_Encrypt"));
  if (length != 16) return absl::InternalError("C_Encrypt: bad length");
  return std::string(reinterpret_cast<char*>(out), 16);
}

class UnwrappedDekImpl : public UnwrappedDek {
 public:
  UnwrappedDekImpl(Session& session, const MechanismTable& mechanisms, CK_OBJECT_HANDLE handle,
                   KeyType dek_type)
      : session_(session), mechanisms_(mechanisms), handle_(handle), dek_type_(dek_type) {}

  absl::StatusOr<WrappedKey> WrapUnder(const KeyRef& kek,
                                       std::string_view algorithm) const override {
    HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE mechanism, mechanisms_.Get(algorithm));
    HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE kek_handle, session_.Resolve(kek));
    HOSN_ASSIGN_OR_RETURN(std::string bytes, WrapWith(session_, mechanism, kek_handle, handle_));
    return WrappedKey{std::string(algorithm), dek_type_, std::move(bytes)};
  }

  absl::StatusOr<std::string> CheckValue() const override {
    return CheckValueOf(session_, mechanisms_, handle_, dek_type_);
  }

  absl::StatusOr<std::string> WrapToPeer(const KeyRef& release_key,
                                         std::string_view peer_public_spki, std::string_view kdf,
                                         std::string_view shared_info) const override {
    HOSN_ASSIGN_OR_RETURN(ReleasePeer peer, ParseReleasePeer(peer_public_spki, kdf, shared_info));
    return WrapToPeerIn(session_, mechanisms_, handle_, release_key, peer);
  }

 private:
  Session& session_;
  const MechanismTable& mechanisms_;
  const CK_OBJECT_HANDLE handle_;
  const KeyType dek_type_;
};

struct SignatureSpec {
  KeyType key_type;
  bool multipart;
  bool ecdsa;
};

absl::StatusOr<SignatureSpec> SpecFor(std::string_view algorithm) {
  if (algorithm == "ecdsa-p256-sha256" || algorithm == "ecdsa-p384-sha384") {
    return SignatureSpec{KeyType::kEc, true, true};
  }
  if (algorithm == "rsa-pss-sha256" || algorithm == "rsa-pkcs1-sha256") {
    return SignatureSpec{KeyType::kRsa, true, false};
  }
  // SoftHSM (and PKCS#11 3.0 generally) signs EdDSA in one part.
  if (algorithm == "ed25519") return SignatureSpec{KeyType::kEcEdwards, false, false};
  return absl::InvalidArgumentError(
      absl::StrCat("unknown signature algorithm ", ToAbsl(algorithm)));
}

struct KeyGenSpec {
  KeyType key_type;
  std::string_view ec_params;  // empty for RSA
  CK_ULONG rsa_bits;
};

absl::StatusOr<KeyGenSpec> KeyGenFor(std::string_view key_algorithm) {
  if (key_algorithm == "ec-p256") return KeyGenSpec{KeyType::kEc, kOidP256, 0};
  if (key_algorithm == "ec-p384") return KeyGenSpec{KeyType::kEc, kOidP384, 0};
  if (key_algorithm == "rsa-3072") return KeyGenSpec{KeyType::kRsa, {}, 3072};
  if (key_algorithm == "ed25519") return KeyGenSpec{KeyType::kEcEdwards, kOidEd25519, 0};
  return absl::InvalidArgumentError(absl::StrCat("unknown key algorithm ", ToAbsl(key_algorithm)));
}

// Signs in one part, or in several with C_SignUpdate. After a failure in the
// middle, the operation is finished with C_SignFinal so the session is clean
// (case P7); the pool also closes the session because the status has a CKR.
absl::StatusOr<std::string> SignWith(Session& session, CK_MECHANISM* mechanism,
                                     CK_OBJECT_HANDLE key, std::string_view message,
                                     bool multipart) {
  CK_FUNCTION_LIST* f = session.fn();
  HOSN_RETURN_IF_ERROR(CkrStatus(f->C_SignInit(session.handle(), mechanism, key), "C_SignInit"));
  std::string signature(1024, '\0');
  CK_ULONG length = signature.size();
  auto* out = reinterpret_cast<CK_BYTE*>(signature.data());
  auto* in = reinterpret_cast<CK_BYTE*>(const_cast<char*>(message.data()));
  if (!multipart) {
    HOSN_RETURN_IF_ERROR(
        CkrStatus(f->C_Sign(session.handle(), in, message.size(), out, &length), "C_Sign"));
  } else {
    for (size_t offset = 0; offset < message.size() || offset == 0; offset += kSignChunk) {
      const size_t chunk = std::min(kSignChunk, message.size() - offset);
      const CK_RV rv = f->C_SignUpdate(session.handle(), in + offset, chunk);
      if (rv != CKR_OK) {
        CK_ULONG ignored = signature.size();
        f->C_SignFinal(session.handle(), out, &ignored);
        session.Poison();
        return CkrStatus(rv, "C_SignUpdate");
      }
      if (message.empty()) break;
    }
    HOSN_RETURN_IF_ERROR(CkrStatus(f->C_SignFinal(session.handle(), out, &length), "C_SignFinal"));
  }
  if (length > signature.size()) return absl::InternalError("signature: bad length");
  signature.resize(length);
  return signature;
}

absl::StatusOr<std::string> PublicKeyDer(Session& session, CK_OBJECT_HANDLE key, KeyType key_type) {
  switch (key_type) {
    case KeyType::kEc: {
      HOSN_ASSIGN_OR_RETURN(std::string params,
                            GetBytesAttribute(session, key, CKA_EC_PARAMS, kMaxAttributeBytes));
      HOSN_ASSIGN_OR_RETURN(std::string point,
                            GetBytesAttribute(session, key, CKA_EC_POINT, kMaxAttributeBytes));
      return EcSpki(params, point);
    }
    case KeyType::kEcEdwards: {
      HOSN_ASSIGN_OR_RETURN(std::string point,
                            GetBytesAttribute(session, key, CKA_EC_POINT, kMaxAttributeBytes));
      return Ed25519Spki(point);
    }
    case KeyType::kRsa: {
      HOSN_ASSIGN_OR_RETURN(std::string modulus,
                            GetBytesAttribute(session, key, CKA_MODULUS, kMaxAttributeBytes));
      HOSN_ASSIGN_OR_RETURN(
          std::string exponent,
          GetBytesAttribute(session, key, CKA_PUBLIC_EXPONENT, kMaxAttributeBytes));
      return RsaSpki(modulus, exponent);
    }
    default:
      return absl::FailedPreconditionError("not an asymmetric key");
  }
}

}  // namespace

std::string_view KeyClassName(KeyClass key_class) {
  switch (key_class) {
    case KeyClass::kSecretKey:
      return "secret-key";
    case KeyClass::kPrivateKey:
      return "private";
    case KeyClass::kPublicKey:
      return "public";
  }
  return "unknown";
}

std::string_view KeyTypeName(KeyType key_type) {
  switch (key_type) {
    case KeyType::kAes:
      return "aes";
    case KeyType::kGenericSecret:
      return "generic-secret";
    case KeyType::kEc:
      return "ec";
    case KeyType::kRsa:
      return "rsa";
    case KeyType::kEcEdwards:
      return "ec-edwards";
  }
  return "unknown";
}

KeyStore::KeyStore(std::unique_ptr<Internals> internals) : internals_(std::move(internals)) {}
KeyStore::~KeyStore() = default;

absl::StatusOr<std::unique_ptr<KeyStore>> KeyStore::Create(const KeyStoreOptions& options) {
  // 1. Where: the token URI and the module.
  HOSN_ASSIGN_OR_RETURN(Pkcs11Uri uri, ParsePkcs11Uri(options.uri));
  if (!uri.SelectsToken()) {
    return absl::InvalidArgumentError("pkcs11 uri must name a token label or serial");
  }
  const std::string module_path =
      !options.module_path.empty() ? options.module_path : uri.module_path.value_or("");
  if (module_path.empty()) {
    return absl::InvalidArgumentError("no pkcs11 module path (option or uri module-path)");
  }
  auto internals = std::make_unique<Internals>();
  internals->data_index = std::make_unique<DataObjectIndex>(options.data_index_refresh);
  HOSN_ASSIGN_OR_RETURN(internals->mechanisms, MechanismTable::Create(options.mechanism_overrides));

  // 2. The PIN, from a file or a systemd credential only.
  const std::string pin_reference =
      !options.pin_reference.empty() ? options.pin_reference : uri.pin_source.value_or("");
  if (pin_reference.empty()) {
    return absl::InvalidArgumentError("no pin reference (option or uri pin-source)");
  }
  HOSN_ASSIGN_OR_RETURN(SecretBytes pin, ReadSecretReference(pin_reference));

  // 3. Load, select, log in.
  HOSN_ASSIGN_OR_RETURN(std::unique_ptr<Module> module, Module::Load(module_path));
  SessionPool::Options pool_options;
  pool_options.size = options.pool_size;
  pool_options.acquire_timeout = options.acquire_timeout;
  pool_options.reinitialize_module_on_device_error = options.reinitialize_module_on_device_error;
  pool_options.cache_handles_per_session = options.cache_handles_per_session;
  pool_options.copy_keys_to_session_objects = options.copy_keys_to_session_objects;
  HOSN_ASSIGN_OR_RETURN(internals->pool,
                        SessionPool::Create(std::move(module), uri, std::move(pin), pool_options));
  HOSN_ASSIGN_OR_RETURN(internals->supported,
                        internals->pool->module().Mechanisms(internals->pool->slot()));
  return std::unique_ptr<KeyStore>(new KeyStore(std::move(internals)));
}

absl::Status CreateUniqueSecretKey(SessionPool& pool, Mutex& create_mu, CK_MECHANISM_TYPE keygen,
                                   const KeyRef& ref, std::string_view what, Template& t) {
  MutexLock create_lock(&create_mu);
  HOSN_RETURN_IF_ERROR(pool.Run(OpKind::kGenerate, [&](Session& session) {
    HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> existing, session.FindAll(ref));
    if (!existing.empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat(ToAbsl(what), " already exists: '", ref.label, "'"));
    }
    CK_MECHANISM mechanism = {keygen, nullptr, 0};
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    return CkrStatus(
        session.fn()->C_GenerateKey(session.handle(), &mechanism, t.data(), t.size(), &handle),
        "C_GenerateKey");
  }));
  pool.KeysChanged();
  return absl::OkStatus();
}

absl::StatusOr<KeyRef> KeyStore::GenerateKek(std::string_view label, std::string_view id) {
  KeyRef ref = KeyRef::Kek(std::string(label), std::string(id));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE keygen, internals_->mechanisms.Get("keygen:aes"));
  Template t;
  KekAttributes(t, label, id);
  t.Ulong(CKA_VALUE_LEN, 32);
  HOSN_RETURN_IF_ERROR(
      CreateUniqueSecretKey(*internals_->pool, internals_->create_mu, keygen, ref, "kek", t));
  return ref;
}

absl::StatusOr<KeyRef> KeyStore::ImportSecretKeyForTesting(std::string_view label,
                                                           std::string_view id, KeyType key_type,
                                                           const SecretBytes& value,
                                                           bool token_object) {
  if (key_type != KeyType::kAes && key_type != KeyType::kGenericSecret) {
    return absl::InvalidArgumentError("test import is aes or generic-secret only");
  }
  KeyRef ref = KeyRef::Kek(std::string(label), std::string(id));
  ref.key_type = key_type;
  HOSN_RETURN_IF_ERROR(internals_->pool->Run(OpKind::kOther, [&](Session& session) {
    Template t;
    if (key_type == KeyType::kAes) {
      KekAttributes(t, label, id, token_object);
    } else {
      MacKeyAttributes(t, label, id, token_object);
    }
    std::span<const uint8_t> bytes = RevealSecret(value);
    t.Bytes(CKA_VALUE, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    return CkrStatus(session.fn()->C_CreateObject(session.handle(), t.data(), t.size(), &handle),
                     "C_CreateObject");
  }));
  internals_->pool->KeysChanged();
  return ref;
}

absl::StatusOr<WrappedKey> KeyStore::GenerateWrappedDek(const KeyRef& kek,
                                                        std::string_view algorithm,
                                                        size_t dek_bytes) {
  if (dek_bytes != 16 && dek_bytes != 24 && dek_bytes != 32) {
    return absl::InvalidArgumentError("dek must be 16, 24 or 32 bytes");
  }
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE wrap, internals_->mechanisms.Get(algorithm));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE keygen, internals_->mechanisms.Get("keygen:aes"));
  return internals_->pool->RunFor<WrappedKey>(
      OpKind::kGenerate, [&](Session& session) -> absl::StatusOr<WrappedKey> {
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE kek_handle, session.Resolve(kek));
        Template t;
        DekAttributes(t, KeyType::kAes);
        t.Ulong(CKA_VALUE_LEN, dek_bytes);
        CK_MECHANISM mechanism = {keygen, nullptr, 0};
        CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
        HOSN_RETURN_IF_ERROR(CkrStatus(
            session.fn()->C_GenerateKey(session.handle(), &mechanism, t.data(), t.size(), &handle),
            "C_GenerateKey"));
        ScopedObject dek(session, handle);
        HOSN_ASSIGN_OR_RETURN(std::string bytes, WrapWith(session, wrap, kek_handle, dek.get()));
        return WrappedKey{std::string(algorithm), KeyType::kAes, std::move(bytes)};
      });
}

absl::Status KeyStore::WithUnwrappedDek(
    const KeyRef& kek, const WrappedKey& wrapped,
    const std::function<absl::Status(const UnwrappedDek&)>& fn) {
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE mechanism, internals_->mechanisms.Get(wrapped.algorithm));
  return internals_->pool->Run(OpKind::kUnwrap, [&](Session& session) -> absl::Status {
    HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE kek_handle, session.Resolve(kek));
    HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle,
                          UnwrapWith(session, mechanism, kek_handle, wrapped));
    ScopedObject dek(session, handle);
    UnwrappedDekImpl view(session, internals_->mechanisms, dek.get(), wrapped.dek_type);
    return fn(view);
  });
}

absl::StatusOr<WrappedKey> KeyStore::Rewrap(const KeyRef& old_kek, const WrappedKey& wrapped,
                                            const KeyRef& new_kek) {
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE mechanism, internals_->mechanisms.Get(wrapped.algorithm));
  return internals_->pool->RunFor<WrappedKey>(
      OpKind::kRewrap, [&](Session& session) -> absl::StatusOr<WrappedKey> {
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE old_handle, session.Resolve(old_kek));
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE new_handle, session.Resolve(new_kek));
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle,
                              UnwrapWith(session, mechanism, old_handle, wrapped));
        ScopedObject dek(session, handle);
        HOSN_ASSIGN_OR_RETURN(std::string bytes,
                              WrapWith(session, mechanism, new_handle, dek.get()));
        return WrappedKey{wrapped.algorithm, wrapped.dek_type, std::move(bytes)};
      });
}

absl::StatusOr<std::string> KeyStore::DekCheckValue(const KeyRef& kek, const WrappedKey& wrapped) {
  std::string value;
  HOSN_RETURN_IF_ERROR(WithUnwrappedDek(kek, wrapped, [&](const UnwrappedDek& dek) {
    HOSN_ASSIGN_OR_RETURN(value, dek.CheckValue());
    return absl::OkStatus();
  }));
  return value;
}

absl::StatusOr<CK_OBJECT_HANDLE> GenerateTokenKeyPair(Session& session, CK_MECHANISM_TYPE keygen,
                                                      KeyType key_type, std::string_view label,
                                                      std::string_view id, KeyPairUse use,
                                                      Template& pub) {
  const bool sign = use == KeyPairUse::kSign;
  pub.Ulong(CKA_CLASS, CKO_PUBLIC_KEY);
  pub.Ulong(CKA_KEY_TYPE, ToCkKeyType(key_type));
  pub.Bool(CKA_TOKEN, true);
  pub.Bool(CKA_VERIFY, sign);
  pub.Bool(CKA_ENCRYPT, false);
  pub.Bool(CKA_WRAP, false);
  pub.Bool(CKA_DERIVE, false);
  pub.Bytes(CKA_LABEL, label);
  pub.Bytes(CKA_ID, id);
  Template priv;
  priv.Ulong(CKA_CLASS, CKO_PRIVATE_KEY);
  priv.Ulong(CKA_KEY_TYPE, ToCkKeyType(key_type));
  priv.Bool(CKA_TOKEN, true);
  priv.Bool(CKA_PRIVATE, true);
  priv.Bool(CKA_SENSITIVE, true);
  priv.Bool(CKA_EXTRACTABLE, false);
  priv.Bool(CKA_SIGN, sign);
  priv.Bool(CKA_DERIVE, !sign);
  priv.Bool(CKA_DECRYPT, false);
  priv.Bool(CKA_UNWRAP, false);
  priv.Bytes(CKA_LABEL, label);
  priv.Bytes(CKA_ID, id);
  CK_MECHANISM mechanism = {keygen, nullptr, 0};
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv_handle = CK_INVALID_HANDLE;
  HOSN_RETURN_IF_ERROR(CkrStatus(
      session.fn()->C_GenerateKeyPair(session.handle(), &mechanism, pub.data(), pub.size(),
                                      priv.data(), priv.size(), &pub_handle, &priv_handle),
      "C_GenerateKeyPair"));
  return pub_handle;
}

absl::StatusOr<SigningKey> KeyStore::GenerateSigningKey(std::string_view key_algorithm,
                                                        std::string_view label,
                                                        std::string_view id) {
  HOSN_ASSIGN_OR_RETURN(KeyGenSpec spec, KeyGenFor(key_algorithm));
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE keygen,
                        internals_->mechanisms.Get(absl::StrCat("keygen:", ToAbsl(key_algorithm))));
  if (!internals_->Supports(keygen)) {
    return absl::UnimplementedError(
        absl::StrCat("capability: module cannot generate ", ToAbsl(key_algorithm), " keys"));
  }
  SigningKey key;
  key.private_key = {KeyClass::kPrivateKey, spec.key_type, std::string(label), std::string(id)};
  key.public_key = {KeyClass::kPublicKey, spec.key_type, std::string(label), std::string(id)};
  MutexLock create_lock(&internals_->create_mu);
  HOSN_ASSIGN_OR_RETURN(
      key.public_key_der,
      internals_->pool->RunFor<std::string>(
          OpKind::kGenerate, [&](Session& session) -> absl::StatusOr<std::string> {
            HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> existing,
                                  session.FindAll(key.private_key));
            if (!existing.empty()) {
              return absl::AlreadyExistsError(
                  absl::StrCat("signing key already exists: '", key.private_key.label, "'"));
            }
            Template pub;
            static constexpr char kExponent[] = {0x01, 0x00, 0x01};
            if (spec.key_type == KeyType::kRsa) {
              pub.Ulong(CKA_MODULUS_BITS, spec.rsa_bits);
              pub.Bytes(CKA_PUBLIC_EXPONENT, std::string_view(kExponent, sizeof(kExponent)));
            } else {
              pub.Bytes(CKA_EC_PARAMS, spec.ec_params);
            }
            HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub_handle,
                                  GenerateTokenKeyPair(session, keygen, spec.key_type, label, id,
                                                       KeyPairUse::kSign, pub));
            return PublicKeyDer(session, pub_handle, spec.key_type);
          }));
  internals_->pool->KeysChanged();
  return key;
}

absl::StatusOr<std::string> KeyStore::Sign(const KeyRef& private_key,
                                           std::string_view signature_algorithm,
                                           std::string_view message, SignatureFormat format) {
  HOSN_ASSIGN_OR_RETURN(SignatureSpec spec, SpecFor(signature_algorithm));
  if (private_key.key_class != KeyClass::kPrivateKey || private_key.key_type != spec.key_type) {
    return absl::FailedPreconditionError(
        absl::StrCat("key '", private_key.label, "' does not fit ", ToAbsl(signature_algorithm)));
  }
  HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE mechanism_type,
                        internals_->mechanisms.Get(signature_algorithm));

  // Modules without hash-and-sign ECDSA (SoftHSM 2.6) get the digest from
  // OpenSSL and sign it with plain ECDSA: the same signature scheme, and the
  // message is not secret.
  std::string_view data = message;
  std::string digest;
  bool multipart = spec.multipart;
  if (spec.ecdsa && !internals_->Supports(mechanism_type)) {
    HOSN_ASSIGN_OR_RETURN(CK_MECHANISM_TYPE prehashed,
                          internals_->mechanisms.Get("ecdsa-prehashed"));
    if (!internals_->Supports(prehashed)) {
      return absl::UnimplementedError(
          absl::StrCat("capability: module cannot sign ", ToAbsl(signature_algorithm)));
    }
    HOSN_ASSIGN_OR_RETURN(
        digest, ShaDigest(signature_algorithm == "ecdsa-p384-sha384" ? 384 : 256, message));
    data = digest;
    mechanism_type = prehashed;
    multipart = false;
  }

  CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_MECHANISM mechanism = {mechanism_type, nullptr, 0};
  if (signature_algorithm == "rsa-pss-sha256") {
    mechanism.pParameter = &pss;
    mechanism.ulParameterLen = sizeof(pss);
  }
  HOSN_ASSIGN_OR_RETURN(std::string raw,
                        internals_->pool->RunFor<std::string>(
                            OpKind::kSign, [&](Session& session) -> absl::StatusOr<std::string> {
                              HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                                                    session.Resolve(private_key));
                              return SignWith(session, &mechanism, key, data, multipart);
                            }));
  // A raw ECDSA signature is r||s, each half the curve's size: a P-384 key
  // named for "ecdsa-p256-sha256" (or the reverse) shows here, and its
  // signature is discarded.
  if (spec.ecdsa) {
    const size_t expected = signature_algorithm == "ecdsa-p384-sha384" ? 96 : 64;
    if (raw.size() != expected) {
      return absl::FailedPreconditionError(absl::StrCat(
          "key '", private_key.label, "' is on another curve than ", ToAbsl(signature_algorithm)));
    }
  }
  if (spec.ecdsa && format == SignatureFormat::kDer) return EcdsaRawToDer(raw);
  return raw;
}

absl::StatusOr<std::string> KeyStore::ExportPublicKey(const KeyRef& key) {
  KeyRef public_ref = key;
  public_ref.key_class = KeyClass::kPublicKey;
  return internals_->pool->RunFor<std::string>(
      OpKind::kExportPublic, [&](Session& session) -> absl::StatusOr<std::string> {
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle, session.Resolve(public_ref, false));
        return PublicKeyDer(session, handle, public_ref.key_type);
      });
}

absl::StatusOr<KeyInfo> KeyStore::FindKey(const KeyRef& key) {
  return internals_->pool->RunFor<KeyInfo>(
      OpKind::kFind, [&](Session& session) -> absl::StatusOr<KeyInfo> {
        HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle, session.Resolve(key, false));
        KeyInfo info;
        // The template pinned class and type; read them back anyway, so a
        // module that answers with unavailable attributes is refused (P6).
        HOSN_ASSIGN_OR_RETURN(CK_ULONG key_class, GetUlongAttribute(session, handle, CKA_CLASS));
        HOSN_ASSIGN_OR_RETURN(CK_ULONG key_type, GetUlongAttribute(session, handle, CKA_KEY_TYPE));
        if (key_class != ToCkClass(key.key_class) || key_type != ToCkKeyType(key.key_type)) {
          return absl::FailedPreconditionError(
              absl::StrCat("key unusable: '", key.label, "' has another class or type"));
        }
        info.key_class = key.key_class;
        info.key_type = key.key_type;
        HOSN_ASSIGN_OR_RETURN(info.label,
                              GetBytesAttribute(session, handle, CKA_LABEL, kMaxAttributeBytes));
        HOSN_ASSIGN_OR_RETURN(info.id,
                              GetBytesAttribute(session, handle, CKA_ID, kMaxAttributeBytes));
        HOSN_ASSIGN_OR_RETURN(info.token, GetBoolAttribute(session, handle, CKA_TOKEN));
        if (key.key_class != KeyClass::kPublicKey) {
          HOSN_ASSIGN_OR_RETURN(info.sensitive, GetBoolAttribute(session, handle, CKA_SENSITIVE));
          HOSN_ASSIGN_OR_RETURN(info.extractable,
                                GetBoolAttribute(session, handle, CKA_EXTRACTABLE));
        }
        return info;
      });
}

absl::Status KeyStore::DestroyKey(const KeyRef& key) {
  return internals_->pool->Run(OpKind::kOther, [&](Session& session) -> absl::Status {
    HOSN_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle, session.Resolve(key, false));
    internals_->pool->KeysChanged();
    return CkrStatus(session.fn()->C_DestroyObject(session.handle(), handle), "C_DestroyObject");
  });
}

absl::Status KeyStore::CheckCapability(std::string_view algorithm) {
  {
    MutexLock lock(&internals_->capability_mu);
    auto it = internals_->capabilities.find(ToAbsl(algorithm));
    if (it != internals_->capabilities.end()) return it->second;
  }

  // 1. The mechanism must be listed at all.
  absl::Status result;
  const std::string name(algorithm);
  absl::StatusOr<CK_MECHANISM_TYPE> mechanism = internals_->mechanisms.Get(algorithm);
  if (!mechanism.ok()) return mechanism.status();
  const bool listed =
      internals_->Supports(*mechanism) ||
      (absl::StartsWith(ToAbsl(algorithm), "ecdsa-") &&
       internals_->Supports(internals_->mechanisms.Get("ecdsa-prehashed").value_or(0)));
  if (!listed) {
    result = absl::UnimplementedError(
        absl::StrCat("capability: module does not list a mechanism for ", name));
  } else if (algorithm == "rsa-oaep-sha256") {
    // 2. SoftHSM lists RSA-OAEP but accepts only SHA-1 parameters (case P5).
    //    Probe with SHA-256 on a throw-away session key pair; never fall back.
    result = internals_->pool->Run(OpKind::kOther, [&](Session& session) -> absl::Status {
      Template pub;
      pub.Bool(CKA_TOKEN, false);
      pub.Bool(CKA_ENCRYPT, true);
      pub.Ulong(CKA_MODULUS_BITS, 2048);
      Template priv;
      priv.Bool(CKA_TOKEN, false);
      priv.Bool(CKA_DECRYPT, true);
      priv.Bool(CKA_SENSITIVE, true);
      CK_MECHANISM keygen = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
      CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE;
      CK_OBJECT_HANDLE priv_handle = CK_INVALID_HANDLE;
      HOSN_RETURN_IF_ERROR(CkrStatus(
          session.fn()->C_GenerateKeyPair(session.handle(), &keygen, pub.data(), pub.size(),
                                          priv.data(), priv.size(), &pub_handle, &priv_handle),
          "C_GenerateKeyPair"));
      ScopedObject pub_object(session, pub_handle);
      ScopedObject priv_object(session, priv_handle);
      CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0};
      CK_MECHANISM encrypt = {*mechanism, &oaep, sizeof(oaep)};
      const CK_RV rv = session.fn()->C_EncryptInit(session.handle(), &encrypt, pub_handle);
      if (rv == CKR_ARGUMENTS_BAD || rv == CKR_MECHANISM_PARAM_INVALID ||
          rv == CKR_MECHANISM_INVALID) {
        return absl::UnimplementedError(absl::StrCat("capability: module refuses rsa-oaep-sha256 (",
                                                     CkrName(rv), "); no fallback to sha-1"));
      }
      HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_EncryptInit"));
      unsigned char data[32] = {};
      unsigned char out[512];
      CK_ULONG length = sizeof(out);
      return CkrStatus(session.fn()->C_Encrypt(session.handle(), data, sizeof(data), out, &length),
                       "C_Encrypt");
    });
  }
  if (absl::IsUnavailable(result) || absl::IsDeadlineExceeded(result)) return result;
  MutexLock lock(&internals_->capability_mu);
  internals_->capabilities[name] = result;
  return result;
}

PoolMetrics KeyStore::Metrics() const { return internals_->pool->Metrics(); }

}  // namespace hosn::hsm
