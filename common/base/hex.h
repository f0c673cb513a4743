// Lowercase hexadecimal encoding for public values (digests, key ids,
// fingerprints). Never use it on secret bytes: the output is meant for logs.
#ifndef HOSN_COMMON_BASE_HEX_H_
#define HOSN_COMMON_BASE_HEX_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hosn {

std::string HexEncode(std::span<const uint8_t> bytes);
std::string HexEncode(std::string_view bytes);

// Accepts upper or lower case; InvalidArgument on odd length or a non-hex
// character.
absl::StatusOr<std::vector<uint8_t>> HexDecode(std::string_view hex);

}  // namespace hosn

#endif  // HOSN_COMMON_BASE_HEX_H_
