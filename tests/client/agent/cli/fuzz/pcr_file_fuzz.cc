// libFuzzer target: the tpm2-tools PCR file reader (tpm::ParseTpm2ToolsPcrFile)
// that `hosnctl policy set --pcrs` and the quote tooling read, paired with
// the writer `hosn-agent tpm-info` uses (agent::SerializePcrFile).
// Invariants: every file the reader accepts, the writer can write back, and
// the reader parses that copy to the same selection and values; each
// selected PCR has its own value (no PCR selected twice, none above 23).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "client/agent/cli/pcr_file_writer.h"
#include "common/tpm/pcr_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn;
  absl::StatusOr<tpm::PcrFile> file = tpm::ParseTpm2ToolsPcrFile({data, size});
  if (!file.ok()) {
    if (file.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  size_t selected = 0;
  for (const tpm::PcrBankSelection& bank : file->selection) {
    for (uint32_t pcr : bank.pcrs) {
      if (pcr > tpm::kMaxPcrIndex) std::abort();
      ++selected;
    }
  }
  size_t values = 0;
  for (const auto& [bank, pcrs] : file->values) values += pcrs.size();
  if (values != selected) std::abort();

  absl::StatusOr<std::string> written = agent::SerializePcrFile(file->selection, file->values);
  if (!written.ok()) std::abort();
  absl::StatusOr<tpm::PcrFile> again = tpm::ParseTpm2ToolsPcrFile(
      {reinterpret_cast<const uint8_t*>(written->data()), written->size()});
  if (!again.ok() || again->selection != file->selection || again->values != file->values) {
    std::abort();
  }
  return 0;
}
