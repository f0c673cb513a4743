#include "server/api/grpc_log.h"

#include <grpc/support/log.h>

#include <utility>

namespace hosn::api {
namespace {

// Set once by RouteGrpcLogs before any gRPC thread runs; read-only afterwards.
GrpcLogSink* g_sink = nullptr;
ApiMetrics* g_metrics = nullptr;

void Forward(gpr_log_func_args* args) {
  const std::string_view message = args->message != nullptr ? args->message : "";
  if (g_metrics != nullptr && message.find("Handshake failed") != std::string_view::npos) {
    g_metrics->RecordHandshakeFailure();
  }
  if (g_sink == nullptr || !*g_sink) return;
  GrpcLogSeverity severity = GrpcLogSeverity::kInfo;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) severity = GrpcLogSeverity::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) severity = GrpcLogSeverity::kError;
  (*g_sink)(severity, message);
}

}  // namespace

void RouteGrpcLogs(GrpcLogSink sink, ApiMetrics* metrics) {
  delete g_sink;
  g_sink = new GrpcLogSink(std::move(sink));
  g_metrics = metrics;
  gpr_set_log_function(&Forward);
}

}  // namespace hosn::api
