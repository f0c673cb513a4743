#include "server/keyd/log.h"

#include <cstdio>
#include <memory>

#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace hosn::keyd {
namespace {

bool g_json = true;
std::shared_ptr<spdlog::logger> g_logger;

// JSON string escaping (RFC 8259): quotes, backslash and control characters.
void AppendEscaped(std::string& out, std::string_view value) {
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
          out += buffer;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

spdlog::level::level_enum ToSpd(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

void InitLogging(std::string_view level, std::string_view format) {
  g_json = format != "text";
  g_logger = spdlog::stderr_logger_mt("hosn-keyd");
  if (g_json) {
    g_logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})",
                          spdlog::pattern_time_type::utc);
  } else {
    g_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  g_logger->set_level(spdlog::level::from_str(std::string(level)));
  g_logger->flush_on(spdlog::level::debug);
}

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (g_logger == nullptr) InitLogging("info", "json");
  if (!g_logger->should_log(ToSpd(level))) return;
  std::string line;
  if (g_json) {
    line += "\"event\":\"";
    AppendEscaped(line, event);
    line += '"';
    for (const LogField& field : fields) {
      line += ",\"";
      AppendEscaped(line, field.first);
      line += "\":\"";
      AppendEscaped(line, field.second);
      line += '"';
    }
  } else {
    line += event;
    for (const LogField& field : fields) {
      line += ' ';
      line += field.first;
      line += "=\"";
      AppendEscaped(line, field.second);
      line += '"';
    }
  }
  g_logger->log(ToSpd(level), "{}", line);
}

}  // namespace hosn::keyd
