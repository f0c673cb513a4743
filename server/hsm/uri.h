// RFC 7512 PKCS#11 URIs: which module to load and which token to use.
//
// A token is chosen by what it says about itself (label, serial,
// manufacturer, model), never by a slot number: slot ids move when a token is
// re-initialised or a device is re-plugged. The parser accepts the path
// attributes token, serial, manufacturer, model, object, id and type, and the
// query attributes module-path and pin-source. Values are %-decoded; `id` is
// kept as raw bytes. Attributes we do not know are refused rather than
// ignored, so a typo never widens the selection.
//
// Plain value type; thread-compatible.
#ifndef HOSN_SERVER_HSM_URI_H_
#define HOSN_SERVER_HSM_URI_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hosn::hsm {

struct Pkcs11Uri {
  // Token selection (path part). An absent attribute matches any value.
  std::optional<std::string> token;         // CK_TOKEN_INFO.label
  std::optional<std::string> serial;        // CK_TOKEN_INFO.serialNumber
  std::optional<std::string> manufacturer;  // CK_TOKEN_INFO.manufacturerID
  std::optional<std::string> model;         // CK_TOKEN_INFO.model
  // Object selection (path part): CKA_LABEL, CKA_ID (raw bytes), and the
  // object class as written in the URI ("secret-key", "private", "public",
  // "cert", "data").
  std::optional<std::string> object;
  std::optional<std::string> id;
  std::optional<std::string> type;
  // Query part.
  std::optional<std::string> module_path;
  std::optional<std::string> pin_source;

  // True if the URI names at least a token label or a serial: the minimum we
  // accept for choosing a token.
  bool SelectsToken() const { return token.has_value() || serial.has_value(); }
};

// Parses "pkcs11:token=hosn;serial=1234?module-path=/usr/lib/x.so".
// InvalidArgument on a missing "pkcs11:" scheme, a bad %-escape, a repeated
// attribute, an unknown attribute, "slot-id" (refused on purpose) or an
// unknown object type. The message names the attribute, never a PIN.
absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(std::string_view uri);

// The canonical text form, with every reserved byte %-encoded. Never contains
// a PIN (pin-value is not supported at all).
std::string FormatPkcs11Uri(const Pkcs11Uri& uri);

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_URI_H_
