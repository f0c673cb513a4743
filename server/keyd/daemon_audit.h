// DaemonAudit: hosn-keyd's audit log. It owns the hash-chained AuditLog
// (server/audit) with its HSM checkpoint signer, and serves it to the API
// layer twice: as the api::AuditSink every decision is appended to before its
// reply, and as the api::AuditBackend auditors stream it from.
//
// The log is required: Open fails if the directory cannot be opened or the
// log fails its checks (docs/daemon.md gives the exit codes). If a write or
// sync fails later the log stays unhealthy until a restart: every audited
// decision is then refused with UNAVAILABLE (by the API layer), the gauge
// hosn_keyd_audit_healthy drops to 0, the health callback fires once (the
// daemon reports NOT_SERVING) and the reason is logged.
//
// A checkpoint the HSM cannot sign does not stop decisions (the entries are
// durable and the log records the failure as an entry): each failed attempt
// increments hosn_keyd_audit_checkpoint_failures_total, the gauge
// hosn_keyd_audit_checkpoint_signing drops to 0 until a checkpoint is signed
// again, and audit_checkpoint_failed / audit_checkpoint_recovered are logged
// once per outage.
//
// Lifecycle: Open, RecordStart, ... serve ..., StopStreams, (server
// shutdown), Close (records daemon.stop and signs a final checkpoint).
// Ownership: borrows the HsmBackend, which must outlive this object. Thread
// safety: Append, StreamAuditLog, GetCheckpoint, healthy and StopStreams may
// run concurrently; RecordStart and Close are called by the daemon's main
// thread only.
#ifndef HOSN_SERVER_KEYD_DAEMON_AUDIT_H_
#define HOSN_SERVER_KEYD_DAEMON_AUDIT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/config.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "server/api/audit_backend.h"
#include "server/api/audit_sink.h"
#include "server/audit/audit_log.h"
#include "server/keyd/checkpoint_signer.h"
#include "server/keyd/hsm_backend.h"

namespace hosn::keyd {

class DaemonAudit final : public api::AuditSink, public api::AuditBackend {
 public:
  // Called once when the log turns unhealthy, with the reason.
  using UnhealthyCallback = std::function<void(const std::string& why)>;

  // Opens (or creates) the log in config.directory. InvalidArgument for an
  // unreadable checkpoint certificate chain; the errors of AuditLog::Open
  // (DataLoss: the log failed its checks; Internal: I/O).
  static absl::StatusOr<std::unique_ptr<DaemonAudit>> Open(const v1::AuditConfig& config,
                                                           const std::string& replica_id,
                                                           HsmBackend* hsm,
                                                           prometheus::Registry& registry,
                                                           UnhealthyCallback on_unhealthy);
  ~DaemonAudit() override;

  // Appends daemon.start (replica, torn tail bytes cut at open, the sequence
  // numbering continues from).
  absl::Status RecordStart();
  // Ends every StreamAuditLog that follows the log.
  void StopStreams() { streams_stopping_.store(true); }
  // Appends daemon.stop and closes the log with a final signed checkpoint.
  absl::Status Close();

  bool healthy() const { return log_->healthy(); }
  audit::AuditLogStats stats() const { return log_->stats(); }

  // api::AuditSink
  absl::StatusOr<uint64_t> Append(keyd::v1::AuditRecord record) override;

  // api::AuditBackend. Streaming polls the log's durable head.
  absl::Status StreamAuditLog(
      const api::PeerIdentity& caller, const keyd::v1::StreamAuditLogRequest& request,
      const std::function<bool(const keyd::v1::StreamAuditLogResponse&)>& write,
      const std::function<bool()>& cancelled) override;
  absl::StatusOr<keyd::v1::GetCheckpointResponse> GetCheckpoint(
      const api::PeerIdentity& caller, const keyd::v1::GetCheckpointRequest& request) override;

 private:
  DaemonAudit(v1::AuditConfig config, std::vector<std::string> chain_der, HsmBackend* hsm,
              prometheus::Gauge& healthy_gauge, prometheus::Gauge& signing_gauge,
              prometheus::Counter& checkpoint_failures, UnhealthyCallback on_unhealthy);
  // Reports the first failure: gauge, callback, log line.
  void ReportUnhealthy(const absl::Status& why);
  // The log's on_checkpoint: metrics, and a log line when signing stops or
  // resumes. Runs under the log's write lock.
  void OnCheckpoint(const absl::Status& result);

  const v1::AuditConfig config_;
  const std::vector<std::string> chain_der_;
  HsmCheckpointSigner signer_;
  prometheus::Gauge& healthy_gauge_;
  prometheus::Gauge& signing_gauge_;
  prometheus::Counter& checkpoint_failures_;
  const UnhealthyCallback on_unhealthy_;
  std::unique_ptr<audit::AuditLog> log_;
  std::atomic<bool> reported_unhealthy_{false};
  std::atomic<bool> streams_stopping_{false};
  std::atomic<bool> checkpoint_failing_{false};
};

}  // namespace hosn::keyd

#endif  // HOSN_SERVER_KEYD_DAEMON_AUDIT_H_
