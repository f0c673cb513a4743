// libFuzzer target: ParseEnvelope and ParseStatement (the payload of an
// accepted envelope, and the raw bytes) on arbitrary input. Invariants: an
// accepted envelope has exactly one signature with a chain; an accepted
// statement is canonical (re-serializes to the same bytes) and valid.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/lineage/lineage.h"

namespace {

void CheckStatement(std::string_view bytes) {
  auto statement = hosn::lineage::ParseStatement(bytes);
  if (!statement.ok()) return;
  auto again = hosn::lineage::SerializeStatement(*statement);
  if (!again.ok() || *again != bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckStatement(bytes);
  auto envelope = hosn::lineage::ParseEnvelope(bytes);
  if (!envelope.ok()) return 0;
  if (envelope->signatures_size() != 1 || envelope->signatures(0).certificate_chain_size() == 0) {
    std::abort();
  }
  CheckStatement(envelope->payload());
  return 0;
}
