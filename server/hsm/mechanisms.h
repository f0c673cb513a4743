// MechanismTable: algorithm names of our metadata -> PKCS#11 mechanism numbers.
//
// Stored metadata and the public API only ever name algorithms ("aes-kwp",
// "ecdsa-p256-sha256"); the number behind each name comes from this table so
// that a vendor with a different numbering (RFC 5649 is 0x210A in SoftHSM and
// 0x210B in PKCS#11 3.0) is one configuration line, not a data migration.
// Key-generation mechanisms live under "keygen:<key algorithm>".
//
// Immutable after Create; thread-safe.
#ifndef HOSN_SERVER_HSM_MECHANISMS_H_
#define HOSN_SERVER_HSM_MECHANISMS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/hsm/pkcs11.h"

namespace hosn::hsm {

struct MechanismTable {
  std::map<std::string, CK_MECHANISM_TYPE, std::less<>> by_name;

  // The defaults (docs/hsm.md) with `overrides` applied. InvalidArgument if
  // an override names an algorithm we do not know.
  static absl::StatusOr<MechanismTable> Create(const std::map<std::string, uint64_t>& overrides);

  // InvalidArgument "unknown algorithm" for a name not in the table.
  absl::StatusOr<CK_MECHANISM_TYPE> Get(std::string_view name) const;
};

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_MECHANISMS_H_
