// hosn-hsm-selftest: exercises the HSM layer end to end on one token.
//
//   hosn-hsm-selftest --uri='pkcs11:token=hosn-dev'
//       --module=/usr/lib/softhsm/libsofthsm2.so --pin=file:/path/user.pin
//   (one command line)
//
//   hosn-hsm-selftest create-key --kind=release|challenge-mac|kek|signing
//       --key_label=hosn-release --key_id=03 [--public_key_out=release.der]
//       --uri=... --module=... --pin=...
//   creates one key with the attributes hosn-keyd expects (KeyStore's
//   GenerateReleaseKey, GenerateMacKey, GenerateKek or, for signing, an EC
//   P-256 GenerateSigningKey) and keeps it; a key that already exists is
//   reported and left alone (exit 0), so dev scripts can run it again. Used by
//   deploy/dev-token.sh, deploy/config/dev-keyd.sh and the signing-key
//   rotation procedure (docs/daemon.md).
//
// Without a subcommand: generates two KEKs, a DEK wrapped under the first, rewraps it under the
// second and checks that both unwrap to the same key (by check value),
// generates an EC P-256 signing key, signs, and verifies the signature with
// OpenSSL. Prints each step; exits 1 on the first failure. Keys it created
// are destroyed at the end unless --keep is given. The PIN is only ever
// named by reference (file: or credential:), never passed on the command
// line.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "server/hsm/key_store.h"

ABSL_FLAG(std::string, uri, "", "RFC 7512 PKCS#11 URI selecting the token (label and/or serial)");
ABSL_FLAG(std::string, module, "", "PKCS#11 module path (overrides module-path in --uri)");
ABSL_FLAG(std::string, pin, "", "PIN reference: file:/path or credential:NAME");
ABSL_FLAG(std::string, label_prefix, "hosn-selftest", "Prefix of the labels of created keys");
ABSL_FLAG(std::string, out_dir, "",
          "If set, write pub.der, message.txt and signature.der here for an external check");
ABSL_FLAG(bool, keep, false, "Keep the created keys on the token");
ABSL_FLAG(std::string, kind, "", "create-key: release, challenge-mac, kek or signing");
ABSL_FLAG(std::string, key_label, "", "create-key: CKA_LABEL of the new key");
ABSL_FLAG(std::string, key_id, "", "create-key: CKA_ID of the new key (bytes as given)");
ABSL_FLAG(std::string, public_key_out, "",
          "create-key --kind=release|signing: write the public key (DER SPKI) here");

namespace {

using hosn::hsm::KeyRef;
using hosn::hsm::KeyStore;
using hosn::hsm::SigningKey;
using hosn::hsm::WrappedKey;

void Step(const std::string& text) { std::printf("selftest: %s\n", text.c_str()); }

absl::Status VerifyWithOpenSsl(const std::string& spki, const std::string& message,
                               const std::string& der_signature) {
  const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())), EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (key == nullptr || ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der_signature.data()),
                       der_signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
    return absl::InternalError("openssl rejected the signature");
  }
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return out.good() ? absl::OkStatus() : absl::InternalError(absl::StrCat("cannot write ", path));
}

absl::StatusOr<std::unique_ptr<KeyStore>> OpenStore() {
  hosn::hsm::KeyStoreOptions options;
  options.uri = absl::GetFlag(FLAGS_uri);
  options.module_path = absl::GetFlag(FLAGS_module);
  options.pin_reference = absl::GetFlag(FLAGS_pin);
  return KeyStore::Create(options);
}

// The create-key subcommand.
absl::Status CreateKey() {
  const std::string kind = absl::GetFlag(FLAGS_kind);
  const std::string label = absl::GetFlag(FLAGS_key_label);
  const std::string id = absl::GetFlag(FLAGS_key_id);
  if (label.empty()) return absl::InvalidArgumentError("--key_label is required");
  HOSN_ASSIGN_OR_RETURN(std::unique_ptr<KeyStore> store, OpenStore());
  absl::StatusOr<KeyRef> key = absl::InvalidArgumentError(
      absl::StrCat("--kind must be release, challenge-mac, kek or signing, not '", kind, "'"));
  if (kind == "release") key = store->GenerateReleaseKey(label, id);
  if (kind == "challenge-mac") key = store->GenerateMacKey(label, id);
  if (kind == "kek") key = store->GenerateKek(label, id);
  if (kind == "signing") {
    absl::StatusOr<SigningKey> pair = store->GenerateSigningKey("ec-p256", label, id);
    key = pair.ok() ? absl::StatusOr<KeyRef>(pair->private_key) : pair.status();
  }
  if (absl::IsAlreadyExists(key.status())) {
    Step(absl::StrCat(kind, " key '", label, "' exists already; left as it is"));
  } else if (!key.ok()) {
    return key.status();
  } else {
    Step(absl::StrCat("created ", kind, " key '", label, "'"));
  }
  const std::string out = absl::GetFlag(FLAGS_public_key_out);
  if ((kind == "release" || kind == "signing") && !out.empty()) {
    const KeyRef pair = kind == "release" ? KeyRef::ReleaseKey(label, id)
                                          : KeyRef{hosn::hsm::KeyClass::kPrivateKey,
                                                   hosn::hsm::KeyType::kEc, label, id};
    HOSN_ASSIGN_OR_RETURN(std::string spki, store->ExportPublicKey(pair));
    HOSN_RETURN_IF_ERROR(WriteFile(out, spki));
    Step(absl::StrCat("wrote its public key to ", out));
  }
  return absl::OkStatus();
}

absl::Status Run(std::vector<KeyRef>& created, std::unique_ptr<KeyStore>& store) {
  const std::string prefix = absl::GetFlag(FLAGS_label_prefix);

  // 1. Open the token.
  HOSN_ASSIGN_OR_RETURN(store, OpenStore());
  Step(absl::StrCat("opened ", absl::GetFlag(FLAGS_uri)));

  // 2. Two KEKs: AES-256, sensitive, non-extractable, wrap/unwrap only.
  HOSN_ASSIGN_OR_RETURN(KeyRef kek1, store->GenerateKek(prefix + "-kek-1", "1"));
  created.push_back(kek1);
  HOSN_ASSIGN_OR_RETURN(KeyRef kek2, store->GenerateKek(prefix + "-kek-2", "2"));
  created.push_back(kek2);
  HOSN_ASSIGN_OR_RETURN(hosn::hsm::KeyInfo info, store->FindKey(kek1));
  Step(absl::StrCat("generated KEKs '", kek1.label, "' and '", kek2.label,
                    "' (sensitive=", info.sensitive, ", extractable=", info.extractable, ")"));

  // 3. A DEK made inside the HSM, returned only wrapped (RFC 5649).
  HOSN_ASSIGN_OR_RETURN(WrappedKey wrapped, store->GenerateWrappedDek(kek1, "aes-kwp"));
  HOSN_ASSIGN_OR_RETURN(std::string kcv1, store->DekCheckValue(kek1, wrapped));
  Step(absl::StrCat("generated DEK wrapped with ", wrapped.algorithm, ": ", wrapped.wrapped.size(),
                    " bytes; check value ", hosn::HexEncode(kcv1.substr(0, 3))));

  // 4. Rotation: rewrap under the second KEK inside the HSM.
  HOSN_ASSIGN_OR_RETURN(WrappedKey rewrapped, store->Rewrap(kek1, wrapped, kek2));
  HOSN_ASSIGN_OR_RETURN(std::string kcv2, store->DekCheckValue(kek2, rewrapped));
  if (kcv1 != kcv2) return absl::InternalError("rewrapped DEK differs from the original");
  if (store->DekCheckValue(kek1, rewrapped).ok()) {
    return absl::InternalError("old KEK opened the rewrapped DEK");
  }
  Step(absl::StrCat("rewrapped DEK under '", kek2.label, "': same check value ",
                    hosn::HexEncode(kcv2.substr(0, 3))));

  // 5. Signing key, signature, OpenSSL verification.
  HOSN_ASSIGN_OR_RETURN(SigningKey signer,
                        store->GenerateSigningKey("ec-p256", prefix + "-signer", "3"));
  created.push_back(signer.private_key);
  created.push_back(signer.public_key);
  const std::string message = "hosn selftest manifest";
  HOSN_ASSIGN_OR_RETURN(std::string signature,
                        store->Sign(signer.private_key, "ecdsa-p256-sha256", message));
  HOSN_RETURN_IF_ERROR(VerifyWithOpenSsl(signer.public_key_der, message, signature));
  Step(absl::StrCat("signed with EC P-256 key '", signer.private_key.label, "' (", signature.size(),
                    "-byte DER signature); OpenSSL verified it"));
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  if (!out_dir.empty()) {
    HOSN_RETURN_IF_ERROR(WriteFile(out_dir + "/pub.der", signer.public_key_der));
    HOSN_RETURN_IF_ERROR(WriteFile(out_dir + "/message.txt", message));
    HOSN_RETURN_IF_ERROR(WriteFile(out_dir + "/signature.der", signature));
    Step(absl::StrCat("wrote pub.der, message.txt, signature.der to ", out_dir));
  }

  // 6. What the module cannot do, said plainly.
  absl::Status oaep = store->CheckCapability("rsa-oaep-sha256");
  Step(absl::StrCat("rsa-oaep-sha256: ", oaep.ok() ? "supported" : std::string(oaep.message())));
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 1) {
    if (std::string(args[1]) != "create-key" || args.size() > 2) {
      std::fprintf(stderr, "usage: hosn-hsm-selftest [create-key --kind=... --key_label=...]\n");
      return 2;
    }
    const absl::Status status = CreateKey();
    if (!status.ok()) {
      std::fprintf(stderr, "create-key: FAILED: %s\n", status.ToString().c_str());
      return 1;
    }
    return 0;
  }
  std::vector<KeyRef> created;
  std::unique_ptr<KeyStore> store;
  absl::Status status = Run(created, store);
  if (!status.ok()) std::fprintf(stderr, "selftest: FAILED: %s\n", status.ToString().c_str());

  // Clean up on every path.
  if (store != nullptr && !absl::GetFlag(FLAGS_keep)) {
    for (const KeyRef& key : created) {
      absl::Status destroyed = store->DestroyKey(key);
      if (!destroyed.ok()) {
        std::fprintf(stderr, "selftest: cannot destroy '%s': %s\n", key.label.c_str(),
                     destroyed.ToString().c_str());
        if (status.ok()) status = destroyed;
      }
    }
    if (!created.empty()) Step(absl::StrCat("destroyed ", created.size(), " created keys"));
  }
  if (!status.ok()) return 1;
  Step("all steps passed");
  return 0;
}
