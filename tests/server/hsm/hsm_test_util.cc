#include "tests/server/hsm/hsm_test_util.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "common/base/hex.h"
#include "server/hsm/uri.h"

namespace hosn::hsm::testing {

KeyStoreOptions OptionsFor(const hosn::testing::SoftHsmToken& token,
                           const std::string& module_path) {
  KeyStoreOptions options;
  options.uri = token.uri();
  options.module_path = module_path;
  options.pin_reference = token.pin_reference();
  options.pool_size = 4;
  return options;
}

std::string Unhex(std::string_view hex) {
  absl::StatusOr<std::vector<uint8_t>> bytes = HexDecode(hex);
  if (!bytes.ok()) {
    std::fprintf(stderr, "bad hex in test input\n");
    std::abort();
  }
  return std::string(bytes->begin(), bytes->end());
}

SecretBytes UnhexSecret(std::string_view hex) { return SecretBytes::CopyOf(Unhex(hex)); }

std::string Hex(std::string_view bytes) { return HexEncode(bytes); }

RawTokenSession::RawTokenSession(const hosn::testing::SoftHsmToken& token,
                                 const std::string& module_path) {
  absl::StatusOr<std::unique_ptr<Module>> module = Module::Load(module_path);
  if (!module.ok()) {
    std::fprintf(stderr, "raw session: cannot load %s\n", module_path.c_str());
    std::abort();
  }
  module_ = *std::move(module);
  Pkcs11Uri uri;
  uri.token = token.label();
  absl::StatusOr<CK_SLOT_ID> slot = module_->FindSlot(uri);
  if (!slot.ok() || fn()->C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                        nullptr, &session_) != CKR_OK) {
    std::fprintf(stderr, "raw session: cannot open a session\n");
    std::abort();
  }
}

RawTokenSession::~RawTokenSession() { fn()->C_CloseSession(session_); }

CK_FUNCTION_LIST* RawTokenSession::fn() const { return module_->function_list(); }

size_t RawTokenSession::Count(CK_ATTRIBUTE* attributes, CK_ULONG count) {
  if (fn()->C_FindObjectsInit(session_, attributes, count) != CKR_OK) std::abort();
  size_t total = 0;
  for (;;) {
    CK_OBJECT_HANDLE batch[64];
    CK_ULONG found = 0;
    if (fn()->C_FindObjects(session_, batch, 64, &found) != CKR_OK) std::abort();
    total += found;
    if (found < 64) break;
  }
  fn()->C_FindObjectsFinal(session_);
  return total;
}

size_t RawTokenSession::CountSessionObjects() {
  CK_BBOOL no = CK_FALSE;
  CK_ATTRIBUTE t[] = {{CKA_TOKEN, &no, sizeof(no)}};
  return Count(t, 1);
}

size_t RawTokenSession::CountDataObjects(const std::string& label) {
  CK_OBJECT_CLASS data = CKO_DATA;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &data, sizeof(data)},
                      {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  return Count(t, 2);
}

std::string FaultModule::Path() { return HOSN_FAULT_PKCS11_PATH; }

FaultModule::FaultModule() {
  library_ = ::dlopen(Path().c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library_ == nullptr) {
    std::fprintf(stderr, "cannot open fault module %s: %s\n", Path().c_str(), ::dlerror());
    std::abort();
  }
  configure_ =
      reinterpret_cast<int (*)(const char*)>(::dlsym(library_, "hosn_fault_pkcs11_configure"));
  fired_ = reinterpret_cast<long (*)()>(::dlsym(library_, "hosn_fault_pkcs11_fired"));
  live_keys_ = reinterpret_cast<long (*)()>(::dlsym(library_, "hosn_fault_pkcs11_live_keys"));
  if (configure_ == nullptr || fired_ == nullptr || live_keys_ == nullptr) std::abort();
  configure_("");
}

FaultModule::~FaultModule() {
  configure_("");
  ::dlclose(library_);
}

bool FaultModule::Configure(const std::string& spec) { return configure_(spec.c_str()) == 0; }

long FaultModule::Fired() { return fired_(); }

long FaultModule::LiveKeys() { return live_keys_(); }

}  // namespace hosn::hsm::testing
