#include "server/attest/event_log.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "server/attest/denial.h"

namespace hosn::attest {
namespace {

constexpr size_t kSha1Size = 20;
constexpr std::string_view kSpecIdSignature("Spec ID Event03\0", 16);
constexpr std::string_view kStartupLocalitySignature("StartupLocality\0", 16);

// A bounds-checked little-endian reader. Every read fails, without moving,
// if fewer bytes remain than it needs.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - offset_; }
  bool done() const { return offset_ == bytes_.size(); }

  bool U8(uint8_t* out) {
    if (remaining() < 1) return false;
    *out = bytes_[offset_++];
    return true;
  }
  bool U16(uint16_t* out) {
    if (remaining() < 2) return false;
    *out = static_cast<uint16_t>(bytes_[offset_] | bytes_[offset_ + 1] << 8);
    offset_ += 2;
    return true;
  }
  bool U32(uint32_t* out) {
    if (remaining() < 4) return false;
    *out = 0;
    for (int i = 3; i >= 0; --i) *out = (*out << 8) | bytes_[offset_ + i];
    offset_ += 4;
    return true;
  }
  // A view of the next `n` bytes; no allocation.
  bool Take(size_t n, std::span<const uint8_t>* out) {
    if (remaining() < n) return false;
    *out = bytes_.subspan(offset_, n);
    offset_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
};

absl::Status Malformed(uint32_t number, std::string_view what) {
  return Denied(DenialReason::kMalformedEventLog,
                absl::StrCat("malformed event log: event ", number, ": ", ToAbsl(what)));
}

bool HasPrefix(std::span<const uint8_t> data, std::string_view prefix) {
  return data.size() >= prefix.size() &&
         std::memcmp(data.data(), prefix.data(), prefix.size()) == 0;
}

// Reads one event in the SHA-1 format (TCG_PCClientPCREvent).
absl::StatusOr<Event> ReadSha1Event(Reader& reader, uint32_t number) {
  Event event;
  event.number = number;
  std::span<const uint8_t> digest;
  uint32_t size = 0;
  std::span<const uint8_t> data;
  if (!reader.U32(&event.pcr) || !reader.U32(&event.type) || !reader.Take(kSha1Size, &digest) ||
      !reader.U32(&size)) {
    return Malformed(number, "truncated header");
  }
  if (!reader.Take(size, &data)) return Malformed(number, "event size exceeds the log");
  event.digests.emplace_back(TPM2_ALG_SHA1, tpm::Bytes(digest.begin(), digest.end()));
  event.data.assign(data.begin(), data.end());
  return event;
}

// Parses the TCG_EfiSpecIDEvent in the header event's data.
absl::Status ReadSpecId(std::span<const uint8_t> data, EventLog& log) {
  Reader reader(data);
  std::span<const uint8_t> signature;
  uint32_t platform_class = 0;
  uint8_t minor = 0, major = 0, errata = 0, uintn_size = 0;
  uint32_t count = 0;
  if (!reader.Take(kSpecIdSignature.size(), &signature) || !reader.U32(&platform_class) ||
      !reader.U8(&minor) || !reader.U8(&major) || !reader.U8(&errata) || !reader.U8(&uintn_size) ||
      !reader.U32(&count)) {
    return Malformed(0, "truncated spec id");
  }
  if (count == 0 || count > reader.remaining() / 4) {
    return Malformed(0, "bad algorithm count");
  }
  for (uint32_t i = 0; i < count; ++i) {
    uint16_t alg = 0, size = 0;
    if (!reader.U16(&alg) || !reader.U16(&size)) return Malformed(0, "truncated algorithm");
    const size_t known = tpm::HashDigestSize(alg);
    if (size == 0 || size > 64 || (known != 0 && known != size)) {
      return Malformed(0, absl::StrCat("bad digest size for ", tpm::HashAlgName(alg)));
    }
    for (const auto& [seen, unused] : log.algorithms) {
      if (seen == alg) return Malformed(0, "algorithm listed twice");
    }
    log.algorithms.emplace_back(alg, size);
  }
  uint8_t vendor_size = 0;
  std::span<const uint8_t> vendor;
  if (!reader.U8(&vendor_size) || !reader.Take(vendor_size, &vendor) || !reader.done()) {
    return Malformed(0, "bad vendor info");
  }
  return absl::OkStatus();
}

// Reads one TCG_PCR_EVENT2.
absl::StatusOr<Event> ReadEvent2(Reader& reader, const EventLog& log, uint32_t number) {
  Event event;
  event.number = number;
  uint32_t count = 0;
  if (!reader.U32(&event.pcr) || !reader.U32(&event.type) || !reader.U32(&count)) {
    return Malformed(number, "truncated header");
  }
  if (count > log.algorithms.size()) return Malformed(number, "too many digests");
  for (uint32_t i = 0; i < count; ++i) {
    uint16_t alg = 0;
    if (!reader.U16(&alg)) return Malformed(number, "truncated digest");
    auto declared = std::find_if(log.algorithms.begin(), log.algorithms.end(),
                                 [alg](const auto& entry) { return entry.first == alg; });
    if (declared == log.algorithms.end()) {
      return Malformed(number, absl::StrCat("undeclared digest ", tpm::HashAlgName(alg)));
    }
    for (const auto& [seen, unused] : event.digests) {
      if (seen == alg) return Malformed(number, "digest listed twice");
    }
    std::span<const uint8_t> digest;
    if (!reader.Take(declared->second, &digest)) return Malformed(number, "truncated digest");
    event.digests.emplace_back(alg, tpm::Bytes(digest.begin(), digest.end()));
  }
  uint32_t size = 0;
  std::span<const uint8_t> data;
  if (!reader.U32(&size)) return Malformed(number, "truncated event size");
  if (!reader.Take(size, &data)) return Malformed(number, "event size exceeds the log");
  event.data.assign(data.begin(), data.end());
  return event;
}

// The value a PCR holds after reset.
tpm::Bytes ResetValue(uint32_t pcr, size_t size, const std::optional<uint8_t>& locality) {
  tpm::Bytes value(size, (pcr >= 17 && pcr <= 22) ? 0xff : 0x00);
  if (pcr == 0 && locality.has_value()) value.back() = *locality;
  return value;
}

}  // namespace

absl::StatusOr<EventLog> ParseEventLog(std::span<const uint8_t> bytes) {
  EventLog log;
  Reader reader(bytes);
  if (reader.done()) return Malformed(0, "empty log");

  // 1. The first event, always in SHA-1 format, tells the format.
  HOSN_ASSIGN_OR_RETURN(Event first, ReadSha1Event(reader, 0));
  const bool spec_id =
      first.type == kEvNoAction && first.pcr == 0 && HasPrefix(first.data, kSpecIdSignature);
  if (spec_id) {
    log.crypto_agile = true;
    HOSN_RETURN_IF_ERROR(ReadSpecId(first.data, log));
  } else {
    log.algorithms.emplace_back(TPM2_ALG_SHA1, kSha1Size);
    if (first.pcr > tpm::kMaxPcrIndex) return Malformed(0, "pcr index out of range");
    log.events.push_back(std::move(first));
  }

  // 2. Every later event.
  for (uint32_t number = 1; !reader.done(); ++number) {
    absl::StatusOr<Event> event =
        log.crypto_agile ? ReadEvent2(reader, log, number) : ReadSha1Event(reader, number);
    if (!event.ok()) return event.status();
    if (event->pcr > tpm::kMaxPcrIndex) return Malformed(number, "pcr index out of range");
    if (event->type == kEvNoAction && event->pcr == 0 &&
        HasPrefix(event->data, kStartupLocalitySignature)) {
      if (event->data.size() != kStartupLocalitySignature.size() + 1) {
        return Malformed(number, "bad startup locality event");
      }
      if (log.startup_locality.has_value()) return Malformed(number, "second startup locality");
      log.startup_locality = event->data.back();
    }
    log.events.push_back(*std::move(event));
  }
  return log;
}

absl::StatusOr<tpm::PcrValues> ReplayEventLog(const EventLog& log) {
  tpm::PcrValues values;
  for (const auto& [alg, size] : log.algorithms) {
    if (tpm::HashDigestSize(alg) == 0) continue;  // a bank we cannot compute
    tpm::PcrBank& bank = values[alg];
    if (log.startup_locality.has_value()) bank[0] = ResetValue(0, size, log.startup_locality);
    for (const Event& event : log.events) {
      if (event.type == kEvNoAction) continue;  // informational, never extended
      auto digest = std::find_if(event.digests.begin(), event.digests.end(),
                                 [alg = alg](const auto& d) { return d.first == alg; });
      if (digest == event.digests.end()) {
        // The log does not measure this bank in full: it cannot vouch for it.
        values.erase(alg);
        break;
      }
      auto [it, inserted] = bank.try_emplace(event.pcr, tpm::Bytes());
      if (inserted) it->second = ResetValue(event.pcr, size, log.startup_locality);
      tpm::Bytes message = it->second;
      message.insert(message.end(), digest->second.begin(), digest->second.end());
      HOSN_ASSIGN_OR_RETURN(it->second, tpm::HashBytes(alg, message));
    }
  }
  return values;
}

absl::Status CheckEventDigests(const EventLog& log) {
  for (const Event& event : log.events) {
    if (event.type != kEvSeparator && event.type != kEvEfiAction &&
        event.type != kEvEfiVariableDriverConfig) {
      continue;
    }
    for (const auto& [alg, digest] : event.digests) {
      if (tpm::HashDigestSize(alg) == 0) continue;
      HOSN_ASSIGN_OR_RETURN(tpm::Bytes expected, tpm::HashBytes(alg, event.data));
      if (expected != digest) {
        return Denied(DenialReason::kEventDigestMismatch,
                      absl::StrFormat("event digest mismatch: event %d type 0x%08x %s",
                                      event.number, event.type, tpm::HashAlgName(alg)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckReplayMatchesQuote(const EventLog& log, const tpm::PcrValues& replayed,
                                     const tpm::PcrValues& quoted, std::span<const uint32_t> pcrs) {
  bool any_bank = false;
  for (const auto& [alg, quoted_bank] : quoted) {
    auto replayed_bank = replayed.find(alg);
    if (replayed_bank == replayed.end()) continue;
    any_bank = true;
    for (uint32_t pcr : pcrs) {
      auto quoted_value = quoted_bank.find(pcr);
      if (quoted_value == quoted_bank.end()) continue;
      auto value = replayed_bank->second.find(pcr);
      const tpm::Bytes expected =
          value != replayed_bank->second.end()
              ? value->second
              : ResetValue(pcr, tpm::HashDigestSize(alg), log.startup_locality);
      if (expected != quoted_value->second) {
        return Denied(DenialReason::kEventLogPcrMismatch,
                      absl::StrCat("event log pcr mismatch: ", tpm::HashAlgName(alg), ":", pcr));
      }
    }
  }
  if (!any_bank) {
    return Denied(DenialReason::kEventLogPcrMismatch,
                  "event log pcr mismatch: the log has none of the quoted banks");
  }
  return absl::OkStatus();
}

}  // namespace hosn::attest
