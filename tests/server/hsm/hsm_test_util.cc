#include "tests/server/hsm/hsm_test_util.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "common/base/hex.h"

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
  if (configure_ == nullptr || fired_ == nullptr) std::abort();
  configure_("");
}

FaultModule::~FaultModule() {
  configure_("");
  ::dlclose(library_);
}

bool FaultModule::Configure(const std::string& spec) { return configure_(spec.c_str()) == 0; }

long FaultModule::Fired() { return fired_(); }

}  // namespace hosn::hsm::testing
