#include "client/agent/cli/flags.h"

#include <cstdlib>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/absl_compat.h"

namespace hosn::agent {

std::string ParsedArgs::Get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second.back();
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::set<std::string>& value_flags,
                                     const std::set<std::string>& switches,
                                     const std::set<std::string>& required) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.rest.assign(args.begin() + static_cast<ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (switches.count(name) != 0) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      parsed.switches.insert(name);
      continue;
    }
    if (value_flags.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!value.has_value()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    parsed.values[name].push_back(*value);
  }
  for (const std::string& name : required) {
    if (!parsed.Has(name))
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  }
  return parsed;
}

absl::StatusOr<tpm::PcrSelection> ParsePcrSelection(const std::string& text) {
  tpm::PcrSelection selection;
  for (absl::string_view bank_text : absl::StrSplit(ToAbsl(text), '+')) {
    std::vector<absl::string_view> parts = absl::StrSplit(bank_text, absl::MaxSplits(':', 1));
    if (parts.size() != 2 || parts[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("pcr selection: bad bank '", bank_text, "'"));
    }
    auto alg = tpm::HashAlgFromName(std::string(parts[0]));
    if (!alg.ok())
      return absl::InvalidArgumentError(absl::StrCat("pcr selection: ", alg.status().message()));
    tpm::PcrBankSelection bank;
    bank.hash = *alg;
    for (absl::string_view index_text : absl::StrSplit(parts[1], ',')) {
      uint32_t index = 0;
      if (!absl::SimpleAtoi(index_text, &index) || index > tpm::kMaxPcrIndex ||
          (!bank.pcrs.empty() && index <= bank.pcrs.back())) {
        return absl::InvalidArgumentError(
            absl::StrCat("pcr selection: bad index '", index_text, "' (0-23, ascending)"));
      }
      bank.pcrs.push_back(index);
    }
    selection.push_back(std::move(bank));
  }
  return selection;
}

absl::StatusOr<absl::Duration> ParsePositiveDuration(const std::string& text) {
  absl::Duration duration;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(ToAbsl(text), &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(ToAbsl(text), &duration)) {
    return absl::InvalidArgumentError(absl::StrCat("bad duration '", text, "'"));
  }
  if (duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("duration must be positive: '", text, "'"));
  }
  return duration;
}

}  // namespace hosn::agent
