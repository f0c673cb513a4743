#include "server/hsm/uri.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/absl_compat.h"

namespace hosn::hsm {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(std::string_view text, std::string_view name) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) {
      return absl::InvalidArgumentError(absl::StrCat("pkcs11 uri: bad %-escape in ", ToAbsl(name)));
    }
    const int high = HexValue(text[i + 1]);
    const int low = HexValue(text[i + 2]);
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError(absl::StrCat("pkcs11 uri: bad %-escape in ", ToAbsl(name)));
    }
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

bool IsUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  return out;
}

absl::Status Assign(std::optional<std::string>& field, std::string_view name,
                    std::string_view raw_value) {
  if (field.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("pkcs11 uri: repeated ", ToAbsl(name)));
  }
  absl::StatusOr<std::string> value = PercentDecode(raw_value, name);
  if (!value.ok()) return value.status();
  field = *std::move(value);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(std::string_view uri) {
  constexpr std::string_view kScheme = "pkcs11:";
  if (uri.size() < kScheme.size() || uri.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError("pkcs11 uri must start with pkcs11:");
  }
  std::string_view rest = uri.substr(kScheme.size());
  std::string_view path = rest;
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    path = rest.substr(0, q);
    query = rest.substr(q + 1);
  }

  Pkcs11Uri parsed;
  // 1. Path attributes, separated by ';'.
  for (absl::string_view piece : absl::StrSplit(ToAbsl(path), ';', absl::SkipEmpty())) {
    const std::string_view item = FromAbsl(piece);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("pkcs11 uri: attribute without value: ", ToAbsl(item)));
    }
    const std::string_view name = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    absl::Status status;
    if (name == "token") {
      status = Assign(parsed.token, name, value);
    } else if (name == "serial") {
      status = Assign(parsed.serial, name, value);
    } else if (name == "manufacturer") {
      status = Assign(parsed.manufacturer, name, value);
    } else if (name == "model") {
      status = Assign(parsed.model, name, value);
    } else if (name == "object") {
      status = Assign(parsed.object, name, value);
    } else if (name == "id") {
      status = Assign(parsed.id, name, value);
    } else if (name == "type") {
      status = Assign(parsed.type, name, value);
      if (status.ok() && *parsed.type != "secret-key" && *parsed.type != "private" &&
          *parsed.type != "public" && *parsed.type != "cert" && *parsed.type != "data") {
        return absl::InvalidArgumentError(
            absl::StrCat("pkcs11 uri: unknown object type ", *parsed.type));
      }
    } else if (name == "slot-id" || name == "slot-description" || name == "slot-manufacturer") {
      return absl::InvalidArgumentError(absl::StrCat(
          "pkcs11 uri: ", ToAbsl(name), " is not accepted; select the token by label or serial"));
    } else if (name == "library-description" || name == "library-manufacturer" ||
               name == "library-version") {
      continue;  // Describes the module, which module-path already pins.
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("pkcs11 uri: unknown attribute ", ToAbsl(name)));
    }
    if (!status.ok()) return status;
  }

  // 2. Query attributes, separated by '&'.
  for (absl::string_view piece : absl::StrSplit(ToAbsl(query), '&', absl::SkipEmpty())) {
    const std::string_view item = FromAbsl(piece);
    const size_t eq = item.find('=');
    const std::string_view name = item.substr(0, eq);
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("pkcs11 uri: attribute without value: ", ToAbsl(name)));
    }
    const std::string_view value = item.substr(eq + 1);
    absl::Status status;
    if (name == "module-path") {
      status = Assign(parsed.module_path, name, value);
    } else if (name == "pin-source") {
      status = Assign(parsed.pin_source, name, value);
    } else if (name == "pin-value") {
      return absl::InvalidArgumentError(
          "pkcs11 uri: pin-value is refused; use a pin file or credential");
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("pkcs11 uri: unknown query attribute ", ToAbsl(name)));
    }
    if (!status.ok()) return status;
  }
  return parsed;
}

std::string FormatPkcs11Uri(const Pkcs11Uri& uri) {
  std::vector<std::string> path;
  auto add = [&path](std::string_view name, const std::optional<std::string>& value) {
    if (value) path.push_back(absl::StrCat(ToAbsl(name), "=", PercentEncode(*value)));
  };
  add("model", uri.model);
  add("manufacturer", uri.manufacturer);
  add("serial", uri.serial);
  add("token", uri.token);
  add("object", uri.object);
  add("type", uri.type);
  add("id", uri.id);
  std::string text = absl::StrCat("pkcs11:", absl::StrJoin(path, ";"));
  std::vector<std::string> query;
  if (uri.module_path)
    query.push_back(absl::StrCat("module-path=", PercentEncode(*uri.module_path)));
  if (uri.pin_source) query.push_back(absl::StrCat("pin-source=", PercentEncode(*uri.pin_source)));
  if (!query.empty()) absl::StrAppend(&text, "?", absl::StrJoin(query, "&"));
  return text;
}

}  // namespace hosn::hsm
