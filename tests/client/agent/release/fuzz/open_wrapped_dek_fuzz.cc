// libFuzzer target: EphemeralKey::OpenWrappedDek on what the daemon sends
// back (ReleaseKeyResponse releaser_public_key and wrapped_dek), with one
// fixed ephemeral key made once per process.
// Input: a mode byte, then three fields (tests/testing/fuzz_input.h):
// releaser SPKI, wrapped DEK, KDF shared_info. Mode bit 0 picks the KDF
// (null or x963-sha256). Mode bit 1 plays an honest HSM instead: the second
// field is the DEK, wrapped (RFC 5649) to the ephemeral key under a fixed
// releaser key, and the first field's first byte names a blob byte to flip.
// Invariants: a refusal is InvalidArgument (key) or DataLoss (blob); an
// honest wrap opens to exactly the DEK; a wrap with one byte flipped never
// opens.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "client/agent/release/dek_opener.h"
#include "common/base/secret_bytes.h"
#include "tests/testing/fuzz_input.h"

namespace {

using hosn::agent::EphemeralKey;
using hosn::agent::ReleaseKdf;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

void Require(bool ok) {
  if (!ok) std::abort();
}

struct Keys {
  std::unique_ptr<EphemeralKey> ephemeral;
  UniquePkey ephemeral_public;  // parsed back from its SPKI
  UniquePkey releaser;          // the "HSM" release key pair
  std::string releaser_spki;
};

const Keys& FixedKeys() {
  static const Keys* keys = [] {
    auto* out = new Keys;
    auto ephemeral = EphemeralKey::Generate();
    Require(ephemeral.ok());
    out->ephemeral = *std::move(ephemeral);
    const std::string& der = out->ephemeral->public_key_der();
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    out->ephemeral_public.reset(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
    out->releaser.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    Require(out->ephemeral_public != nullptr && out->releaser != nullptr);
    unsigned char* spki = nullptr;
    const int length = i2d_PUBKEY(out->releaser.get(), &spki);
    Require(length > 0);
    out->releaser_spki.assign(reinterpret_cast<char*>(spki), static_cast<size_t>(length));
    OPENSSL_free(spki);
    return out;
  }();
  return *keys;
}

// The HSM's side: `dek` wrapped to the ephemeral key.
std::string HonestWrap(std::string_view dek, ReleaseKdf kdf, std::string_view shared_info) {
  const Keys& keys = FixedKeys();
  auto kek = hosn::agent::DeriveReleaseWrappingKey(keys.releaser.get(), keys.ephemeral_public.get(),
                                                   kdf, shared_info);
  Require(kek.ok());
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  Require(ctx != nullptr);
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  std::string out(dek.size() + 16, '\0');
  int length = 0;
  int final_length = 0;
  auto* buffer = reinterpret_cast<unsigned char*>(out.data());
  Require(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_wrap_pad(), nullptr, RevealSecret(*kek).data(),
                             nullptr) == 1 &&
          EVP_EncryptUpdate(ctx.get(), buffer, &length,
                            reinterpret_cast<const unsigned char*>(dek.data()),
                            static_cast<int>(dek.size())) == 1 &&
          EVP_EncryptFinal_ex(ctx.get(), buffer + length, &final_length) == 1);
  out.resize(static_cast<size_t>(length + final_length));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const auto [releaser_spki, wrapped, shared_info] =
      hosn::testing::SplitFuzzInput<3>(data + 1, size - 1);
  const ReleaseKdf kdf = (mode & 1) != 0 ? ReleaseKdf::kX963Sha256 : ReleaseKdf::kNull;
  const EphemeralKey& key = *FixedKeys().ephemeral;

  if ((mode & 2) == 0) {
    auto opened = key.OpenWrappedDek(releaser_spki, wrapped, kdf, shared_info);
    Require(opened.ok() || opened.status().code() == absl::StatusCode::kInvalidArgument ||
            opened.status().code() == absl::StatusCode::kDataLoss);
    return 0;
  }

  // An honest HSM: the blob opens to the DEK, and a flipped byte breaks it.
  const std::string_view dek = wrapped;
  if (dek.empty() || dek.size() > 4096 - 16) return 0;
  std::string blob = HonestWrap(dek, kdf, shared_info);
  auto opened = key.OpenWrappedDek(FixedKeys().releaser_spki, blob, kdf, shared_info);
  Require(opened.ok() && opened->size() == dek.size() &&
          std::string_view(reinterpret_cast<const char*>(RevealSecret(*opened).data()),
                           opened->size()) == dek);
  const size_t flip = releaser_spki.empty() ? 0 : static_cast<uint8_t>(releaser_spki[0]);
  blob[flip % blob.size()] ^= 0x01;
  auto tampered = key.OpenWrappedDek(FixedKeys().releaser_spki, blob, kdf, shared_info);
  Require(!tampered.ok() && tampered.status().code() == absl::StatusCode::kDataLoss);
  return 0;
}
