// Reader for the PCR file that tpm2-tools writes (`tpm2_quote -o`,
// `tpm2_pcrread -o` with the default "serialized" format), so quotes produced
// by the tpm2-tools CLI can be verified.
//
// The format is a host-endian memory image of tss2 structures, on
// little-endian x86/ARM hosts:
//   TPML_PCR_SELECTION  132 bytes: u32 count, 16 x {u16 hash, u8 sizeofSelect,
//                       u8 pcrSelect[4], 1 pad byte}
//   u32 n               number of TPML_DIGEST lists that follow
//   n x TPML_DIGEST     532 bytes each: u32 count, 8 x {u16 size, u8 buffer[64]}
// The digests fill the selection bank by bank in selection order, ascending
// PCR index within a bank. Because it is a memory image rather than a TPM wire
// structure, tss2-mu cannot read it; this reader checks every count and size.
// Stateless and thread-safe.
#ifndef HOSN_COMMON_TPM_PCR_FILE_H_
#define HOSN_COMMON_TPM_PCR_FILE_H_

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"

namespace hosn::tpm {

struct PcrFile {
  PcrSelection selection;
  PcrValues values;
};

// InvalidArgument naming the field if the file is truncated, has trailing
// bytes, names an unknown bank, names a bank twice or a PCR above 23, or its
// digests do not match the selection in number or size.
absl::StatusOr<PcrFile> ParseTpm2ToolsPcrFile(std::span<const uint8_t> bytes);

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_PCR_FILE_H_
