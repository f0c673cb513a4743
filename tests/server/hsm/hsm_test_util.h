// Helpers shared by the tests of server/hsm: a KeyStore on a fresh SoftHSM
// token, hex helpers, a raw session for counting objects, and the control
// handle of the fault-injecting module.
// Not thread-safe (see SoftHsmToken).
#ifndef HOSN_TESTS_SERVER_HSM_HSM_TEST_UTIL_H_
#define HOSN_TESTS_SERVER_HSM_HSM_TEST_UTIL_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/base/secret_bytes.h"
#include "server/hsm/key_store.h"
#include "server/hsm/module.h"
#include "server/hsm/pkcs11.h"
#include "tests/testing/softhsm_token.h"

namespace hosn::hsm::testing {

// Options for a KeyStore on `token` through `module_path` (SoftHSM itself by
// default, or FaultModule::Path()).
KeyStoreOptions OptionsFor(
    const hosn::testing::SoftHsmToken& token,
    const std::string& module_path = hosn::testing::SoftHsmToken::kModulePath);

// Hex to bytes; aborts the test binary on bad hex (inputs are constants and
// vector files).
std::string Unhex(std::string_view hex);
SecretBytes UnhexSecret(std::string_view hex);
std::string Hex(std::string_view bytes);

// The P4 vectors of ../shared/cases/README.md.
inline constexpr char kP4Kek[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
inline constexpr char kP4Dek[] = "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f";
inline constexpr char kP4Rfc5649[] =
    "4a8029243027353b0694cf1bd8fc745bb0ce8a739b19b1960b12426d4c39cfeda926d103ab34e9f6";
inline constexpr char kP4Rfc3394[] =
    "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21";

// A raw PKCS#11 session on a test token, opened by hand next to a KeyStore.
// Through the same library path a KeyStore loaded, it is the same module
// instance: it shares that KeyStore's login and sees its session objects.
// Used to count objects the KeyStore must have destroyed.
class RawTokenSession {
 public:
  // Aborts the test binary if the module, token or session cannot be had.
  explicit RawTokenSession(
      const hosn::testing::SoftHsmToken& token,
      const std::string& module_path = hosn::testing::SoftHsmToken::kModulePath);
  ~RawTokenSession();
  RawTokenSession(const RawTokenSession&) = delete;
  RawTokenSession& operator=(const RawTokenSession&) = delete;

  // Session objects (CKA_TOKEN=false) visible on the token right now.
  size_t CountSessionObjects();
  // CKO_DATA token objects with this label (every stored version).
  size_t CountDataObjects(const std::string& label);
  // Objects matching `attributes`.
  size_t Count(CK_ATTRIBUTE* attributes, CK_ULONG count);

  CK_FUNCTION_LIST* fn() const;
  CK_SESSION_HANDLE handle() const { return session_; }

 private:
  std::unique_ptr<Module> module_;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

// The fault-injecting module built with the tests (see fault_pkcs11.h).
class FaultModule {
 public:
  static std::string Path();
  // Opens the module's control functions (the same instance a KeyStore
  // loads from Path()). Aborts if the library cannot be opened.
  FaultModule();
  ~FaultModule();
  FaultModule(const FaultModule&) = delete;
  FaultModule& operator=(const FaultModule&) = delete;

  // Replaces the rules; false on a syntax error.
  bool Configure(const std::string& spec);
  long Fired();
  // See hosn_fault_pkcs11_live_keys.
  long LiveKeys();

 private:
  void* library_;
  int (*configure_)(const char*);
  long (*fired_)();
  long (*live_keys_)();
};

}  // namespace hosn::hsm::testing

#endif  // HOSN_TESTS_SERVER_HSM_HSM_TEST_UTIL_H_
