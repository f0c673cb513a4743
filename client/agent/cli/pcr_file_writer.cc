#include "client/agent/cli/pcr_file_writer.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace hosn::agent {

absl::StatusOr<std::string> SerializePcrFile(const tpm::PcrSelection& selection,
                                             const tpm::PcrValues& values) {
  auto tpml = tpm::PcrSelectionToTpm(selection);
  if (!tpml.ok()) return tpml.status();
  std::vector<TPML_DIGEST> lists;
  for (const tpm::PcrBankSelection& bank : selection) {
    for (uint32_t index : bank.pcrs) {
      auto bank_values = values.find(bank.hash);
      if (bank_values == values.end() || bank_values->second.count(index) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("pcr file: no value for ", tpm::HashAlgName(bank.hash), ":", index));
      }
      const tpm::Bytes& digest = bank_values->second.at(index);
      if (digest.size() != tpm::HashDigestSize(bank.hash)) {
        return absl::InvalidArgumentError(absl::StrCat("pcr file: wrong digest size for ",
                                                       tpm::HashAlgName(bank.hash), ":", index));
      }
      if (lists.empty() || lists.back().count == 8) lists.push_back(TPML_DIGEST{});
      TPM2B_DIGEST& slot = lists.back().digests[lists.back().count++];
      slot.size = static_cast<UINT16>(digest.size());
      std::memcpy(slot.buffer, digest.data(), digest.size());
    }
  }
  std::string out(reinterpret_cast<const char*>(&*tpml), sizeof(TPML_PCR_SELECTION));
  const uint32_t count = static_cast<uint32_t>(lists.size());
  out.append(reinterpret_cast<const char*>(&count), sizeof(count));
  for (const TPML_DIGEST& list : lists) {
    out.append(reinterpret_cast<const char*>(&list), sizeof(list));
  }
  return out;
}

}  // namespace hosn::agent
