// Structured logging for hosn-keyd, over spdlog (see docs/daemon.md for why).
//
// One line per event on stderr (journald adds its own timestamp and unit):
//   json: {"ts":"2026-12-03T17:00:00.123Z","level":"info","event":"rpc","method":"..."}
//   text: 2026-12-03T17:00:00.123Z info rpc method=...
// Callers pass an event name and key/value fields. Values are escaped; the
// logger never receives secrets: no PIN, key bytes, request payloads or
// certificates are ever passed to it, only labels, identities (URI SANs),
// codes and sizes.
//
// InitLogging once at start; Log from any thread afterwards.
#ifndef HOSN_SERVER_KEYD_LOG_H_
#define HOSN_SERVER_KEYD_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace hosn::keyd {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// `level` is "debug", "info", "warn" or "error"; `format` "json" or "text".
void InitLogging(std::string_view level, std::string_view format);

using LogField = std::pair<std::string_view, std::string>;

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace hosn::keyd

#endif  // HOSN_SERVER_KEYD_LOG_H_
