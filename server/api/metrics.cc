#include "server/api/metrics.h"

#include <string>

#include "server/api/status_mapping.h"

namespace hosn::api {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

}  // namespace

ApiMetrics::ApiMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      rpcs_(prometheus::BuildCounter()
                .Name("hosn_keyd_rpcs_total")
                .Help("RPCs handled, by full method name and gRPC status code.")
                .Register(*registry_)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("hosn_keyd_rpc_duration_seconds")
                        .Help("Handler latency of RPCs, by full method name.")
                        .Register(*registry_)),
      handshake_failures_(prometheus::BuildCounter()
                              .Name("hosn_keyd_tls_handshake_failures_total")
                              .Help("TLS handshakes on the gRPC listener that failed.")
                              .Register(*registry_)
                              .Add({})),
      reloads_(prometheus::BuildCounter()
                   .Name("hosn_keyd_tls_reloads_total")
                   .Help("Changed TLS files seen on disk, by result (ok: published).")
                   .Register(*registry_)),
      expiry_(prometheus::BuildGauge()
                  .Name("hosn_keyd_certificate_expiry_timestamp_seconds")
                  .Help("notAfter of the served certificate and of the earliest client CA.")
                  .Register(*registry_)),
      hsm_ready_(prometheus::BuildGauge()
                     .Name("hosn_keyd_hsm_ready")
                     .Help("1 while the HSM token is reachable and logged in, else 0.")
                     .Register(*registry_)
                     .Add({})),
      denials_(prometheus::BuildCounter()
                   .Name("hosn_keyd_release_denials_total")
                   .Help("Attestations refused, by named reason (the node is told only 'denied').")
                   .Register(*registry_)),
      audit_failures_(prometheus::BuildCounter()
                          .Name("hosn_keyd_audit_write_failures_total")
                          .Help("Audit entries that could not be made durable; the RPC failed.")
                          .Register(*registry_)
                          .Add({})) {
  // Create both reload series up front so a dashboard sees zeros, not gaps.
  reloads_.Add({{"result", "ok"}});
  reloads_.Add({{"result", "error"}});
}

void ApiMetrics::RecordRpc(std::string_view method, grpc::StatusCode code, absl::Duration latency) {
  const std::string method_label(method);
  rpcs_.Add({{"method", method_label}, {"code", std::string(GrpcCodeName(code))}}).Increment();
  rpc_duration_.Add({{"method", method_label}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void ApiMetrics::RecordHandshakeFailure() { handshake_failures_.Increment(); }

void ApiMetrics::RecordTlsReload(bool ok) {
  reloads_.Add({{"result", ok ? "ok" : "error"}}).Increment();
}

void ApiMetrics::SetCertificateExpiry(std::string_view certificate, absl::Time not_after) {
  expiry_.Add({{"certificate", std::string(certificate)}})
      .Set(static_cast<double>(absl::ToUnixSeconds(not_after)));
}

void ApiMetrics::SetHsmReady(bool ready) { hsm_ready_.Set(ready ? 1 : 0); }

void ApiMetrics::RecordDenial(std::string_view reason) {
  denials_.Add({{"reason", std::string(reason)}}).Increment();
}

void ApiMetrics::RecordAuditFailure() { audit_failures_.Increment(); }

}  // namespace hosn::api
