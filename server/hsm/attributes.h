// Reading object attributes safely (case P6).
//
// A module may answer C_GetAttributeValue with CKR_OK and a length of
// CK_UNAVAILABLE_INFORMATION; these helpers treat that as "absent" and
// refuse the key as unusable, never allocating from the reported length.
// Lengths above a caller-chosen bound are refused too. CK_ULONG attributes
// are always read into a CK_ULONG with sizeof(CK_ULONG) and rejected if the
// module reports any other length.
//
// Stateless; a Session is used by one thread at a time.
#ifndef HOSN_SERVER_HSM_ATTRIBUTES_H_
#define HOSN_SERVER_HSM_ATTRIBUTES_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/session_pool.h"

namespace hosn::hsm {

// "CKA_LABEL", or "CKA_0x..." for others.
std::string CkaName(CK_ATTRIBUTE_TYPE type);

// FailedPrecondition "key unusable: CKA_x unavailable" if the module reports
// CK_UNAVAILABLE_INFORMATION or a length other than sizeof(CK_ULONG); the
// CKR status if the call fails.
absl::StatusOr<CK_ULONG> GetUlongAttribute(Session& session, CK_OBJECT_HANDLE object,
                                           CK_ATTRIBUTE_TYPE type);
absl::StatusOr<bool> GetBoolAttribute(Session& session, CK_OBJECT_HANDLE object,
                                      CK_ATTRIBUTE_TYPE type);
// As above; also FailedPrecondition if the value is longer than `max_bytes`.
absl::StatusOr<std::string> GetBytesAttribute(Session& session, CK_OBJECT_HANDLE object,
                                              CK_ATTRIBUTE_TYPE type, size_t max_bytes);

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_ATTRIBUTES_H_
