// Routes gRPC's internal log lines to the daemon's logger and counts failed
// TLS handshakes.
//
// gRPC reports a failed handshake (no client certificate, an untrusted or
// expired one, a wrong key usage) only as an error line from its TLS layer;
// no API callback exists for it in gRPC 1.51. RouteGrpcLogs installs a gRPC
// log function that hands every line to `sink` and increments
// ApiMetrics::RecordHandshakeFailure() for each line reporting a failed
// handshake. This is a process-wide setting: call it before starting any
// server, with a metrics object that lives until the process exits (gRPC
// threads may log after every server is gone). Calling it again replaces the
// sink and the metrics.
//
// The sink may run on any gRPC thread, concurrently with itself.
#ifndef HOSN_SERVER_API_GRPC_LOG_H_
#define HOSN_SERVER_API_GRPC_LOG_H_

#include <functional>
#include <string_view>

#include "server/api/metrics.h"

namespace hosn::api {

enum class GrpcLogSeverity { kDebug, kInfo, kError };

using GrpcLogSink = std::function<void(GrpcLogSeverity severity, std::string_view message)>;

void RouteGrpcLogs(GrpcLogSink sink, ApiMetrics* metrics);

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_GRPC_LOG_H_
