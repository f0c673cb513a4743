#include "server/keyd/daemon_audit.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/audit/audit_reader.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "server/keyd/log.h"

namespace hosn::keyd {
namespace {

// How often a following stream looks for new entries.
constexpr auto kFollowPoll = std::chrono::milliseconds(100);

keyd::v1::AuditRecord DaemonRecord(std::string_view event) {
  keyd::v1::AuditRecord record;
  record.set_event(std::string(event));
  record.set_actor("daemon");
  record.set_outcome("ok");
  return record;
}

void AddAttribute(keyd::v1::AuditRecord& record, std::string_view name, std::string value) {
  keyd::v1::AuditAttribute* attribute = record.add_attributes();
  attribute->set_name(std::string(name));
  attribute->set_value(std::move(value));
}

}  // namespace

DaemonAudit::DaemonAudit(v1::AuditConfig config, std::vector<std::string> chain_der,
                         HsmBackend* hsm, prometheus::Gauge& healthy_gauge,
                         prometheus::Gauge& signing_gauge, prometheus::Counter& checkpoint_failures,
                         UnhealthyCallback on_unhealthy)
    : config_(std::move(config)),
      chain_der_(std::move(chain_der)),
      signer_(hsm, config_.checkpoint_key_label()),
      healthy_gauge_(healthy_gauge),
      signing_gauge_(signing_gauge),
      checkpoint_failures_(checkpoint_failures),
      on_unhealthy_(std::move(on_unhealthy)) {}

DaemonAudit::~DaemonAudit() {
  if (log_ != nullptr) (void)log_->Close();
}

absl::StatusOr<std::unique_ptr<DaemonAudit>> DaemonAudit::Open(const v1::AuditConfig& config,
                                                               const std::string& replica_id,
                                                               HsmBackend* hsm,
                                                               prometheus::Registry& registry,
                                                               UnhealthyCallback on_unhealthy) {
  HOSN_ASSIGN_OR_RETURN(std::vector<std::string> chain,
                        ReadCertificateChainDer(config.checkpoint_certificate_chain_path()));
  prometheus::Gauge& gauge =
      prometheus::BuildGauge()
          .Name("hosn_keyd_audit_healthy")
          .Help("1 while the audit log accepts entries; 0 after a failed write (restart needed).")
          .Register(registry)
          .Add({});
  prometheus::Gauge& signing =
      prometheus::BuildGauge()
          .Name("hosn_keyd_audit_checkpoint_signing")
          .Help(
              "1 while audit checkpoints are signed; 0 after a failed signature, until one "
              "succeeds (entries meanwhile are unanchored).")
          .Register(registry)
          .Add({});
  prometheus::Counter& failures =
      prometheus::BuildCounter()
          .Name("hosn_keyd_audit_checkpoint_failures_total")
          .Help("Audit checkpoints the HSM could not sign (each retried; recorded in the log).")
          .Register(registry)
          .Add({});
  std::unique_ptr<DaemonAudit> audit(new DaemonAudit(config, std::move(chain), hsm, gauge, signing,
                                                     failures, std::move(on_unhealthy)));
  audit::AuditLogOptions options;
  options.directory = config.directory();
  options.replica_id = replica_id;
  options.max_file_bytes = config.max_file_bytes();
  options.checkpoint_interval = config.checkpoint_interval();
  options.signer = &audit->signer_;
  options.on_checkpoint = [raw = audit.get()](const absl::Status& result) {
    raw->OnCheckpoint(result);
  };
  HOSN_ASSIGN_OR_RETURN(audit->log_, audit::AuditLog::Open(options));
  gauge.Set(1);
  signing.Set(1);
  return audit;
}

void DaemonAudit::ReportUnhealthy(const absl::Status& why) {
  if (reported_unhealthy_.exchange(true)) return;
  healthy_gauge_.Set(0);
  const audit::AuditLogStats stats = log_->stats();
  Log(LogLevel::kError, "audit_unhealthy",
      {{"error", std::string(why.message())},
       {"directory", config_.directory()},
       {"last_sequence", absl::StrCat(stats.last_sequence)},
       {"effect", "audited decisions refused until restart"}});
  if (on_unhealthy_) on_unhealthy_(std::string(why.message()));
}

void DaemonAudit::OnCheckpoint(const absl::Status& result) {
  if (result.ok()) {
    signing_gauge_.Set(1);
    if (checkpoint_failing_.exchange(false)) Log(LogLevel::kInfo, "audit_checkpoint_recovered", {});
    return;
  }
  checkpoint_failures_.Increment();
  signing_gauge_.Set(0);
  if (!checkpoint_failing_.exchange(true)) {
    Log(LogLevel::kWarn, "audit_checkpoint_failed",
        {{"error", std::string(result.message())},
         {"effect",
          "entries unanchored until a checkpoint is signed; failure recorded in the log"}});
  }
}

absl::StatusOr<uint64_t> DaemonAudit::Append(keyd::v1::AuditRecord record) {
  absl::StatusOr<uint64_t> sequence = log_->Append(std::move(record));
  if (!sequence.ok() && !log_->healthy()) ReportUnhealthy(sequence.status());
  return sequence;
}

absl::Status DaemonAudit::RecordStart() {
  const audit::AuditLogStats stats = log_->stats();
  keyd::v1::AuditRecord record = DaemonRecord("daemon.start");
  AddAttribute(record, "previous_sequence", absl::StrCat(stats.last_sequence));
  if (stats.torn_tail_bytes > 0) {
    // A crash cut the last line short; that entry was never acknowledged.
    AddAttribute(record, "torn_tail_bytes", absl::StrCat(stats.torn_tail_bytes));
    Log(LogLevel::kWarn, "audit_torn_tail",
        {{"bytes", absl::StrCat(stats.torn_tail_bytes)},
         {"last_sequence", absl::StrCat(stats.last_sequence)}});
  }
  return Append(std::move(record)).status();
}

absl::Status DaemonAudit::Close() {
  StopStreams();
  if (log_->healthy()) (void)Append(DaemonRecord("daemon.stop"));
  return log_->Close();
}

absl::Status DaemonAudit::StreamAuditLog(
    const api::PeerIdentity&, const keyd::v1::StreamAuditLogRequest& request,
    const std::function<bool(const keyd::v1::StreamAuditLogResponse&)>& write,
    const std::function<bool()>& cancelled) {
  audit::AuditLogReader reader(config_.directory(), request.from_sequence());
  bool broken = false;
  const auto on_entry = [&](uint64_t sequence, std::string_view line) {
    keyd::v1::StreamAuditLogResponse response;
    response.set_sequence(sequence);
    response.set_entry_json(std::string(line));
    broken = !write(response);
    return !broken;
  };
  const auto on_checkpoint = [&](std::string_view line) {
    keyd::v1::StreamAuditLogResponse response;
    response.set_checkpoint_json(std::string(line));
    broken = !write(response);
    return !broken;
  };
  // Without follow: up to the head durable when the call began.
  const uint64_t head = log_->stats().last_sequence;
  HOSN_RETURN_IF_ERROR(reader.Read(head, on_entry, on_checkpoint));
  if (!request.follow()) return absl::OkStatus();
  while (!broken && !cancelled()) {
    if (streams_stopping_.load()) return absl::UnavailableError("audit: daemon stopping");
    std::this_thread::sleep_for(kFollowPoll);
    HOSN_RETURN_IF_ERROR(reader.Read(log_->stats().last_sequence, on_entry, on_checkpoint));
  }
  return absl::OkStatus();
}

absl::StatusOr<keyd::v1::GetCheckpointResponse> DaemonAudit::GetCheckpoint(
    const api::PeerIdentity&, const keyd::v1::GetCheckpointRequest&) {
  // Cover every acknowledged entry; if the HSM cannot sign now, the newest
  // stored checkpoint is still an answer (older, but signed).
  // (A failure is counted and logged by OnCheckpoint.)
  (void)log_->Checkpoint();
  HOSN_ASSIGN_OR_RETURN(std::optional<audit::StoredCheckpoint> stored,
                        audit::ReadLatestCheckpoint(config_.directory()));
  if (!stored.has_value()) return absl::UnavailableError("audit: no signed checkpoint yet");
  HOSN_ASSIGN_OR_RETURN(std::vector<uint8_t> head, HexDecode(stored->checkpoint.head_sha256()));
  keyd::v1::GetCheckpointResponse response;
  response.set_sequence(stored->checkpoint.sequence());
  response.set_head_sha256(std::string(head.begin(), head.end()));
  response.set_checkpoint(stored->line);
  response.set_signature(stored->checkpoint.signature());
  for (const std::string& der : chain_der_) response.add_certificate_chain(der);
  response.set_checkpoint_interval(config_.checkpoint_interval());
  return response;
}

}  // namespace hosn::keyd
