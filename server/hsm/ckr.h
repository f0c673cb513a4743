// PKCS#11 return values as absl::Status.
//
// CkrStatus maps a CK_RV to the status code the KeyStore documents and keeps
// the raw value as a payload, so the session pool can tell a dead session
// (recover and retry) from a bad request (fail). Messages carry the CKR name,
// never data. Stateless; thread-safe.
#ifndef HOSN_SERVER_HSM_CKR_H_
#define HOSN_SERVER_HSM_CKR_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/hsm/pkcs11.h"

namespace hosn::hsm {

// "CKR_SESSION_HANDLE_INVALID", or "CKR_0x..." for numbers we do not name.
std::string CkrName(CK_RV rv);

// OK for CKR_OK; otherwise a status whose message is "<what>: <CKR name>"
// and whose payload records `rv`.
absl::Status CkrStatus(CK_RV rv, std::string_view what);

// The CK_RV recorded by CkrStatus, if any.
std::optional<CK_RV> CkrOf(const absl::Status& status);

// True for the return values after which the session, the login or the whole
// token must be re-established: CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_USER_NOT_LOGGED_IN (and CKR_DEVICE_ERROR,
// CKR_CRYPTOKI_NOT_INITIALIZED, CKR_SLOT_ID_INVALID: slot ids move when a
// device comes back).
bool IsRecoverable(CK_RV rv);
bool IsRecoverable(const absl::Status& status);

// True for the return values after which the module itself should be
// re-initialised (the device went away).
bool NeedsModuleReinit(const absl::Status& status);

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_CKR_H_
