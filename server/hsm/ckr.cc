#include "server/hsm/ckr.h"

#include <cstdio>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"

namespace hosn::hsm {
namespace {

constexpr char kCkrPayloadUrl[] = "hosn.dev/pkcs11-ckr";

#define HOSN_CKR_CASE(name) \
  case name:                \
    return #name

const char* KnownCkrName(CK_RV rv) {
  switch (rv) {
    HOSN_CKR_CASE(CKR_OK);
    HOSN_CKR_CASE(CKR_CANCEL);
    HOSN_CKR_CASE(CKR_HOST_MEMORY);
    HOSN_CKR_CASE(CKR_SLOT_ID_INVALID);
    HOSN_CKR_CASE(CKR_GENERAL_ERROR);
    HOSN_CKR_CASE(CKR_FUNCTION_FAILED);
    HOSN_CKR_CASE(CKR_ARGUMENTS_BAD);
    HOSN_CKR_CASE(CKR_ATTRIBUTE_READ_ONLY);
    HOSN_CKR_CASE(CKR_ATTRIBUTE_SENSITIVE);
    HOSN_CKR_CASE(CKR_ATTRIBUTE_TYPE_INVALID);
    HOSN_CKR_CASE(CKR_ATTRIBUTE_VALUE_INVALID);
    HOSN_CKR_CASE(CKR_DATA_INVALID);
    HOSN_CKR_CASE(CKR_DATA_LEN_RANGE);
    HOSN_CKR_CASE(CKR_DEVICE_ERROR);
    HOSN_CKR_CASE(CKR_DEVICE_MEMORY);
    HOSN_CKR_CASE(CKR_DEVICE_REMOVED);
    HOSN_CKR_CASE(CKR_ENCRYPTED_DATA_INVALID);
    HOSN_CKR_CASE(CKR_ENCRYPTED_DATA_LEN_RANGE);
    HOSN_CKR_CASE(CKR_FUNCTION_NOT_SUPPORTED);
    HOSN_CKR_CASE(CKR_KEY_HANDLE_INVALID);
    HOSN_CKR_CASE(CKR_KEY_SIZE_RANGE);
    HOSN_CKR_CASE(CKR_KEY_TYPE_INCONSISTENT);
    HOSN_CKR_CASE(CKR_KEY_FUNCTION_NOT_PERMITTED);
    HOSN_CKR_CASE(CKR_KEY_NOT_WRAPPABLE);
    HOSN_CKR_CASE(CKR_KEY_UNEXTRACTABLE);
    HOSN_CKR_CASE(CKR_MECHANISM_INVALID);
    HOSN_CKR_CASE(CKR_MECHANISM_PARAM_INVALID);
    HOSN_CKR_CASE(CKR_OBJECT_HANDLE_INVALID);
    HOSN_CKR_CASE(CKR_OPERATION_ACTIVE);
    HOSN_CKR_CASE(CKR_OPERATION_NOT_INITIALIZED);
    HOSN_CKR_CASE(CKR_PIN_INCORRECT);
    HOSN_CKR_CASE(CKR_PIN_LOCKED);
    HOSN_CKR_CASE(CKR_SESSION_CLOSED);
    HOSN_CKR_CASE(CKR_SESSION_COUNT);
    HOSN_CKR_CASE(CKR_SESSION_HANDLE_INVALID);
    HOSN_CKR_CASE(CKR_SESSION_READ_ONLY);
    HOSN_CKR_CASE(CKR_SIGNATURE_INVALID);
    HOSN_CKR_CASE(CKR_SIGNATURE_LEN_RANGE);
    HOSN_CKR_CASE(CKR_TEMPLATE_INCOMPLETE);
    HOSN_CKR_CASE(CKR_TEMPLATE_INCONSISTENT);
    HOSN_CKR_CASE(CKR_TOKEN_NOT_PRESENT);
    HOSN_CKR_CASE(CKR_TOKEN_NOT_RECOGNIZED);
    HOSN_CKR_CASE(CKR_UNWRAPPING_KEY_HANDLE_INVALID);
    HOSN_CKR_CASE(CKR_UNWRAPPING_KEY_SIZE_RANGE);
    HOSN_CKR_CASE(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
    HOSN_CKR_CASE(CKR_USER_ALREADY_LOGGED_IN);
    HOSN_CKR_CASE(CKR_USER_NOT_LOGGED_IN);
    HOSN_CKR_CASE(CKR_USER_PIN_NOT_INITIALIZED);
    HOSN_CKR_CASE(CKR_USER_TYPE_INVALID);
    HOSN_CKR_CASE(CKR_WRAPPED_KEY_INVALID);
    HOSN_CKR_CASE(CKR_WRAPPED_KEY_LEN_RANGE);
    HOSN_CKR_CASE(CKR_WRAPPING_KEY_HANDLE_INVALID);
    HOSN_CKR_CASE(CKR_WRAPPING_KEY_SIZE_RANGE);
    HOSN_CKR_CASE(CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
    HOSN_CKR_CASE(CKR_BUFFER_TOO_SMALL);
    HOSN_CKR_CASE(CKR_CRYPTOKI_NOT_INITIALIZED);
    HOSN_CKR_CASE(CKR_CRYPTOKI_ALREADY_INITIALIZED);
    HOSN_CKR_CASE(CKR_CURVE_NOT_SUPPORTED);
    default:
      return nullptr;
  }
}

#undef HOSN_CKR_CASE

absl::StatusCode CodeFor(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_DEVICE_ERROR:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SESSION_COUNT:
      return absl::StatusCode::kUnavailable;
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_WRAPPED_KEY_INVALID:
    case CKR_WRAPPED_KEY_LEN_RANGE:
      return absl::StatusCode::kDataLoss;
    case CKR_MECHANISM_INVALID:
    case CKR_CURVE_NOT_SUPPORTED:
    case CKR_FUNCTION_NOT_SUPPORTED:
      return absl::StatusCode::kUnimplemented;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
      return absl::StatusCode::kPermissionDenied;
    case CKR_KEY_SIZE_RANGE:
    case CKR_DATA_LEN_RANGE:
      return absl::StatusCode::kInvalidArgument;
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_KEY_UNEXTRACTABLE:
    case CKR_KEY_NOT_WRAPPABLE:
    case CKR_WRAPPING_KEY_TYPE_INCONSISTENT:
    case CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

std::string CkrName(CK_RV rv) {
  if (const char* name = KnownCkrName(rv)) return name;
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "CKR_0x%lx", rv);
  return buffer;
}

absl::Status CkrStatus(CK_RV rv, std::string_view what) {
  if (rv == CKR_OK) return absl::OkStatus();
  absl::Status status(CodeFor(rv), absl::StrCat(ToAbsl(what), ": ", CkrName(rv)));
  status.SetPayload(kCkrPayloadUrl, absl::Cord(std::to_string(rv)));
  return status;
}

std::optional<CK_RV> CkrOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kCkrPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  return static_cast<CK_RV>(std::stoull(std::string(*payload)));
}

bool IsRecoverable(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_DEVICE_ERROR:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SLOT_ID_INVALID:
      return true;
    default:
      return false;
  }
}

bool IsRecoverable(const absl::Status& status) {
  std::optional<CK_RV> rv = CkrOf(status);
  return rv.has_value() && IsRecoverable(*rv);
}

bool NeedsModuleReinit(const absl::Status& status) {
  std::optional<CK_RV> rv = CkrOf(status);
  return rv.has_value() &&
         (*rv == CKR_DEVICE_REMOVED || *rv == CKR_TOKEN_NOT_PRESENT || *rv == CKR_DEVICE_ERROR ||
          *rv == CKR_CRYPTOKI_NOT_INITIALIZED || *rv == CKR_SLOT_ID_INVALID);
}

}  // namespace hosn::hsm
