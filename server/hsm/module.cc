#include "server/hsm/module.h"

#include <dlfcn.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "server/hsm/ckr.h"

namespace hosn::hsm {
namespace {

CK_RV InitializeWithOsLocking(CK_FUNCTION_LIST* functions) {
  CK_C_INITIALIZE_ARGS args;
  std::memset(&args, 0, sizeof(args));
  args.flags = CKF_OS_LOCKING_OK;
  return functions->C_Initialize(&args);
}

}  // namespace

std::string TrimPadded(const unsigned char* field, size_t size) {
  std::string text(reinterpret_cast<const char*>(field), size);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

absl::StatusOr<std::unique_ptr<Module>> Module::Load(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError("pkcs11 module path must be absolute");
  }

  // 1. Load the library with its own symbol namespace.
  void* library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot load pkcs11 module ", path));
  }
  auto get_function_list =
      reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  if (get_function_list == nullptr) {
    ::dlclose(library);
    return absl::FailedPreconditionError(
        absl::StrCat("pkcs11 module has no C_GetFunctionList: ", path));
  }
  CK_FUNCTION_LIST* functions = nullptr;
  if (CK_RV rv = get_function_list(&functions); rv != CKR_OK || functions == nullptr) {
    ::dlclose(library);
    return CkrStatus(rv == CKR_OK ? CKR_GENERAL_ERROR : rv, "C_GetFunctionList");
  }

  // 2. Initialise with OS locking (case P1).
  const CK_RV rv = InitializeWithOsLocking(functions);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    ::dlclose(library);
    return CkrStatus(rv, "C_Initialize");
  }
  return std::unique_ptr<Module>(new Module(path, library, functions, rv == CKR_OK));
}

Module::~Module() {
  if (owns_init_) functions_->C_Finalize(nullptr);
  ::dlclose(library_);
}

absl::Status Module::Reinitialize() {
  if (owns_init_) functions_->C_Finalize(nullptr);
  const CK_RV rv = InitializeWithOsLocking(functions_);
  if (rv == CKR_OK) {
    owns_init_ = true;
    return absl::OkStatus();
  }
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) return absl::OkStatus();
  owns_init_ = false;
  return CkrStatus(rv, "C_Initialize");
}

absl::StatusOr<CK_SLOT_ID> Module::FindSlot(const Pkcs11Uri& uri) const {
  if (!uri.SelectsToken()) {
    return absl::InvalidArgumentError("pkcs11 uri must name a token label or serial");
  }

  // 1. Slots with a token present. The list may grow between the two calls.
  std::vector<CK_SLOT_ID> slots;
  for (int attempt = 0; attempt < 3; ++attempt) {
    CK_ULONG count = 0;
    HOSN_RETURN_IF_ERROR(
        CkrStatus(functions_->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList"));
    slots.resize(count);
    const CK_RV rv = functions_->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv == CKR_BUFFER_TOO_SMALL) continue;
    HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_GetSlotList"));
    slots.resize(count);
    break;
  }

  // 2. Every token attribute present in the URI must match.
  std::vector<CK_SLOT_ID> matches;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (functions_->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if (uri.token && TrimPadded(info.label, sizeof(info.label)) != *uri.token) continue;
    if (uri.serial && TrimPadded(info.serialNumber, sizeof(info.serialNumber)) != *uri.serial) {
      continue;
    }
    if (uri.manufacturer &&
        TrimPadded(info.manufacturerID, sizeof(info.manufacturerID)) != *uri.manufacturer) {
      continue;
    }
    if (uri.model && TrimPadded(info.model, sizeof(info.model)) != *uri.model) continue;
    matches.push_back(slot);
  }
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat("no token matches ", FormatPkcs11Uri(uri)));
  }
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("ambiguous token: ", matches.size(), " match ", FormatPkcs11Uri(uri)));
  }
  return matches.front();
}

absl::StatusOr<std::vector<CK_MECHANISM_TYPE>> Module::Mechanisms(CK_SLOT_ID slot) const {
  CK_ULONG count = 0;
  HOSN_RETURN_IF_ERROR(
      CkrStatus(functions_->C_GetMechanismList(slot, nullptr, &count), "C_GetMechanismList"));
  std::vector<CK_MECHANISM_TYPE> mechanisms(count);
  HOSN_RETURN_IF_ERROR(CkrStatus(functions_->C_GetMechanismList(slot, mechanisms.data(), &count),
                                 "C_GetMechanismList"));
  mechanisms.resize(count);
  return mechanisms;
}

}  // namespace hosn::hsm
