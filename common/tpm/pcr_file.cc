#include "common/tpm/pcr_file.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hosn::tpm {
namespace {

constexpr size_t kSelectionEntrySize = 8;  // u16 hash, u8 size, u8[4] bitmap, pad
constexpr size_t kSelectionSize = 4 + TPM2_NUM_PCR_BANKS * kSelectionEntrySize;
constexpr size_t kDigestEntrySize = 2 + 64;  // u16 size, u8 buffer[64]
constexpr size_t kDigestsPerList = 8;
constexpr size_t kDigestListSize = 4 + kDigestsPerList * kDigestEntrySize;

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

}  // namespace

absl::StatusOr<PcrFile> ParseTpm2ToolsPcrFile(std::span<const uint8_t> bytes) {
  // 1. The selection.
  if (bytes.size() < kSelectionSize + 4) {
    return absl::InvalidArgumentError("pcr file truncated");
  }
  TPML_PCR_SELECTION tpml = {};
  tpml.count = Le32(bytes.data());
  if (tpml.count > TPM2_NUM_PCR_BANKS) {
    return absl::InvalidArgumentError("pcr file selection has too many banks");
  }
  for (uint32_t i = 0; i < tpml.count; ++i) {
    const uint8_t* entry = bytes.data() + 4 + i * kSelectionEntrySize;
    TPMS_PCR_SELECTION& bank = tpml.pcrSelections[i];
    bank.hash = Le16(entry);
    bank.sizeofSelect = entry[2];
    if (bank.sizeofSelect > TPM2_PCR_SELECT_MAX) {
      return absl::InvalidArgumentError("pcr file selection bitmap too large");
    }
    std::copy(entry + 3, entry + 3 + TPM2_PCR_SELECT_MAX, bank.pcrSelect);
  }
  absl::StatusOr<PcrSelection> selection = PcrSelectionFromTpm(tpml);
  if (!selection.ok()) return selection.status();
  // A bitmap of 4 bytes names PCRs up to 31, and a bank may be listed twice;
  // the values are per bank and PCR, so either would leave a selected PCR
  // without its own value (and the writer refuses both).
  for (size_t i = 0; i < selection->size(); ++i) {
    const PcrBankSelection& bank = (*selection)[i];
    if (!bank.pcrs.empty() && bank.pcrs.back() > kMaxPcrIndex) {
      return absl::InvalidArgumentError(absl::StrCat("pcr file selects ", HashAlgName(bank.hash),
                                                     ":", bank.pcrs.back(), ", above pcr ",
                                                     kMaxPcrIndex));
    }
    for (size_t j = 0; j < i; ++j) {
      if ((*selection)[j].hash == bank.hash) {
        return absl::InvalidArgumentError(
            absl::StrCat("pcr file selects bank ", HashAlgName(bank.hash), " twice"));
      }
    }
  }

  // 2. The digest lists, which must hold exactly one digest per selected PCR.
  const uint32_t list_count = Le32(bytes.data() + kSelectionSize);
  const size_t remaining = bytes.size() - kSelectionSize - 4;
  if (list_count > remaining / kDigestListSize || remaining != list_count * kDigestListSize) {
    return absl::InvalidArgumentError("pcr file digest lists do not match the file size");
  }
  std::vector<Bytes> digests;
  for (uint32_t list = 0; list < list_count; ++list) {
    const uint8_t* base = bytes.data() + kSelectionSize + 4 + list * kDigestListSize;
    const uint32_t count = Le32(base);
    if (count > kDigestsPerList) {
      return absl::InvalidArgumentError("pcr file digest list too long");
    }
    for (uint32_t i = 0; i < count; ++i) {
      const uint8_t* entry = base + 4 + i * kDigestEntrySize;
      const uint16_t size = Le16(entry);
      if (size > 64) return absl::InvalidArgumentError("pcr file digest too long");
      digests.emplace_back(entry + 2, entry + 2 + size);
    }
  }

  // 3. Distribute them over the selection.
  PcrFile file{.selection = *selection, .values = {}};
  size_t next = 0;
  for (const PcrBankSelection& bank : file.selection) {
    for (uint32_t pcr : bank.pcrs) {
      if (next == digests.size()) {
        return absl::InvalidArgumentError("pcr file has fewer digests than selected pcrs");
      }
      if (digests[next].size() != HashDigestSize(bank.hash)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pcr file digest for ", HashAlgName(bank.hash), ":", pcr, " has the wrong size"));
      }
      file.values[bank.hash][pcr] = std::move(digests[next++]);
    }
  }
  if (next != digests.size()) {
    return absl::InvalidArgumentError("pcr file has more digests than selected pcrs");
  }
  return file;
}

}  // namespace hosn::tpm
