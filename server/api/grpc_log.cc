#include "server/api/grpc_log.h"

#include <grpc/support/log.h>

#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace hosn::api {
namespace {

// Replaced only by RouteGrpcLogs. A replaced sink is kept alive until exit
// (in g_all_sinks): a gRPC thread may still be inside it.
std::atomic<GrpcLogSink*> g_sink{nullptr};
absl::Mutex g_sinks_mu;
std::vector<std::unique_ptr<GrpcLogSink>>* g_all_sinks ABSL_GUARDED_BY(g_sinks_mu) = nullptr;
std::atomic<ApiMetrics*> g_metrics{nullptr};

void Forward(gpr_log_func_args* args) {
  const std::string_view message = args->message != nullptr ? args->message : "";
  ApiMetrics* metrics = g_metrics.load(std::memory_order_acquire);
  if (metrics != nullptr && message.find("Handshake failed") != std::string_view::npos) {
    metrics->RecordHandshakeFailure();
  }
  GrpcLogSink* sink = g_sink.load(std::memory_order_acquire);
  if (sink == nullptr || !*sink) return;
  GrpcLogSeverity severity = GrpcLogSeverity::kInfo;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) severity = GrpcLogSeverity::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) severity = GrpcLogSeverity::kError;
  (*sink)(severity, message);
}

}  // namespace

void RouteGrpcLogs(GrpcLogSink sink, ApiMetrics* metrics) {
  absl::MutexLock lock(&g_sinks_mu);
  if (g_all_sinks == nullptr) g_all_sinks = new std::vector<std::unique_ptr<GrpcLogSink>>();
  g_all_sinks->push_back(std::make_unique<GrpcLogSink>(std::move(sink)));
  g_sink.store(g_all_sinks->back().get(), std::memory_order_release);
  g_metrics.store(metrics, std::memory_order_release);
  gpr_set_log_function(&Forward);
}

}  // namespace hosn::api
