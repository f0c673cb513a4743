// Module: one loaded PKCS#11 library (dlopen + C_GetFunctionList +
// C_Initialize), and token selection on it.
//
// The module is initialised with CKF_OS_LOCKING_OK and no mutex callbacks, so
// the library uses the OS locking primitives and may be called from many
// threads (SoftHSM crashed under concurrent use without it). The destructor
// calls C_Finalize (only if this object initialised the library) and
// dlclose. Reinitialize finalises and initialises again after a device loss;
// the caller must guarantee that no other thread is inside the module.
//
// Thread safety: function_list() and FindSlot may be called concurrently;
// Reinitialize needs exclusive use.
#ifndef HOSN_SERVER_HSM_MODULE_H_
#define HOSN_SERVER_HSM_MODULE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/uri.h"

namespace hosn::hsm {

class Module {
 public:
  // InvalidArgument if `path` is empty or relative; NotFound if dlopen fails;
  // FailedPrecondition if the library has no C_GetFunctionList; the mapped
  // CKR status if C_Initialize fails. CKR_CRYPTOKI_ALREADY_INITIALIZED is
  // accepted (someone else in the process initialised it); this object then
  // never finalises the library.
  static absl::StatusOr<std::unique_ptr<Module>> Load(const std::string& path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* function_list() const { return functions_; }
  const std::string& path() const { return path_; }

  // C_Finalize then C_Initialize. Every session of the process on this
  // module is gone afterwards.
  absl::Status Reinitialize();

  // The slot whose token matches every token attribute present in `uri`
  // (label, serial, manufacturer, model; compared after trimming the blank
  // padding of CK_TOKEN_INFO). InvalidArgument if the URI names neither a
  // label nor a serial; NotFound if no token matches; FailedPrecondition if
  // several do.
  absl::StatusOr<CK_SLOT_ID> FindSlot(const Pkcs11Uri& uri) const;

  // The mechanisms the token in `slot` reports.
  absl::StatusOr<std::vector<CK_MECHANISM_TYPE>> Mechanisms(CK_SLOT_ID slot) const;

 private:
  Module(std::string path, void* library, CK_FUNCTION_LIST* functions, bool owns_init)
      : path_(std::move(path)), library_(library), functions_(functions), owns_init_(owns_init) {}

  const std::string path_;
  void* const library_;
  CK_FUNCTION_LIST* const functions_;
  bool owns_init_;
};

// The blank-padded fixed-width PKCS#11 text field as a string, trailing
// blanks and NULs removed.
std::string TrimPadded(const unsigned char* field, size_t size);

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_MODULE_H_
