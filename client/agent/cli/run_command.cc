// `hosn-agent run`: the boot path of an inference node. Order, each step
// failing closed with its own exit code:
//   1. check the target is on tmpfs/ramfs and unused; harden the process;
//   2. verify the bundle against the pinned signer CA, every file included
//      (before any key is asked for: a tampered bundle never gets one);
//   3. attest and obtain the DEK (attested_release.h), retrying an
//      unreachable daemon until the deadline;
//   4. decrypt into the target, with a progress line;
//   5. wipe the DEK, drop the TPM and the channel, then exec or supervise the
//      engine (the launcher closes every descriptor above stderr).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/agent/cli/agent_config.h"
#include "client/agent/cli/attested_release.h"
#include "client/agent/cli/commands.h"
#include "client/agent/cli/event_log_source.h"
#include "client/agent/cli/exit_codes.h"
#include "client/agent/cli/flags.h"
#include "client/agent/cli/keyd_channel.h"
#include "client/agent/cli/process_guard.h"
#include "client/agent/engine/engine_launcher.h"
#include "client/ctl/progress.h"
#include "common/base/file_util.h"
#include "common/bundle/bundle.h"
#include "common/bundle/errors.h"

namespace hosn::agent {
namespace {

constexpr char kUsage[] =
    "usage: hosn-agent run [--config FILE.json] --keyd HOST:PORT --tls-cert PEM --tls-key REF\n"
    "    --tls-ca PEM --bundle DIR --target DIR --signer-ca PEM --tcti TCTI\n"
    "    [--pcrs sha256:0,...,7] [--supervise | --mode exec|supervise] [--deadline 60s]\n"
    "    [--rpc-timeout 10s] [--tls-server-name NAME] [--threads N] [--timings-json FILE]\n"
    "    [--event-log FILE|none] -- ENGINE ARGS... ({model_dir} is replaced)\n"
    "    (flags override the config file; see docs/agent.md)\n";

struct StepTimes {
  absl::Duration verify, attest, release, decrypt;
  int attempts = 0;
  uint64_t bytes = 0;
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

void WriteTimings(const std::string& path, const StepTimes& t) {
  if (path.empty()) return;
  std::ofstream(path) << absl::StrFormat(
      "{\"verify_ms\": %.1f, \"attest_ms\": %.1f, \"release_ms\": %.1f, \"decrypt_ms\": %.1f, "
      "\"attempts\": %d, \"plaintext_bytes\": %d}\n",
      Ms(t.verify), Ms(t.attest), Ms(t.release), Ms(t.decrypt), t.attempts, t.bytes);
}

int Fail(int code, const absl::Status& status) {
  Log(std::string(status.message()));
  return code;
}

int BundleExitCode(const absl::Status& status) {
  const std::string_view name = bundle::BundleErrorName(status);
  if (name.rfind("target_", 0) == 0) return kExitTarget;
  return absl::IsDataLoss(status) ? kExitDecrypt : kExitInternal;
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  auto flags = ParseArgs(args, RunValueFlags(), RunSwitches(), {});
  if (!flags.ok())
    return Fail(kExitUsage, absl::Status(flags.status().code(),
                                         absl::StrCat(flags.status().message(), "\n", kUsage)));
  auto config = ResolveRunConfig(*flags);
  if (!config.ok()) {
    return Fail(kExitUsage, absl::Status(config.status().code(),
                                         absl::StrCat(config.status().message(), "\n", kUsage)));
  }
  // Validated by ResolveRunConfig; parsed again here for their typed values.
  auto selection = ParsePcrSelection(config->tpm().pcrs());
  auto deadline = ParsePositiveDuration(config->keyd().retry_deadline());
  auto rpc_timeout = ParsePositiveDuration(config->keyd().rpc_timeout());
  if (!selection.ok() || !deadline.ok() || !rpc_timeout.ok()) {
    return Fail(kExitInternal, absl::InternalError("settings changed after validation"));
  }
  const std::string& target = config->model().target_path();
  const std::string& bundle_dir = config->model().bundle_path();
  const std::vector<std::string> engine(config->engine().command().begin(),
                                        config->engine().command().end());
  StepTimes times;

  // 1. Target and process.
  if (absl::Status s = CheckTarget(target); !s.ok()) {
    return Fail(absl::IsNotFound(s) ? kExitUsage : kExitTarget, s);
  }
  if (absl::Status s = HardenProcess(); !s.ok()) return Fail(kExitInternal, s);

  // 2. Verify the bundle against the pinned CA.
  absl::Time start = absl::Now();
  auto ca = ReadFile(config->model().signer_ca_bundle_path(), 1 << 20);
  if (!ca.ok()) return Fail(kExitUsage, ca.status());
  auto signature = ReadFile(bundle_dir + "/" + std::string(bundle::kSignatureFileName), 1 << 20);
  if (!signature.ok()) return Fail(kExitBundleInvalid, signature.status());
  bundle::TrustOptions trust;
  trust.ca_bundle_pem = *ca;
  auto verified = bundle::VerifyBundle(bundle_dir, trust);
  if (!verified.ok()) return Fail(kExitBundleInvalid, verified.status());
  times.verify = absl::Now() - start;
  const bundle::BundleManifest& manifest = verified->verified.manifest;
  Log(absl::StrCat("bundle verified: ", manifest.model().name(), " ", manifest.model().version(),
                   ", signed by ", verified->verified.signer_subject));

  // 3. Attest and obtain the DEK.
  SecretBytes dek;
  {
    auto event_log =
        ChooseEventLog(config->tpm().event_log_path(), TctiUsesKernelTpm(config->tpm().tcti()));
    if (!event_log.ok()) return Fail(kExitUsage, event_log.status());
    Log(event_log->bytes.empty() ? absl::StrCat("event log: none sent (", event_log->source, ")")
                                 : absl::StrCat("event log: ", event_log->source, " (",
                                                event_log->bytes.size(), " bytes)"));
    auto tpm = TpmDevice::Open(config->tpm().tcti());
    if (!tpm.ok()) return Fail(kExitTpm, tpm.status());
    const v1::KeydSettings& keyd = config->keyd();
    KeydEndpoint endpoint{keyd.address(), keyd.tls_certificate_path(), keyd.tls_key_reference(),
                          keyd.tls_ca_bundle_path(), keyd.tls_server_name()};
    auto channel = MakeKeydChannel(endpoint);
    if (!channel.ok()) return Fail(kExitUsage, channel.status());
    ReleaseOptions release;
    release.manifest = verified->verified.bytes;
    release.manifest_signature = *signature;
    release.selection = *selection;
    release.event_log = std::move(event_log->bytes);
    release.deadline = *deadline;
    release.rpc_timeout = *rpc_timeout;
    release.log = Log;
    ReleaseTimings release_times;
    auto obtained = ObtainDek(**tpm, *channel, release, &release_times);
    times.attempts = release_times.attempts;
    if (!obtained.ok()) {
      const int code = ExitCodeForKeydStatus(obtained.status());
      // The daemon tells a node only "denied"; the one cause the node can
      // see for itself is a missing event log, so name it.
      if (code == kExitDenied && release.event_log.empty()) {
        Log(
            absl::StrCat("release denied; hosn-keyd's audit log has the reason. This node sent "
                         "no event log (",
                         event_log->source,
                         "): a class whose policy requires one (--require-event-log) is denied "
                         "for that alone; see --event-log / tpm.eventLogPath"));
      }
      return Fail(code, obtained.status());
    }
    dek = std::move(*obtained);
    times.attest = release_times.attest;
    times.release = release_times.release;
  }  // TPM contexts and the channel are closed here.
  Log(absl::StrCat("key released to this node (", times.attempts, " attempt(s))"));

  // 4. Decrypt into tmpfs.
  start = absl::Now();
  bundle::Progress progress;
  bundle::DecryptOptions decrypt;
  decrypt.threads = static_cast<int>(config->model().decrypt_threads());
  decrypt.progress = &progress;
  absl::Status decrypted;
  {
    ctl::ProgressReporter reporter("decrypt", &progress);
    decrypted = bundle::DecryptBundle(*verified, dek, target, decrypt);
  }
  dek.Clear();  // 5. the only copy of the key is gone before the engine starts
  if (!decrypted.ok()) return Fail(BundleExitCode(decrypted), decrypted);
  times.decrypt = absl::Now() - start;
  times.bytes = progress.total.load();
  WriteTimings(config->timings_json_path(), times);
  Log(absl::StrFormat(
      "ready: verify %.0f ms, attest %.0f ms, release %.0f ms, decrypt %.0f ms (%d bytes); "
      "starting %s",
      Ms(times.verify), Ms(times.attest), Ms(times.release), Ms(times.decrypt), times.bytes,
      engine[0]));

  std::fflush(nullptr);
  if (config->engine().mode() == "supervise") {
    auto code = SuperviseEngine(engine, target);
    if (!code.ok()) return Fail(kExitEngine, code.status());
    Log(absl::StrCat("engine exited with ", *code, "; plaintext removed"));
    return *code;
  }
  absl::Status exec = ExecEngine(engine, target);
  std::error_code ignored;
  std::filesystem::remove_all(target, ignored);  // the engine never started: no plaintext stays
  return Fail(kExitEngine, exec);
}

int ExitCodeForKeydStatus(const absl::Status& status) {
  if (IsTpmError(status)) return kExitTpm;
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnreachable;
    case absl::StatusCode::kDataLoss:
      return kExitDecrypt;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
      return kExitDenied;
    default:
      return kExitInternal;
  }
}

void Log(const std::string& message) { std::fprintf(stderr, "hosn-agent: %s\n", message.c_str()); }

}  // namespace hosn::agent
