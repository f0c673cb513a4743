// libFuzzer target: the TCG event-log parser, replay and the digest checks
// on arbitrary bytes. Any crash, sanitizer report or a parse that succeeds on
// a log whose replay then fails unexpectedly is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "server/attest/denial.h"
#include "server/attest/event_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn::attest;
  absl::StatusOr<EventLog> log = ParseEventLog({data, size});
  if (!log.ok()) {
    // Every refusal must carry its named reason.
    if (GetDenialReason(log.status()) != DenialReason::kMalformedEventLog) abort();
    return 0;
  }
  (void)CheckEventDigests(*log);
  absl::StatusOr<hosn::tpm::PcrValues> replayed = ReplayEventLog(*log);
  if (!replayed.ok()) abort();  // a parsed log always replays
  const uint32_t pcrs[] = {0, 1, 2, 3, 4, 5, 6, 7};
  (void)CheckReplayMatchesQuote(*log, *replayed, *replayed, pcrs);
  return 0;
}
