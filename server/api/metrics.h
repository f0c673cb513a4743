// The daemon's own Prometheus metrics, declared in one place.
//
//   hosn_keyd_rpcs_total{method,code}                 counter
//   hosn_keyd_rpc_duration_seconds{method}            histogram
//   hosn_keyd_tls_handshake_failures_total            counter
//   hosn_keyd_tls_reloads_total{result}               counter (ok|error)
//   hosn_keyd_certificate_expiry_timestamp_seconds{certificate}  gauge
//                                                     (server|client_ca)
//   hosn_keyd_hsm_ready                               gauge (1 ready, 0 not)
//   hosn_keyd_release_denials_total{reason}           counter (attest denial label)
//   hosn_keyd_audit_write_failures_total              counter
//
// Labels never carry secrets, key labels or peer names: the method is the
// full gRPC method name and the code its canonical name. The HSM pool's own
// metrics are added to the same registry by the daemon.
//
// Thread safety: every method may be called from any thread.
#ifndef HOSN_SERVER_API_METRICS_H_
#define HOSN_SERVER_API_METRICS_H_

#include <memory>
#include <string_view>

#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace hosn::api {

class ApiMetrics {
 public:
  explicit ApiMetrics(std::shared_ptr<prometheus::Registry> registry);

  void RecordRpc(std::string_view method, grpc::StatusCode code, absl::Duration latency);
  void RecordHandshakeFailure();
  void RecordTlsReload(bool ok);
  // `certificate` is "server" or "client_ca".
  void SetCertificateExpiry(std::string_view certificate, absl::Time not_after);
  void SetHsmReady(bool ready);
  // `reason` is an attest::DenialReasonLabel ("pcr mismatch").
  void RecordDenial(std::string_view reason);
  void RecordAuditFailure();

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Counter& handshake_failures_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Family<prometheus::Gauge>& expiry_;
  prometheus::Gauge& hsm_ready_;
  prometheus::Family<prometheus::Counter>& denials_;
  prometheus::Counter& audit_failures_;
};

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_METRICS_H_
