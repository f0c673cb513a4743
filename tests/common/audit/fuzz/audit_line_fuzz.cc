// libFuzzer target: ParseRecord and ParseCheckpoint, the strict parse of one
// stored audit line (hosnctl audit verify and the daemon's recovery read
// lines from files others can write). audit_verify_fuzzer drives them
// through the whole verifier; this target checks each line's own contract.
// Invariants: a refusal is InvalidArgument; an accepted line serializes
// (SerializeRecord/SerializeCheckpoint, the writer) to a line without a
// newline that parses to an equal message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/audit/audit_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace {

template <typename Parse, typename Serialize>
void CheckRoundTrip(std::string_view line, Parse parse, Serialize serialize) {
  auto parsed = parse(line);
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return;
  }
  absl::StatusOr<std::string> written = serialize(*parsed);
  if (!written.ok() || written->find('\n') != std::string::npos) std::abort();
  auto again = parse(*written);
  if (!again.ok() || !google::protobuf::util::MessageDifferencer::Equals(*again, *parsed)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn::audit;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  CheckRoundTrip(
      line, [](std::string_view l) { return ParseRecord(l); },
      [](const hosn::keyd::v1::AuditRecord& r) { return SerializeRecord(r); });
  CheckRoundTrip(
      line, [](std::string_view l) { return ParseCheckpoint(l); },
      [](const hosn::keyd::v1::AuditCheckpoint& c) { return SerializeCheckpoint(c); });
  return 0;
}
