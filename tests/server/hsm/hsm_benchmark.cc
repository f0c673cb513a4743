// Unwraps and signs per second through the KeyStore pool at 1, 2 and 8
// client threads, next to the same PKCS#11 calls on raw sessions opened by
// hand, in one run on one SoftHSM token. See docs/benchmarks/hsm.md.
//
// Raw variants (each thread owns one session, no pool, no lookups):
//   RawTokenKey    operates on the token object itself
//   RawSessionCopy operates on a session-object copy of it (the fast path
//                  SoftHSM offers: no file lock per call)
// Unwrap = C_UnwrapKey (RFC 5649, 32-byte DEK) + C_DestroyObject.
// Sign   = SHA-256 in OpenSSL + C_SignInit/C_Sign with CKM_ECDSA on P-256
//          (SoftHSM 2.6 has no CKM_ECDSA_SHA256), raw r||s output.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "server/hsm/key_store.h"
#include "server/hsm/module.h"
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

  RawSession(Fixture& fixture, bool copy) : f(fixture.raw->function_list()) {
    if (f->C_OpenSession(fixture.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                         &session) != CKR_OK) {
      Die("C_OpenSession");
    }
    kek = Find(CKO_SECRET_KEY, "kek");
    signer = Find(CKO_PRIVATE_KEY, "signer");
    if (copy) {
      CK_BBOOL no = CK_FALSE;
      CK_ATTRIBUTE t[] = {{CKA_TOKEN, &no, sizeof(no)}};
      CK_OBJECT_HANDLE kek_copy = CK_INVALID_HANDLE;
      CK_OBJECT_HANDLE signer_copy = CK_INVALID_HANDLE;
      if (f->C_CopyObject(session, kek, t, 1, &kek_copy) != CKR_OK ||
          f->C_CopyObject(session, signer, t, 1, &signer_copy) != CKR_OK) {
        Die("C_CopyObject");
      }
      kek = kek_copy;
      signer = signer_copy;
    }
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
      return false;
    }
    return f->C_DestroyObject(session, dek) == CKR_OK;
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
