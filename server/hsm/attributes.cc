#include "server/hsm/attributes.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "server/hsm/ckr.h"

namespace hosn::hsm {
namespace {

absl::Status Unusable(CK_ATTRIBUTE_TYPE type, std::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("key unusable: ", CkaName(type), " ", ToAbsl(why)));
}

}  // namespace

std::string CkaName(CK_ATTRIBUTE_TYPE type) {
  switch (type) {
    case CKA_CLASS:
      return "CKA_CLASS";
    case CKA_KEY_TYPE:
      return "CKA_KEY_TYPE";
    case CKA_LABEL:
      return "CKA_LABEL";
    case CKA_ID:
      return "CKA_ID";
    case CKA_TOKEN:
      return "CKA_TOKEN";
    case CKA_SENSITIVE:
      return "CKA_SENSITIVE";
    case CKA_EXTRACTABLE:
      return "CKA_EXTRACTABLE";
    case CKA_VALUE_LEN:
      return "CKA_VALUE_LEN";
    case CKA_EC_PARAMS:
      return "CKA_EC_PARAMS";
    case CKA_EC_POINT:
      return "CKA_EC_POINT";
    case CKA_MODULUS:
      return "CKA_MODULUS";
    case CKA_PUBLIC_EXPONENT:
      return "CKA_PUBLIC_EXPONENT";
    default: {
      char buffer[32];
      std::snprintf(buffer, sizeof(buffer), "CKA_0x%lx", type);
      return buffer;
    }
  }
}

absl::StatusOr<CK_ULONG> GetUlongAttribute(Session& session, CK_OBJECT_HANDLE object,
                                           CK_ATTRIBUTE_TYPE type) {
  CK_ULONG value = 0;
  CK_ATTRIBUTE attribute = {type, &value, sizeof(value)};
  HOSN_RETURN_IF_ERROR(
      CkrStatus(session.fn()->C_GetAttributeValue(session.handle(), object, &attribute, 1),
                absl::StrCat("C_GetAttributeValue ", CkaName(type))));
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return Unusable(type, "unavailable");
  if (attribute.ulValueLen != sizeof(CK_ULONG)) return Unusable(type, "has a bad length");
  return value;
}

absl::StatusOr<bool> GetBoolAttribute(Session& session, CK_OBJECT_HANDLE object,
                                      CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attribute = {type, &value, sizeof(value)};
  HOSN_RETURN_IF_ERROR(
      CkrStatus(session.fn()->C_GetAttributeValue(session.handle(), object, &attribute, 1),
                absl::StrCat("C_GetAttributeValue ", CkaName(type))));
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return Unusable(type, "unavailable");
  if (attribute.ulValueLen != sizeof(CK_BBOOL)) return Unusable(type, "has a bad length");
  return value == CK_TRUE;
}

absl::StatusOr<std::string> GetBytesAttribute(Session& session, CK_OBJECT_HANDLE object,
                                              CK_ATTRIBUTE_TYPE type, size_t max_bytes) {
  // 1. Ask for the length; never trust it blindly.
  CK_ATTRIBUTE attribute = {type, nullptr, 0};
  HOSN_RETURN_IF_ERROR(
      CkrStatus(session.fn()->C_GetAttributeValue(session.handle(), object, &attribute, 1),
                absl::StrCat("C_GetAttributeValue ", CkaName(type))));
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return Unusable(type, "unavailable");
  if (attribute.ulValueLen > max_bytes) return Unusable(type, "too long");

  // 2. Read into a buffer of exactly that size.
  std::string value(attribute.ulValueLen, '\0');
  attribute.pValue = value.data();
  HOSN_RETURN_IF_ERROR(
      CkrStatus(session.fn()->C_GetAttributeValue(session.handle(), object, &attribute, 1),
                absl::StrCat("C_GetAttributeValue ", CkaName(type))));
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return Unusable(type, "unavailable");
  if (attribute.ulValueLen > value.size()) return Unusable(type, "changed length");
  value.resize(attribute.ulValueLen);
  return value;
}

}  // namespace hosn::hsm
