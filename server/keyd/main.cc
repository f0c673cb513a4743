// hosn-keyd: the key broker daemon. Wires the configuration, the HSM backend,
// the mTLS gRPC server and the metrics listener together, then waits for
// signals. Exit codes are documented in docs/daemon.md.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/api/api_server.h"
#include "server/api/grpc_log.h"
#include "server/api/metrics.h"
#include "server/api/status_mapping.h"
#include "server/api/tls_material.h"
#include "server/keyd/config.h"
#include "server/keyd/daemon_audit.h"
#include "server/keyd/hsm_backend.h"
#include "server/keyd/log.h"
#include "server/keyd/pool_collector.h"
#include "server/release/release_service.h"

ABSL_FLAG(std::string, config, "", "Path of the configuration file (text proto or .json).");
ABSL_FLAG(std::string, listen_address, "", "Overrides listen_address of the config file.");
ABSL_FLAG(std::string, metrics_listen_address, "",
          "Overrides metrics.listen_address of the config file.");
ABSL_FLAG(std::string, log_level, "", "Overrides logging.level (debug, info, warn, error).");
ABSL_FLAG(std::string, state_dir, "",
          "Private runtime folder for the TLS staging files (default $RUNTIME_DIRECTORY, "
          "else /run/hosn-keyd).");
ABSL_FLAG(std::string, ready_file, "",
          "If set, written once serving starts: {\"grpc_port\":N,\"metrics_port\":M}.");
ABSL_FLAG(bool, check_config, false, "Validate the configuration file and exit.");

namespace hosn::keyd {
namespace {

namespace v1 = ::hosn::keyd::v1;

// Exit codes (sysexits.h values; docs/daemon.md).
constexpr int kExitOk = 0;
constexpr int kExitUsage = 64;
constexpr int kExitDataErr = 65;  // the audit log failed its checks at open
constexpr int kExitUnavailable = 69;
constexpr int kExitSoftware = 70;
constexpr int kExitOsError = 71;
constexpr int kExitCantCreate = 73;  // the audit log cannot be opened or written
constexpr int kExitConfig = 78;

std::string StatusText(const absl::Status& status) { return std::string(status.message()); }

// No core dumps and no ptrace attach by other processes of the same user.
bool HardenProcess() {
  const rlimit no_core{0, 0};
  return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 && setrlimit(RLIMIT_CORE, &no_core) == 0;
}

int Run(int argc, char** argv) {
  // 1. Process hardening before anything reads a secret.
  if (!HardenProcess()) {
    Log(LogLevel::kError, "harden_failed");
    return kExitOsError;
  }
  absl::ParseCommandLine(argc, argv);
  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) {
    Log(LogLevel::kError, "usage", {{"error", "--config is required"}});
    return kExitUsage;
  }

  // 2. Configuration: file, then flag overrides, then validation again.
  absl::StatusOr<v1::KeydConfig> loaded = LoadConfig(config_path);
  if (!loaded.ok()) {
    Log(LogLevel::kError, "config_invalid",
        {{"path", config_path}, {"error", StatusText(loaded.status())}});
    return kExitConfig;
  }
  v1::KeydConfig config = *std::move(loaded);
  if (!absl::GetFlag(FLAGS_listen_address).empty()) {
    config.set_listen_address(absl::GetFlag(FLAGS_listen_address));
  }
  if (!absl::GetFlag(FLAGS_metrics_listen_address).empty()) {
    config.mutable_metrics()->set_listen_address(absl::GetFlag(FLAGS_metrics_listen_address));
  }
  if (!absl::GetFlag(FLAGS_log_level).empty()) {
    config.mutable_logging()->set_level(absl::GetFlag(FLAGS_log_level));
  }
  if (absl::Status valid = ValidateConfig(config); !valid.ok()) {
    Log(LogLevel::kError, "config_invalid", {{"path", config_path}, {"error", StatusText(valid)}});
    return kExitConfig;
  }
  InitLogging(config.logging().level(), config.logging().format());
  if (absl::GetFlag(FLAGS_check_config)) {
    Log(LogLevel::kInfo, "config_ok", {{"path", config_path}});
    return kExitOk;
  }

  // 3. Signals are taken by sigwait in this thread only: block them before
  // any other thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // 4. Metrics and gRPC's own log lines.
  auto registry = std::make_shared<prometheus::Registry>();
  static api::ApiMetrics* metrics = new api::ApiMetrics(registry);  // lives until exit
  api::RouteGrpcLogs(
      [](api::GrpcLogSeverity severity, std::string_view message) {
        const LogLevel level = severity == api::GrpcLogSeverity::kError  ? LogLevel::kWarn
                               : severity == api::GrpcLogSeverity::kInfo ? LogLevel::kInfo
                                                                         : LogLevel::kDebug;
        Log(level, "grpc", {{"message", std::string(message)}});
      },
      metrics);

  // 5. TLS material: validated, staged, watched.
  std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) {
    const char* runtime = std::getenv("RUNTIME_DIRECTORY");
    state_dir = runtime != nullptr ? runtime : "/run/hosn-keyd";
  }
  auto on_reload = [](const absl::Status& status, const api::TlsMaterialInfo& info) {
    metrics->RecordTlsReload(status.ok());
    if (status.ok()) {
      metrics->SetCertificateExpiry("server", info.server_not_after);
      metrics->SetCertificateExpiry("client_ca", info.earliest_ca_not_after);
      Log(LogLevel::kInfo, "tls_loaded",
          {{"subject", info.server_subject},
           {"not_after",
            absl::FormatTime(absl::RFC3339_sec, info.server_not_after, absl::UTCTimeZone())}});
    } else {
      Log(LogLevel::kError, "tls_reload_refused",
          {{"error", StatusText(status)}, {"kept", info.server_subject}});
    }
  };
  absl::StatusOr<std::unique_ptr<api::TlsMaterialWatcher>> watcher =
      api::TlsMaterialWatcher::Create(
          {config.tls().server_certificate_path(), config.tls().server_private_key_path(),
           config.tls().client_ca_bundle_path()},
          state_dir + "/tls", absl::Seconds(config.tls().reload_interval_seconds()), on_reload);
  if (!watcher.ok()) {
    Log(LogLevel::kError, "tls_invalid", {{"error", StatusText(watcher.status())}});
    return kExitConfig;
  }

  // 6. The HSM; an unreachable token is not fatal (health says NOT_SERVING).
  api::ApiServer* server_for_health = nullptr;
  absl::Mutex health_mu;
  bool hsm_ready = false;     // guarded by health_mu
  bool audit_healthy = true;  // guarded by health_mu
  auto on_readiness = [&](bool ready, const absl::Status& why) {
    metrics->SetHsmReady(ready);
    if (ready) {
      Log(LogLevel::kInfo, "hsm_ready");
    } else {
      Log(LogLevel::kWarn, "hsm_unreachable", {{"error", StatusText(why)}});
    }
    absl::MutexLock lock(&health_mu);
    hsm_ready = ready;
    if (server_for_health != nullptr) server_for_health->SetServing(ready && audit_healthy);
  };
  absl::StatusOr<std::unique_ptr<HsmBackend>> backend = HsmBackend::Create(
      config.hsm(), absl::Milliseconds(config.limits().max_rpc_duration_ms()), on_readiness);
  if (!backend.ok()) {
    Log(LogLevel::kError, "hsm_config_invalid", {{"error", StatusText(backend.status())}});
    return kExitConfig;
  }
  auto pool_collector = std::make_shared<PoolCollector>(backend->get());

  // 6b. The audit log: required. Decisions are refused once it cannot write.
  absl::StatusOr<std::unique_ptr<DaemonAudit>> audit = DaemonAudit::Open(
      config.audit(), config.replica_id(), backend->get(), *registry, [&](const std::string&) {
        absl::MutexLock lock(&health_mu);
        audit_healthy = false;
        if (server_for_health != nullptr) server_for_health->SetServing(false);
      });
  if (!audit.ok()) {
    Log(LogLevel::kError, "audit_open_failed",
        {{"directory", config.audit().directory()}, {"error", StatusText(audit.status())}});
    return audit.status().code() == absl::StatusCode::kDataLoss ? kExitDataErr : kExitCantCreate;
  }
  if (absl::Status started = (*audit)->RecordStart(); !started.ok()) {
    Log(LogLevel::kError, "audit_open_failed",
        {{"directory", config.audit().directory()}, {"error", StatusText(started)}});
    return kExitCantCreate;
  }

  // 6c. Attested release and enrollment, if configured (docs/release.md).
  std::unique_ptr<release::ReleaseService> release_service;
  if (!config.release().release_key_label().empty()) {
    absl::StatusOr<std::string> ca_pem =
        ReadFile(config.release().manifest_ca_bundle_path(), 1 << 20);
    if (!ca_pem.ok()) {
      Log(LogLevel::kError, "release_config_invalid", {{"error", StatusText(ca_pem.status())}});
      return kExitConfig;
    }
    release::ReleaseServiceOptions release_options;
    release_options.release_key_label = config.release().release_key_label();
    release_options.challenge_mac_key_label = config.hsm().challenge_mac_key_label();
    release_options.kdf = config.release().kdf();
    release_options.challenge_ttl = absl::Seconds(config.release().challenge_ttl_seconds());
    release_options.enrollment_ttl = absl::Seconds(config.release().enrollment_ttl_seconds());
    release_options.manifest_ca_pem = *std::move(ca_pem);
    if (!config.release().ek_ca_bundle_path().empty()) {
      absl::StatusOr<std::string> ek_ca_pem =
          ReadFile(config.release().ek_ca_bundle_path(), 1 << 20);
      if (!ek_ca_pem.ok()) {
        Log(LogLevel::kError, "release_config_invalid",
            {{"field", "release.ek_ca_bundle_path"}, {"error", StatusText(ek_ca_pem.status())}});
        return kExitConfig;
      }
      release_options.ek_ca_pem = *std::move(ek_ca_pem);
    }
    release_options.ek_crl_bundle_path = config.release().ek_crl_bundle_path();
    HsmBackend* hsm_backend = backend->get();
    absl::StatusOr<std::unique_ptr<release::ReleaseService>> created =
        release::ReleaseService::Create(std::move(release_options),
                                        [hsm_backend] { return hsm_backend->SharedStore(); });
    if (!created.ok()) {
      Log(LogLevel::kError, "release_config_invalid", {{"error", StatusText(created.status())}});
      return kExitConfig;
    }
    release_service = *std::move(created);
    (*backend)->EnableStationWrap(config.release().release_key_label(), config.release().kdf());
  }

  // 7. Metrics listener (plain HTTP; loopback or a management network only).
  std::unique_ptr<prometheus::Exposer> exposer;
  int metrics_port = 0;
  if (!config.metrics().listen_address().empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(config.metrics().listen_address(), 2);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "metrics_listen_failed",
          {{"address", config.metrics().listen_address()}, {"error", e.what()}});
      return kExitUnavailable;
    }
    exposer->RegisterCollectable(registry);
    exposer->RegisterCollectable(pool_collector);
    metrics_port = exposer->GetListeningPorts().empty() ? 0 : exposer->GetListeningPorts()[0];
  }

  // 8. The gRPC server.
  api::ApiServerOptions options;
  options.listen_address = config.listen_address();
  options.credentials = (*watcher)->ServerCredentials(absl::Seconds(1));
  options.max_request_bytes = static_cast<int>(config.limits().max_request_bytes());
  options.max_concurrent_streams = static_cast<int>(config.limits().max_concurrent_streams());
  options.observer = [](const api::RpcRecord& rpc) {
    const bool ok = rpc.code == grpc::StatusCode::OK;
    Log(ok ? LogLevel::kInfo : LogLevel::kWarn, "rpc",
        {{"method", rpc.method},
         {"peer", rpc.peer_uri},
         {"code", std::string(api::GrpcCodeName(rpc.code))},
         {"message", rpc.message},
         {"ms", absl::StrCat(absl::ToDoubleMilliseconds(rpc.latency))}});
  };
  absl::StatusOr<std::unique_ptr<api::ApiServer>> server =
      api::ApiServer::Start(options,
                            api::ApiBackends{.keys = backend->get(),
                                             .release = release_service.get(),
                                             .audit = audit->get(),
                                             .audit_sink = audit->get()},
                            metrics);
  if (!server.ok()) {
    Log(LogLevel::kError, "listen_failed",
        {{"address", config.listen_address()}, {"error", StatusText(server.status())}});
    return kExitUnavailable;
  }
  {
    absl::MutexLock lock(&health_mu);
    server_for_health = server->get();
    (*server)->SetServing(hsm_ready && audit_healthy);
  }
  Log(LogLevel::kInfo, "started",
      {{"grpc_port", absl::StrCat((*server)->port())},
       {"metrics_port", absl::StrCat(metrics_port)},
       {"replica", config.replica_id()},
       {"audit_sequence", absl::StrCat((*audit)->stats().last_sequence)}});
  if (!absl::GetFlag(FLAGS_ready_file).empty()) {
    const std::string ready = absl::StrCat("{\"grpc_port\":", (*server)->port(),
                                           ",\"metrics_port\":", metrics_port, "}\n");
    if (absl::Status written = WriteFileAtomically(absl::GetFlag(FLAGS_ready_file), ready);
        !written.ok()) {
      Log(LogLevel::kError, "ready_file_failed", {{"error", StatusText(written)}});
      return kExitOsError;
    }
  }

  // 9. Wait: SIGHUP rereads the TLS files (and EK CRLs) now, SIGTERM/SIGINT shut down.
  for (;;) {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) != 0) return kExitSoftware;
    if (signal_number == SIGHUP) {
      Log(LogLevel::kInfo, "sighup");
      (void)(*watcher)->CheckNow();  // the callback logs the outcome
      if (release_service != nullptr && !config.release().ek_crl_bundle_path().empty()) {
        const absl::Status crls = release_service->ReloadEkCrls();
        if (crls.ok()) {
          Log(LogLevel::kInfo, "ek_crls_loaded");
        } else {
          Log(LogLevel::kError, "ek_crls_refused", {{"error", StatusText(crls)}});
        }
      }
      continue;
    }
    Log(LogLevel::kInfo, "stopping", {{"signal", absl::StrCat(signal_number)}});
    break;
  }

  // 10. Drain: stop accepting, let running RPCs finish, then close the HSM
  // (sessions closed, C_Finalize) and remove the staged key.
  {
    absl::MutexLock lock(&health_mu);
    (*server)->SetServing(false);
    server_for_health = nullptr;
  }
  (*audit)->StopStreams();
  (*server)->Shutdown(absl::Seconds(config.limits().shutdown_grace_seconds()));
  server->reset();
  // daemon.stop and a final checkpoint, while the HSM is still open.
  if (absl::Status closed = (*audit)->Close(); !closed.ok()) {
    Log(LogLevel::kWarn, "audit_close_failed", {{"error", StatusText(closed)}});
  }
  audit->reset();
  exposer.reset();
  (*backend)->Shutdown();
  watcher->reset();
  Log(LogLevel::kInfo, "stopped");
  return kExitOk;
}

}  // namespace
}  // namespace hosn::keyd

int main(int argc, char** argv) { return hosn::keyd::Run(argc, argv); }
