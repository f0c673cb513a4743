// Loading and checking hosn-keyd's configuration file (schema:
// proto/hosn/keyd/v1/config.proto).
//
// The file is protobuf text format, or JSON when its name ends in ".json".
// LoadConfig parses it, fills every unset optional field with its documented
// default and validates the result, so the daemon only ever sees a complete,
// checked KeydConfig. The file holds no secret; the PIN is a reference.
//
// Stateless; safe from any thread.
#ifndef HOSN_SERVER_KEYD_CONFIG_H_
#define HOSN_SERVER_KEYD_CONFIG_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/config.pb.h"

namespace hosn::keyd {

// NotFound if the file is missing, InvalidArgument naming the field on a
// parse or validation error.
absl::StatusOr<hosn::keyd::v1::KeydConfig> LoadConfig(const std::string& path);

// Parses `text` (text format, or JSON if `json`), applies defaults and
// validates, as LoadConfig.
absl::StatusOr<hosn::keyd::v1::KeydConfig> ParseConfig(std::string_view text, bool json);

// Fills unset optional fields with their defaults (see config.proto).
void ApplyDefaults(hosn::keyd::v1::KeydConfig& config);

// InvalidArgument naming the first bad field.
absl::Status ValidateConfig(const hosn::keyd::v1::KeydConfig& config);

// The signing keys of a validated `hsm` section, each once: the default key
// (hsm.signing_key_label with its chain) first, then hsm.signing_keys in file
// order. Empty when no signing key is configured.
std::vector<hosn::keyd::v1::SigningKey> ConfiguredSigningKeys(const hosn::keyd::v1::HsmConfig& hsm);

}  // namespace hosn::keyd

#endif  // HOSN_SERVER_KEYD_CONFIG_H_
