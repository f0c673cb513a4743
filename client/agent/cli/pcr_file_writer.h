// Writes PCR values in the file format `tpm2_pcrread -o` uses (a memory
// image of TPML_PCR_SELECTION, a u32 count and TPML_DIGEST lists; see
// common/tpm/pcr_file.h, whose reader parses it back). `hosn-agent tpm-info`
// writes it; `hosnctl policy set` reads it as a reference set.
//
// Stateless and thread-safe.
#ifndef HOSN_CLIENT_AGENT_CLI_PCR_FILE_WRITER_H_
#define HOSN_CLIENT_AGENT_CLI_PCR_FILE_WRITER_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"

namespace hosn::agent {

// The file bytes for `values` of `selection`. InvalidArgument for a bad
// selection or a missing or wrongly sized value.
absl::StatusOr<std::string> SerializePcrFile(const tpm::PcrSelection& selection,
                                             const tpm::PcrValues& values);

}  // namespace hosn::agent

#endif  // HOSN_CLIENT_AGENT_CLI_PCR_FILE_WRITER_H_
