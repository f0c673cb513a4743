// TCG PC Client boot event logs (binary_bios_measurements): parsing, replay
// to PCR values, and the checks that tie a log to a quote.
//
// Two formats are read. The crypto-agile format (TCG PC Client Platform
// Firmware Profile, section 10) starts with a TCG_PCClientPCREvent in SHA-1
// format whose data is a TCG_EfiSpecIDEvent ("Spec ID Event03") listing the
// digest algorithms and sizes; every later event is a TCG_PCR_EVENT2 with a
// TPML_DIGEST_VALUES. A log whose first event is not that header is read in
// the older SHA-1-only format. All integers in a log are little-endian (it is
// a firmware memory image, not a TPM wire structure, so tss2-mu does not
// apply). Every length is checked against the bytes that remain before it is
// used, and nothing is allocated beyond what the input holds.
//
// Replay extends, per bank, every event except EV_NO_ACTION into its PCR,
// starting from zero (or from the locality byte for PCR0 when a
// StartupLocality event is present). docs/attestation.md describes the
// format and the reasons. Stateless and thread-safe.
#ifndef HOSN_SERVER_ATTEST_EVENT_LOG_H_
#define HOSN_SERVER_ATTEST_EVENT_LOG_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"

namespace hosn::attest {

inline constexpr uint32_t kEvNoAction = 0x00000003;
inline constexpr uint32_t kEvSeparator = 0x00000004;
inline constexpr uint32_t kEvEfiAction = 0x80000007;
inline constexpr uint32_t kEvEfiVariableDriverConfig = 0x80000001;

struct Event {
  uint32_t number = 0;  // position in the log; the header event is 0
  uint32_t pcr = 0;
  uint32_t type = 0;
  std::vector<std::pair<TPM2_ALG_ID, tpm::Bytes>> digests;
  tpm::Bytes data;
};

struct EventLog {
  bool crypto_agile = false;
  // Digest algorithms and sizes from the Spec ID event ({sha1, 20} for the
  // SHA-1 format).
  std::vector<std::pair<TPM2_ALG_ID, uint16_t>> algorithms;
  // Locality from a StartupLocality event, if the log has one.
  std::optional<uint8_t> startup_locality;
  // Every event after the header, in log order.
  std::vector<Event> events;
};

// Denied(kMalformedEventLog) naming the event number and field when the log
// is truncated, a size or count exceeds what remains, a digest algorithm is
// not declared in the header, a PCR index is above 23, or the log is empty.
absl::StatusOr<EventLog> ParseEventLog(std::span<const uint8_t> bytes);

// The PCR values the log produces, per declared bank, for every PCR that at
// least one event extends (and PCR0 if a locality was recorded). A bank that
// some measured event carries no digest for is left out: the log does not
// account for it.
// Banks whose algorithm this project does not know are left out. Internal
// only if hashing fails.
absl::StatusOr<tpm::PcrValues> ReplayEventLog(const EventLog& log);

// Checks, for the event types whose digest is defined as the hash of their
// data (EV_SEPARATOR, EV_EFI_ACTION, EV_EFI_VARIABLE_DRIVER_CONFIG), that every
// digest is that hash. Denied(kEventDigestMismatch) naming the event number,
// type and bank otherwise.
absl::Status CheckEventDigests(const EventLog& log);

// Checks that `replayed` reproduces `quoted` for every PCR in `pcrs` that the
// quote covers, in every quoted bank the log declares; a PCR no event extends
// must still hold its reset value. Denied(kEventLogPcrMismatch) naming bank
// and PCR otherwise; Denied(kEventLogPcrMismatch) too if the log declares none
// of the quoted banks.
absl::Status CheckReplayMatchesQuote(const EventLog& log, const tpm::PcrValues& replayed,
                                     const tpm::PcrValues& quoted, std::span<const uint32_t> pcrs);

}  // namespace hosn::attest

#endif  // HOSN_SERVER_ATTEST_EVENT_LOG_H_
