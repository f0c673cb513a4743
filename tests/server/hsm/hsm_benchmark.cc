// Unwraps and signs per second through the KeyStore pool at 1, 2 and 8
// client threads, next to the same PKCS#11 calls on raw sessions opened by
// hand, in one run on one SoftHSM token; and the release operation
// (unwrap + ECDH derive + KWP wrap), GetDataObject and HMAC, each next to its
// raw-session ceiling and OpenSSL doing the same in software. See
// docs/benchmarks/hsm.md.
//
// Raw variants (each thread owns one session, no pool, no lookups):
//   RawTokenKey    operates on the token object itself
//   RawSessionCopy operates on a session-object copy of it (the fast path
//                  SoftHSM offers: no file lock per call)
// Unwrap = C_UnwrapKey (RFC 5649, 32-byte DEK) + C_DestroyObject.
// Sign   = SHA-256 in OpenSSL + C_SignInit/C_Sign with CKM_ECDSA on P-256
//          (SoftHSM 2.6 has no CKM_ECDSA_SHA256), raw r||s output.
// Release = Unwrap + C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL) + C_WrapKey
//          (KWP) + C_DestroyObject of both; pool variant KeyStore::WrapDekToPeer.
// Mac    = C_SignInit/C_Sign with CKM_SHA256_HMAC over 32 bytes.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "client/agent/release/dek_opener.h"
#include "server/hsm/key_store.h"
#include "server/hsm/module.h"
#include "server/hsm/openssl_util.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/uri.h"
#include "tests/server/hsm/hsm_test_util.h"
#include "tests/testing/softhsm_token.h"

namespace hosn::hsm {
namespace {

using ::hosn::hsm::testing::kP4Kek;
using ::hosn::hsm::testing::kP4Rfc5649;
using ::hosn::hsm::testing::OptionsFor;
using ::hosn::hsm::testing::Unhex;
using ::hosn::hsm::testing::UnhexSecret;
using ::hosn::testing::SoftHsmToken;

constexpr char kMessage[] = "model manifest sha256:0123456789abcdef";

void Die(const char* what) {
  std::fprintf(stderr, "hsm_benchmark: %s\n", what);
  std::abort();
}

// One token, one KeyStore (pool of 8) and one raw module handle for the
// whole run.
struct Fixture {
  std::unique_ptr<SoftHsmToken> token;
  std::unique_ptr<KeyStore> store;
  std::unique_ptr<Module> raw;
  CK_SLOT_ID slot = 0;
  KeyRef kek;
  SigningKey signer;
  KeyRef release;
  KeyRef mac;
  std::string release_spki;
  std::unique_ptr<agent::EphemeralKey> node;
  std::string node_point;  // uncompressed, for the raw derive
  WrappedKey blob{"aes-kwp", KeyType::kAes, Unhex(kP4Rfc5649)};

  static Fixture& Get() {
    static Fixture* fixture = [] {
      auto* f = new Fixture();
      auto made_token = SoftHsmToken::Create("hosn-bench");
      if (!made_token.ok()) Die("cannot create token");
      f->token = *std::move(made_token);
      KeyStoreOptions options = OptionsFor(*f->token);
      options.pool_size = 8;
      auto made_store = KeyStore::Create(options);
      if (!made_store.ok()) Die("cannot open key store");
      f->store = *std::move(made_store);
      auto made_kek =
          f->store->ImportSecretKeyForTesting("kek", "1", KeyType::kAes, UnhexSecret(kP4Kek));
      auto made_signer = f->store->GenerateSigningKey("ec-p256", "signer", "1");
      if (!made_kek.ok() || !made_signer.ok()) Die("cannot create keys");
      f->kek = *made_kek;
      f->signer = *made_signer;
      auto made_release = f->store->GenerateReleaseKey("release", "1");
      auto made_mac = f->store->GenerateMacKey("mac", "1");
      auto made_node = agent::EphemeralKey::Generate();
      if (!made_release.ok() || !made_mac.ok() || !made_node.ok()) Die("cannot create keys");
      f->release = *made_release;
      f->mac = *made_mac;
      f->node = *std::move(made_node);
      auto spki = f->store->ExportPublicKey(f->release);
      auto point = P256PointFromSpki(f->node->public_key_der());
      if (!spki.ok() || !point.ok()) Die("release key");
      f->release_spki = *spki;
      f->node_point = *point;
      // Fleet state of 100 nodes, so a lookup searches among many objects.
      for (int i = 0; i < 100; ++i) {
        if (!f->store->PutDataObject("node/" + std::to_string(i), std::string(200, 'n')).ok()) {
          Die("cannot put data objects");
        }
      }
      // The same library again: same instance, already initialised.
      auto made_raw = Module::Load(SoftHsmToken::kModulePath);
      if (!made_raw.ok()) Die("cannot load module");
      f->raw = *std::move(made_raw);
      Pkcs11Uri uri;
      uri.token = f->token->label();
      auto found_slot = f->raw->FindSlot(uri);
      if (!found_slot.ok()) Die("no slot");
      f->slot = *found_slot;
      return f;
    }();
    return *fixture;
  }
};

// A raw session of one benchmark thread, with the handles it uses.
struct RawSession {
  CK_FUNCTION_LIST* f = nullptr;
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE signer = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE release = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE mac = CK_INVALID_HANDLE;
  std::string node_point;

  RawSession(Fixture& fixture, bool copy)
      : f(fixture.raw->function_list()), node_point(fixture.node_point) {
    if (f->C_OpenSession(fixture.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                         &session) != CKR_OK) {
      Die("C_OpenSession");
    }
    kek = Find(CKO_SECRET_KEY, "kek");
    signer = Find(CKO_PRIVATE_KEY, "signer");
    release = Find(CKO_PRIVATE_KEY, "release");
    mac = Find(CKO_SECRET_KEY, "mac");
    if (copy) {
      for (CK_OBJECT_HANDLE* key : {&kek, &signer, &release, &mac}) *key = Copy(*key);
    }
  }

  CK_OBJECT_HANDLE Copy(CK_OBJECT_HANDLE key) {
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &no, sizeof(no)}};
    CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
    if (f->C_CopyObject(session, key, t, 1, &copy) != CKR_OK) Die("C_CopyObject");
    return copy;
  }
  ~RawSession() { f->C_CloseSession(session); }

  CK_OBJECT_HANDLE Find(CK_OBJECT_CLASS key_class, const std::string& label) {
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &key_class, sizeof(key_class)},
                        {CKA_TOKEN, &yes, sizeof(yes)},
                        {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    CK_ULONG count = 0;
    f->C_FindObjectsInit(session, t, 3);
    f->C_FindObjects(session, &handle, 1, &count);
    f->C_FindObjectsFinal(session);
    if (count != 1) Die("raw find");
    return handle;
  }

  bool Unwrap(const std::string& blob) {
    const CK_OBJECT_HANDLE dek = UnwrapDek(blob);
    return dek != CK_INVALID_HANDLE && f->C_DestroyObject(session, dek) == CKR_OK;
  }

  // The release, as KeyStore::WrapDekToPeer runs it (same templates).
  bool Release(const std::string& blob) {
    const CK_OBJECT_HANDLE dek = UnwrapDek(blob);
    if (dek == CK_INVALID_HANDLE) return false;
    CK_ECDH1_DERIVE_PARAMS params = {};
    params.kdf = CKD_NULL;
    params.public_data = reinterpret_cast<CK_BYTE*>(node_point.data());
    params.public_data_len = node_point.size();
    CK_MECHANISM derive = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_OBJECT_CLASS key_class = CKO_SECRET_KEY;
    CK_KEY_TYPE key_type = CKK_AES;
    CK_ULONG length = 32;
    CK_BBOOL no = CK_FALSE;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &key_class, sizeof(key_class)},
                        {CKA_KEY_TYPE, &key_type, sizeof(key_type)},
                        {CKA_VALUE_LEN, &length, sizeof(length)},
                        {CKA_TOKEN, &no, sizeof(no)},
                        {CKA_PRIVATE, &yes, sizeof(yes)},
                        {CKA_SENSITIVE, &yes, sizeof(yes)},
                        {CKA_EXTRACTABLE, &no, sizeof(no)},
                        {CKA_WRAP, &yes, sizeof(yes)},
                        {CKA_UNWRAP, &no, sizeof(no)},
                        {CKA_ENCRYPT, &no, sizeof(no)},
                        {CKA_DECRYPT, &no, sizeof(no)},
                        {CKA_SIGN, &no, sizeof(no)},
                        {CKA_VERIFY, &no, sizeof(no)},
                        {CKA_DERIVE, &no, sizeof(no)}};
    CK_OBJECT_HANDLE wrapping = CK_INVALID_HANDLE;
    bool ok =
        f->C_DeriveKey(session, &derive, release, t, sizeof(t) / sizeof(t[0]), &wrapping) == CKR_OK;
    if (ok) {
      CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
      unsigned char out[128];
      CK_ULONG out_length = sizeof(out);
      ok = f->C_WrapKey(session, &kwp, wrapping, dek, out, &out_length) == CKR_OK;
      ok = f->C_DestroyObject(session, wrapping) == CKR_OK && ok;
    }
    return f->C_DestroyObject(session, dek) == CKR_OK && ok;
  }

  bool Mac() {
    CK_MECHANISM mechanism = {CKM_SHA256_HMAC, nullptr, 0};
    if (f->C_SignInit(session, &mechanism, mac) != CKR_OK) return false;
    unsigned char data[32] = {};
    unsigned char out[32];
    CK_ULONG size = sizeof(out);
    return f->C_Sign(session, data, sizeof(data), out, &size) == CKR_OK;
  }

  // One data object read as GetDataObject does it: find by class, token,
  // application and label, then read CKA_VALUE.
  bool ReadData(const std::string& label) {
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    char application[] = "hosn-keyd";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &data, sizeof(data)},
                        {CKA_TOKEN, &yes, sizeof(yes)},
                        {CKA_APPLICATION, application, sizeof(application) - 1},
                        {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    CK_ULONG count = 0;
    f->C_FindObjectsInit(session, t, 4);
    f->C_FindObjects(session, &handle, 1, &count);
    f->C_FindObjectsFinal(session);
    if (count != 1) return false;
    unsigned char value[512];
    CK_ATTRIBUTE read = {CKA_VALUE, value, sizeof(value)};
    return f->C_GetAttributeValue(session, handle, &read, 1) == CKR_OK;
  }

  CK_OBJECT_HANDLE UnwrapDek(const std::string& blob) {
    CK_MECHANISM mechanism = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    CK_OBJECT_CLASS key_class = CKO_SECRET_KEY;
    CK_KEY_TYPE key_type = CKK_AES;
    CK_BBOOL no = CK_FALSE;
    CK_BBOOL yes = CK_TRUE;
    // The same DEK attributes the KeyStore sets (see DekAttributes).
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &key_class, sizeof(key_class)},
                        {CKA_KEY_TYPE, &key_type, sizeof(key_type)},
                        {CKA_TOKEN, &no, sizeof(no)},
                        {CKA_PRIVATE, &yes, sizeof(yes)},
                        {CKA_SENSITIVE, &yes, sizeof(yes)},
                        {CKA_EXTRACTABLE, &yes, sizeof(yes)},
                        {CKA_WRAP, &no, sizeof(no)},
                        {CKA_UNWRAP, &no, sizeof(no)},
                        {CKA_DECRYPT, &no, sizeof(no)},
                        {CKA_DERIVE, &no, sizeof(no)},
                        {CKA_ENCRYPT, &yes, sizeof(yes)}};
    CK_OBJECT_HANDLE dek = CK_INVALID_HANDLE;
    if (f->C_UnwrapKey(session, &mechanism, kek,
                       reinterpret_cast<CK_BYTE*>(const_cast<char*>(blob.data())), blob.size(), t,
                       sizeof(t) / sizeof(t[0]), &dek) != CKR_OK) {
      return CK_INVALID_HANDLE;
    }
    return dek;
  }

  bool Sign() {
    unsigned char digest[32];
    unsigned int length = 0;
    EVP_Digest(kMessage, sizeof(kMessage) - 1, digest, &length, EVP_sha256(), nullptr);
    CK_MECHANISM mechanism = {CKM_ECDSA, nullptr, 0};
    if (f->C_SignInit(session, &mechanism, signer) != CKR_OK) return false;
    unsigned char signature[128];
    CK_ULONG size = sizeof(signature);
    return f->C_Sign(session, digest, length, signature, &size) == CKR_OK;
  }
};

void BM_PoolUnwrap(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  for (auto _ : state) {
    absl::Status status = fixture.store->WithUnwrappedDek(
        fixture.kek, fixture.blob, [](const UnwrappedDek&) { return absl::OkStatus(); });
    if (!status.ok()) state.SkipWithError("unwrap failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PoolSign(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  for (auto _ : state) {
    auto signature = fixture.store->Sign(fixture.signer.private_key, "ecdsa-p256-sha256", kMessage,
                                         SignatureFormat::kPkcs11Raw);
    if (!signature.ok()) state.SkipWithError("sign failed");
  }
  state.SetItemsProcessed(state.iterations());
}

template <bool kCopy>
void BM_RawUnwrap(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  RawSession raw(fixture, kCopy);
  for (auto _ : state) {
    if (!raw.Unwrap(fixture.blob.wrapped)) state.SkipWithError("raw unwrap failed");
  }
  state.SetItemsProcessed(state.iterations());
}

template <bool kCopy>
void BM_RawSign(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  RawSession raw(fixture, kCopy);
  for (auto _ : state) {
    if (!raw.Sign()) state.SkipWithError("raw sign failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PoolRelease(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  const std::string& peer = fixture.node->public_key_der();
  for (auto _ : state) {
    auto wrapped =
        fixture.store->WrapDekToPeer(fixture.kek, fixture.blob, fixture.release, peer, "null", "");
    if (!wrapped.ok()) state.SkipWithError("release failed");
  }
  state.SetItemsProcessed(state.iterations());
}

template <bool kCopy>
void BM_RawRelease(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  RawSession raw(fixture, kCopy);
  for (auto _ : state) {
    if (!raw.Release(fixture.blob.wrapped)) state.SkipWithError("raw release failed");
  }
  state.SetItemsProcessed(state.iterations());
}

// The release op in software: ECDH P-256 (as the node does it) plus AES-256
// KWP of a 32-byte key, OpenSSL only.
void BM_OpenSslRelease(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  const SecretBytes dek = UnhexSecret(hosn::hsm::testing::kP4Dek);
  const auto* p = reinterpret_cast<const unsigned char*>(fixture.node->public_key_der().data());
  EVP_PKEY* peer =
      d2i_PUBKEY(nullptr, &p, static_cast<long>(fixture.node->public_key_der().size()));
  EVP_PKEY* own = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  for (auto _ : state) {
    auto key = agent::DeriveReleaseWrappingKey(own, peer, agent::ReleaseKdf::kNull, "");
    unsigned char out[64];
    int length = 0;
    int final_length = 0;
    if (!key.ok() ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_wrap_pad(), nullptr, RevealSecret(*key).data(),
                           nullptr) != 1 ||
        EVP_EncryptUpdate(ctx, out, &length, RevealSecret(dek).data(), 32) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + length, &final_length) != 1) {
      state.SkipWithError("openssl release failed");
    }
  }
  EVP_CIPHER_CTX_free(ctx);
  EVP_PKEY_free(own);
  EVP_PKEY_free(peer);
  state.SetItemsProcessed(state.iterations());
}

// The host-side part of every release: checking the node's SPKI.
void BM_ParsePeerSpki(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  for (auto _ : state) {
    if (!P256PointFromSpki(fixture.node->public_key_der()).ok()) state.SkipWithError("parse");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PoolGetDataObject(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  int i = 0;
  for (auto _ : state) {
    auto value = fixture.store->GetDataObject("node/" + std::to_string(i++ % 100));
    if (!value.ok() || !value->has_value()) state.SkipWithError("get failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RawDataRead(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  RawSession raw(fixture, true);
  int i = 0;
  for (auto _ : state) {
    if (!raw.ReadData("node/" + std::to_string(i++ % 100))) state.SkipWithError("raw read");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PoolMac(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  const std::string data(32, '\0');
  for (auto _ : state) {
    if (!fixture.store->Mac(fixture.mac, data).ok()) state.SkipWithError("mac failed");
  }
  state.SetItemsProcessed(state.iterations());
}

template <bool kCopy>
void BM_RawMac(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  RawSession raw(fixture, kCopy);
  for (auto _ : state) {
    if (!raw.Mac()) state.SkipWithError("raw mac failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_OpenSslHmac(benchmark::State& state) {
  const unsigned char key[32] = {1};
  const unsigned char data[32] = {};
  for (auto _ : state) {
    unsigned char out[32];
    unsigned int length = 0;
    benchmark::DoNotOptimize(HMAC(EVP_sha256(), key, 32, data, 32, out, &length));
  }
  state.SetItemsProcessed(state.iterations());
}

void Threads12(benchmark::internal::Benchmark* b) { b->Threads(1)->Threads(2)->UseRealTime(); }

BENCHMARK(BM_PoolRelease)->Apply(Threads12);
BENCHMARK_TEMPLATE(BM_RawRelease, false)->Name("BM_RawRelease/RawTokenKey")->Apply(Threads12);
BENCHMARK_TEMPLATE(BM_RawRelease, true)->Name("BM_RawRelease/RawSessionCopy")->Apply(Threads12);
BENCHMARK(BM_OpenSslRelease)->Apply(Threads12);
BENCHMARK(BM_ParsePeerSpki)->Threads(1)->UseRealTime();
BENCHMARK(BM_PoolGetDataObject)->Threads(1)->UseRealTime();
BENCHMARK(BM_RawDataRead)->Threads(1)->UseRealTime();
BENCHMARK(BM_PoolMac)->Apply(Threads12);
BENCHMARK_TEMPLATE(BM_RawMac, false)->Name("BM_RawMac/RawTokenKey")->Apply(Threads12);
BENCHMARK_TEMPLATE(BM_RawMac, true)->Name("BM_RawMac/RawSessionCopy")->Apply(Threads12);
BENCHMARK(BM_OpenSslHmac)->Apply(Threads12);

void Threads(benchmark::internal::Benchmark* b) {
  b->Threads(1)->Threads(2)->Threads(8)->UseRealTime();
}

BENCHMARK(BM_PoolUnwrap)->Apply(Threads);
BENCHMARK_TEMPLATE(BM_RawUnwrap, false)->Name("BM_RawUnwrap/RawTokenKey")->Apply(Threads);
BENCHMARK_TEMPLATE(BM_RawUnwrap, true)->Name("BM_RawUnwrap/RawSessionCopy")->Apply(Threads);
BENCHMARK(BM_PoolSign)->Apply(Threads);
BENCHMARK_TEMPLATE(BM_RawSign, false)->Name("BM_RawSign/RawTokenKey")->Apply(Threads);
BENCHMARK_TEMPLATE(BM_RawSign, true)->Name("BM_RawSign/RawSessionCopy")->Apply(Threads);

}  // namespace
}  // namespace hosn::hsm

BENCHMARK_MAIN();
