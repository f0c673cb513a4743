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

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/agent/cli/attested_release.h"
#include "client/agent/cli/commands.h"
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
    "usage: hosn-agent run --keyd HOST:PORT --tls-cert PEM --tls-key REF --tls-ca PEM\n"
    "    --bundle DIR --target DIR --signer-ca PEM --tcti TCTI [--pcrs sha256:0,...,7]\n"
    "    [--supervise] [--deadline 60s] [--rpc-timeout 10s] [--tls-server-name NAME]\n"
    "    [--threads N] [--timings-json FILE] [--event-log FILE]\n"
    "    -- ENGINE ARGS... ({model_dir} is replaced)\n";

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
  auto flags = ParseArgs(
      args,
      {"keyd", "tls-cert", "tls-key", "tls-ca", "tls-server-name", "bundle", "target", "signer-ca",
       "tcti", "pcrs", "deadline", "rpc-timeout", "threads", "timings-json", "event-log"},
      {"supervise"},
      {"keyd", "tls-cert", "tls-key", "tls-ca", "bundle", "target", "signer-ca", "tcti"});
  if (!flags.ok())
    return Fail(kExitUsage, absl::Status(flags.status().code(),
                                         absl::StrCat(flags.status().message(), "\n", kUsage)));
  if (flags->rest.empty())
    return Fail(kExitUsage,
                absl::InvalidArgumentError(absl::StrCat("no engine command after --\n", kUsage)));
  auto selection = ParsePcrSelection(flags->Get("pcrs", "sha256:0,1,2,3,4,5,6,7"));
  if (!selection.ok()) return Fail(kExitUsage, selection.status());
  auto deadline = ParsePositiveDuration(flags->Get("deadline", "60s"));
  if (!deadline.ok()) return Fail(kExitUsage, deadline.status());
  auto rpc_timeout = ParsePositiveDuration(flags->Get("rpc-timeout", "10s"));
  if (!rpc_timeout.ok()) return Fail(kExitUsage, rpc_timeout.status());
  int threads = 0;
  if (flags->Has("threads") &&
      (!absl::SimpleAtoi(flags->Get("threads"), &threads) || threads < 0)) {
    return Fail(kExitUsage, absl::InvalidArgumentError("--threads must be a number"));
  }
  const std::string target = flags->Get("target");
  const std::string bundle_dir = flags->Get("bundle");
  StepTimes times;

  // 1. Target and process.
  if (absl::Status s = CheckTarget(target); !s.ok()) {
    return Fail(absl::IsNotFound(s) ? kExitUsage : kExitTarget, s);
  }
  if (absl::Status s = HardenProcess(); !s.ok()) return Fail(kExitInternal, s);

  // 2. Verify the bundle against the pinned CA.
  absl::Time start = absl::Now();
  auto ca = ReadFile(flags->Get("signer-ca"), 1 << 20);
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
    auto tpm = TpmDevice::Open(flags->Get("tcti"));
    if (!tpm.ok()) return Fail(kExitTpm, tpm.status());
    KeydEndpoint endpoint{flags->Get("keyd"), flags->Get("tls-cert"), flags->Get("tls-key"),
                          flags->Get("tls-ca"), flags->Get("tls-server-name")};
    auto channel = MakeKeydChannel(endpoint);
    if (!channel.ok()) return Fail(kExitUsage, channel.status());
    ReleaseOptions release;
    release.manifest = verified->verified.bytes;
    release.manifest_signature = *signature;
    release.selection = *selection;
    if (flags->Has("event-log")) {  // e.g. /sys/kernel/security/tpm0/binary_bios_measurements
      auto log = ReadFile(flags->Get("event-log"), 16 << 20);
      if (!log.ok()) return Fail(kExitUsage, log.status());
      release.event_log = *std::move(log);
    }
    release.deadline = *deadline;
    release.rpc_timeout = *rpc_timeout;
    release.log = Log;
    ReleaseTimings release_times;
    auto obtained = ObtainDek(**tpm, *channel, release, &release_times);
    times.attempts = release_times.attempts;
    if (!obtained.ok()) return Fail(ExitCodeForKeydStatus(obtained.status()), obtained.status());
    dek = std::move(*obtained);
    times.attest = release_times.attest;
    times.release = release_times.release;
  }  // TPM contexts and the channel are closed here.
  Log(absl::StrCat("key released to this node (", times.attempts, " attempt(s))"));

  // 4. Decrypt into tmpfs.
  start = absl::Now();
  bundle::Progress progress;
  bundle::DecryptOptions decrypt;
  decrypt.threads = threads;
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
  WriteTimings(flags->Get("timings-json"), times);
  Log(absl::StrFormat(
      "ready: verify %.0f ms, attest %.0f ms, release %.0f ms, decrypt %.0f ms (%d bytes); "
      "starting %s",
      Ms(times.verify), Ms(times.attest), Ms(times.release), Ms(times.decrypt), times.bytes,
      flags->rest[0]));

  std::fflush(nullptr);
  if (flags->switches.count("supervise") != 0) {
    auto code = SuperviseEngine(flags->rest, target);
    if (!code.ok()) return Fail(kExitEngine, code.status());
    Log(absl::StrCat("engine exited with ", *code, "; plaintext removed"));
    return *code;
  }
  absl::Status exec = ExecEngine(flags->rest, target);
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
