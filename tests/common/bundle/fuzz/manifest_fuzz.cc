// libFuzzer target: ParseManifest on arbitrary bytes. Invariant: whatever it
// accepts is canonical (re-serializes to the same bytes) and obeys the
// validation rules.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/bundle/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto manifest = hosn::bundle::ParseManifest(bytes);
  if (!manifest.ok()) return 0;
  auto again = hosn::bundle::SerializeManifest(*manifest);
  if (!again.ok() || *again != bytes) std::abort();
  return 0;
}
