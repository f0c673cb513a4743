#include "tests/server/attest/test_data.h"

#include <google/protobuf/util/json_util.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/absl_compat.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "tests/testing/test_paths.h"

namespace hosn::attest::testing {

absl::StatusOr<tpm::Bytes> ReadSharedBytes(const std::string& relative) {
  HOSN_ASSIGN_OR_RETURN(std::string text,
                        ReadFile(hosn::testing::SharedDataPath(relative), 16 << 20));
  return tpm::Bytes(text.begin(), text.end());
}

absl::StatusOr<google::protobuf::Struct> ReadSharedJson(const std::string& relative) {
  HOSN_ASSIGN_OR_RETURN(std::string text,
                        ReadFile(hosn::testing::SharedDataPath(relative), 16 << 20));
  google::protobuf::Struct out;
  if (!google::protobuf::util::JsonStringToMessage(text, &out).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad json in ", relative));
  }
  return out;
}

absl::StatusOr<tpm::PcrBank> PcrBankFromJson(const google::protobuf::Struct& object) {
  tpm::PcrBank bank;
  for (const auto& [key, value] : object.fields()) {
    uint32_t pcr = 0;
    if (!absl::SimpleAtoi(key, &pcr)) return absl::InvalidArgumentError("bad pcr key");
    HOSN_ASSIGN_OR_RETURN(bank[pcr], HexDecode(value.string_value()));
  }
  return bank;
}

absl::StatusOr<tpm::PcrValues> ReadYamlPcrs(const std::string& relative) {
  HOSN_ASSIGN_OR_RETURN(std::string text,
                        ReadFile(hosn::testing::SharedDataPath(relative), 16 << 20));
  tpm::PcrValues values;
  bool in_pcrs = false;
  TPM2_ALG_ID bank = TPM2_ALG_NULL;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!in_pcrs) {
      in_pcrs = line == "pcrs:";
      continue;
    }
    if (!absl::StartsWith(line, "  ")) break;  // end of the section
    absl::string_view body = absl::StripAsciiWhitespace(line);
    if (!absl::StartsWith(line, "    ")) {  // "  sha1:"
      HOSN_ASSIGN_OR_RETURN(bank, tpm::HashAlgFromName(FromAbsl(absl::StripSuffix(body, ":"))));
      continue;
    }
    std::vector<absl::string_view> parts = absl::StrSplit(body, ':');  // "0  : 0xab.."
    uint32_t pcr = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(absl::StripAsciiWhitespace(parts[0]), &pcr)) {
      return absl::InvalidArgumentError(absl::StrCat("bad pcr line in ", relative));
    }
    absl::string_view hex = absl::StripAsciiWhitespace(parts[1]);
    if (!absl::ConsumePrefix(&hex, "0x")) return absl::InvalidArgumentError("bad pcr value");
    HOSN_ASSIGN_OR_RETURN(values[bank][pcr], HexDecode(FromAbsl(hex)));
  }
  if (values.empty()) return absl::NotFoundError(absl::StrCat("no pcrs section in ", relative));
  return values;
}

}  // namespace hosn::attest::testing
