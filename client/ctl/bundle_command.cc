#include "client/ctl/bundle_command.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/ctl/keyd_signer.h"
#include "client/ctl/progress.h"
#include "client/ctl/station_model_key.h"
#include "common/base/absl_compat.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/bundle/bundle.h"
#include "common/bundle/errors.h"
#include "common/bundle/manifest.h"
#include "common/bundle/segment.h"

namespace hosn::ctl {
namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  hosnctl bundle pack --model DIR --out DIR --name NAME --version VERSION\n"
    "      KEYD [--new-model-key] [--kek-label LABEL] [--segment-size BYTES] [--threads N]\n"
    "  hosnctl bundle pack --model DIR --out DIR --name NAME --version VERSION\n"
    "      --dek REF --wrapped-dek FILE --kek-label LABEL [--kek-id HEX]\n"
    "      (KEYD | --signer-cert PEM --signer-key REF) [--segment-size BYTES] [--threads N]\n"
    "    KEYD: --keyd HOST:PORT --tls-cert PEM --tls-key REF --tls-ca PEM\n"
    "      [--tls-server-name NAME] [--signer-label LABEL] [--keyd-timeout SECONDS]\n"
    "    Without --dek, hosn-keyd's HSM makes a new model key for this pack\n"
    "    (operator certificate; the daemon needs its release section).\n"
    "  hosnctl bundle verify --bundle DIR --ca PEM\n"
    "  hosnctl bundle inspect --bundle DIR [--ca PEM]\n"
    "  hosnctl bundle decrypt --bundle DIR --ca PEM --dek REF --target DIR\n"
    "      [--skip-plaintext-digests] [--threads N]\n"
    "REF is file:/path or credential:NAME; a DEK file holds 64 hex digits.\n"
    "exit codes: 0 ok, 1 error, 2 usage, 3 bundle refused, 4 target refused,\n"
    "  5 hosn-keyd refused the caller, 6 hosn-keyd unreachable or failed\n";

struct Flags {
  std::map<std::string, std::string> values;
  std::set<std::string> switches;

  std::string Get(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? "" : it->second;
  }
};

// "--name value", "--name=value" and bare switches from `allowed_switches`.
std::optional<Flags> ParseFlags(const std::vector<std::string>& args, size_t first,
                                const std::set<std::string>& allowed,
                                const std::set<std::string>& allowed_switches, FILE* err) {
  Flags flags;
  for (size_t i = first; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      std::fprintf(err, "hosnctl: unexpected argument %s\n", arg.c_str());
      return std::nullopt;
    }
    arg = arg.substr(2);
    if (allowed_switches.count(arg)) {
      flags.switches.insert(arg);
      continue;
    }
    std::string value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      std::fprintf(err, "hosnctl: --%s needs a value\n", arg.c_str());
      return std::nullopt;
    }
    if (!allowed.count(arg)) {
      std::fprintf(err, "hosnctl: unknown flag --%s\n", arg.c_str());
      return std::nullopt;
    }
    flags.values[arg] = value;
  }
  return flags;
}

bool Require(const Flags& flags, const std::vector<std::string>& names, FILE* err) {
  for (const auto& name : names) {
    if (flags.Get(name).empty()) {
      std::fprintf(err, "hosnctl: --%s is required\n%s", name.c_str(), kUsage);
      return false;
    }
  }
  return true;
}

int ExitFor(const absl::Status& status, FILE* err) {
  std::fprintf(err, "hosnctl: %s\n", std::string(status.message()).c_str());
  if (IsKeydError(status)) {
    return status.code() == absl::StatusCode::kPermissionDenied ||
                   status.code() == absl::StatusCode::kUnauthenticated
               ? kExitKeydRefused
               : kExitKeydUnavailable;
  }
  std::string_view name = bundle::BundleErrorName(status);
  if (name.rfind("target_", 0) == 0) return kExitTarget;
  if (!name.empty()) return kExitRefused;
  if (status.code() == absl::StatusCode::kInvalidArgument) return kExitUsage;
  return kExitError;
}

// A DEK from a secret reference holding 64 hex digits.
absl::StatusOr<SecretBytes> ReadDek(const std::string& reference) {
  auto text = ReadSecretReference(reference);
  if (!text.ok()) return text.status();
  auto hex = RevealSecret(*text);
  if (hex.size() != 2 * bundle::kDekSize) {
    return absl::InvalidArgumentError("dek: the reference must hold 64 hex digits");
  }
  SecretBytes dek(bundle::kDekSize);
  auto out = RevealSecret(dek);
  for (size_t i = 0; i < out.size(); ++i) {
    int value = 0;
    for (int j = 0; j < 2; ++j) {
      char c = static_cast<char>(hex[2 * i + j]);
      int digit = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                           : -1;
      if (digit < 0) return absl::InvalidArgumentError("dek: not hex");
      value = value * 16 + digit;
    }
    out[i] = static_cast<uint8_t>(value);
  }
  return dek;
}

absl::StatusOr<bundle::TrustOptions> ReadTrust(const Flags& flags) {
  auto pem = ReadFile(flags.Get("ca"), 1 << 20);
  if (!pem.ok()) return pem.status();
  return bundle::TrustOptions{*pem, std::nullopt};
}

int ParseThreads(const Flags& flags) {
  int threads = 0;
  if (!flags.Get("threads").empty() && !absl::SimpleAtoi(flags.Get("threads"), &threads)) {
    return -1;
  }
  return threads;
}

// PackBundle into "<out>.partial-<pid>", signing through hosn-keyd (which is
// sent the exact manifest bytes with the CMS attributes), then the directory
// is renamed to `out` (RENAME_NOREPLACE). On any failure the staging directory is
// removed and nothing exists under `out`. AlreadyExists if `out` exists.
absl::StatusOr<bundle::BundleManifest> PackWithKeyd(const std::string& model_dir,
                                                    const std::string& out, const SecretBytes& dek,
                                                    const bundle::PackOptions& options,
                                                    KeydManifestSigner& keyd) {
  struct stat st;
  if (::lstat(out.c_str(), &st) == 0) {
    return bundle::BundleError(absl::StatusCode::kAlreadyExists, "target_exists", out);
  }
  const std::string staging = absl::StrCat(out, ".partial-", ::getpid());
  struct Cleanup {
    const std::string& path;
    bool armed = true;
    ~Cleanup() {
      std::error_code ignored;
      if (armed) std::filesystem::remove_all(path, ignored);
    }
  } cleanup{staging};
  auto manifest = bundle::PackBundle(model_dir, staging, dek, options, keyd);
  if (!manifest.ok()) return manifest.status();
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, out.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      return bundle::BundleError(absl::StatusCode::kAlreadyExists, "target_exists", out);
    }
    return absl::InternalError(absl::StrCat("bundle ", out, ": rename from staging failed"));
  }
  cleanup.armed = false;
  return manifest;
}

int Pack(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags =
      ParseFlags(args, 1,
                 {"model", "out", "name", "version", "dek", "wrapped-dek", "kek-label", "kek-id",
                  "signer-cert", "signer-key", "keyd", "tls-cert", "tls-key", "tls-ca",
                  "tls-server-name", "keyd-timeout", "signer-label", "segment-size", "threads"},
                 {"new-model-key"}, err);
  if (!flags || !Require(*flags, {"model", "out", "name", "version"}, err)) return kExitUsage;
  // A new model key from the HSM is the default with --keyd and no --dek; an
  // existing DEK (offline re-packing) needs --dek and --wrapped-dek together.
  const bool new_model_key = flags->switches.count("new-model-key") > 0 ||
                             (!flags->Get("keyd").empty() && flags->Get("dek").empty() &&
                              flags->Get("wrapped-dek").empty());
  if (new_model_key) {
    for (const char* excluded : {"dek", "wrapped-dek", "kek-id"}) {
      if (!flags->Get(excluded).empty()) {
        std::fprintf(err, "hosnctl: a new model key excludes --%s\n%s", excluded, kUsage);
        return kExitUsage;
      }
    }
    if (flags->Get("keyd").empty()) {
      std::fprintf(err, "hosnctl: --new-model-key needs --keyd\n%s", kUsage);
      return kExitUsage;
    }
  } else if (!Require(*flags, {"dek", "wrapped-dek", "kek-label"}, err)) {
    return kExitUsage;
  }
  bundle::PackOptions options;
  options.model_name = flags->Get("name");
  options.model_version = flags->Get("version");
  options.kek_label = flags->Get("kek-label");
  options.kek_id = flags->Get("kek-id");
  options.threads = ParseThreads(*flags);
  if (!flags->Get("segment-size").empty() &&
      !absl::SimpleAtoi(flags->Get("segment-size"), &options.segment_size)) {
    std::fprintf(err, "hosnctl: --segment-size must be a number\n");
    return kExitUsage;
  }
  if (options.threads < 0) {
    std::fprintf(err, "hosnctl: --threads must be a number\n");
    return kExitUsage;
  }

  // An existing DEK (offline re-packing) from a secret reference; a new one
  // comes from hosn-keyd below, once the daemon has accepted us as a signer.
  SecretBytes dek;
  if (!new_model_key) {
    auto read = ReadDek(flags->Get("dek"));
    if (!read.ok()) return ExitFor(read.status(), err);
    dek = *std::move(read);
    auto wrapped = ReadFile(flags->Get("wrapped-dek"), 4096);
    if (!wrapped.ok()) return ExitFor(wrapped.status(), err);
    options.wrapped_dek = *wrapped;
  }

  // The signer: hosn-keyd (production; the key stays in its HSM) or a
  // software key (development, benchmarks).
  std::unique_ptr<bundle::ManifestSigner> signer;
  std::unique_ptr<KeydManifestSigner> keyd;
  if (!flags->Get("keyd").empty()) {
    if (!flags->Get("signer-key").empty() || !flags->Get("signer-cert").empty()) {
      std::fprintf(err, "hosnctl: --keyd excludes --signer-key and --signer-cert\n%s", kUsage);
      return kExitUsage;
    }
    if (!Require(*flags, {"tls-cert", "tls-key", "tls-ca"}, err)) return kExitUsage;
    auto keyd_options =
        KeydOptionsFromFlags([&](const std::string& name) { return flags->Get(name); });
    if (!keyd_options.ok()) {
      std::fprintf(err, "hosnctl: %s\n", std::string(keyd_options.status().message()).c_str());
      return kExitUsage;
    }
    // Connects and fetches the chain before any file is encrypted, so a
    // daemon that is down or refuses us costs nothing.
    auto created = KeydManifestSigner::Create(*keyd_options);
    if (!created.ok()) return ExitFor(created.status(), err);
    keyd = std::move(*created);
    if (new_model_key) {
      // Made in the HSM, wrapped to this process; lives only in `dek`,
      // which is wiped when Pack returns.
      auto key = CreateStationModelKey(*keyd, options.model_name, options.model_version,
                                       options.kek_label);
      if (!key.ok()) return ExitFor(key.status(), err);
      dek = std::move(key->dek);
      options.wrapped_dek = std::move(key->kek_wrapped_dek);
      options.kek_label = key->kek_label;
      options.kek_id = key->kek_id;
      std::fprintf(out, "new model key from hosn-keyd, wrapped under kek %s (id %s)\n",
                   options.kek_label.c_str(), options.kek_id.c_str());
    }
  } else {
    if (!Require(*flags, {"signer-key", "signer-cert"}, err)) return kExitUsage;
    auto chain = ReadFile(flags->Get("signer-cert"), 1 << 20);
    if (!chain.ok()) return ExitFor(chain.status(), err);
    auto key = ReadSecretReference(flags->Get("signer-key"));
    if (!key.ok()) return ExitFor(key.status(), err);
    auto software = bundle::OpenSslKeySigner::Create(*key, *chain);
    if (!software.ok()) return ExitFor(software.status(), err);
    signer = std::move(*software);
  }

  bundle::Progress progress;
  options.progress = &progress;
  absl::StatusOr<bundle::BundleManifest> manifest;
  {
    ProgressReporter reporter("pack", &progress, err);
    manifest =
        keyd ? PackWithKeyd(flags->Get("model"), flags->Get("out"), dek, options, *keyd)
             : bundle::PackBundle(flags->Get("model"), flags->Get("out"), dek, options, *signer);
  }
  if (!manifest.ok()) return ExitFor(manifest.status(), err);
  std::fprintf(out, "packed %d files of %s %s into %s\n", manifest->files_size(),
               manifest->model().name().c_str(), manifest->model().version().c_str(),
               flags->Get("out").c_str());
  return kExitOk;
}

void PrintManifest(const bundle::BundleManifest& m, FILE* out) {
  uint64_t total = 0;
  for (const auto& f : m.files()) total += f.size();
  std::fprintf(out, "model:        %s %s\n", m.model().name().c_str(), m.model().version().c_str());
  std::fprintf(out, "format:       %u\n", m.format_version());
  std::fprintf(out, "created:      %s\n", m.created_at().c_str());
  std::fprintf(out, "encryption:   %s, %s, segments of %u bytes\n", m.encryption().aead().c_str(),
               m.encryption().kdf().c_str(), m.encryption().segment_size());
  std::fprintf(out, "kek:          %s (id %s), %s\n", m.encryption().kek_label().c_str(),
               m.encryption().kek_id().c_str(), m.encryption().key_wrap().c_str());
  std::fprintf(out, "files:        %d, %llu bytes\n", m.files_size(),
               static_cast<unsigned long long>(total));
  for (const auto& f : m.files()) {
    std::fprintf(out, "  %12llu  %s  %s\n", static_cast<unsigned long long>(f.size()),
                 f.sha256().substr(0, 16).c_str(), f.path().c_str());
  }
}

int Verify(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags = ParseFlags(args, 1, {"bundle", "ca"}, {}, err);
  if (!flags || !Require(*flags, {"bundle", "ca"}, err)) return kExitUsage;
  auto trust = ReadTrust(*flags);
  if (!trust.ok()) return ExitFor(trust.status(), err);
  bundle::Progress progress;
  absl::StatusOr<bundle::VerifiedBundle> verified;
  {
    ProgressReporter reporter("verify", &progress, err);
    verified = bundle::VerifyBundle(flags->Get("bundle"), *trust, &progress);
  }
  if (!verified.ok()) return ExitFor(verified.status(), err);
  std::fprintf(out, "verified: %s %s, %d files, signed by %s\n",
               verified->verified.manifest.model().name().c_str(),
               verified->verified.manifest.model().version().c_str(),
               verified->verified.manifest.files_size(), verified->verified.signer_subject.c_str());
  return kExitOk;
}

int Inspect(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags = ParseFlags(args, 1, {"bundle", "ca"}, {}, err);
  if (!flags || !Require(*flags, {"bundle"}, err)) return kExitUsage;
  if (flags->Get("ca").empty()) {
    auto manifest = bundle::ReadUnverifiedManifest(flags->Get("bundle"));
    if (!manifest.ok()) return ExitFor(manifest.status(), err);
    PrintManifest(*manifest, out);
    std::fprintf(out, "signature:    NOT VERIFIED (pass --ca to verify)\n");
    return kExitOk;
  }
  auto trust = ReadTrust(*flags);
  if (!trust.ok()) return ExitFor(trust.status(), err);
  auto verified = bundle::VerifyBundle(flags->Get("bundle"), *trust);
  if (!verified.ok()) return ExitFor(verified.status(), err);
  PrintManifest(verified->verified.manifest, out);
  std::fprintf(out, "signature:    valid, signed by %s\n",
               verified->verified.signer_subject.c_str());
  return kExitOk;
}

int Decrypt(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags = ParseFlags(args, 1, {"bundle", "ca", "dek", "target", "threads"},
                          {"skip-plaintext-digests"}, err);
  if (!flags || !Require(*flags, {"bundle", "ca", "dek", "target"}, err)) return kExitUsage;
  int threads = ParseThreads(*flags);
  if (threads < 0) {
    std::fprintf(err, "hosnctl: --threads must be a number\n");
    return kExitUsage;
  }
  auto trust = ReadTrust(*flags);
  if (!trust.ok()) return ExitFor(trust.status(), err);
  // Nodes get the DEK through hosn-keyd's attested release (hosn-agent); this
  // command is the operator's offline path and reads it from a secret
  // reference, never from argv.
  auto dek = ReadDek(flags->Get("dek"));
  if (!dek.ok()) return ExitFor(dek.status(), err);
  auto verified = bundle::VerifyBundle(flags->Get("bundle"), *trust);
  if (!verified.ok()) return ExitFor(verified.status(), err);

  bundle::Progress progress;
  bundle::DecryptOptions options;
  options.check_plaintext_digests = !flags->switches.count("skip-plaintext-digests");
  options.threads = threads;
  options.progress = &progress;
  absl::Status status;
  {
    ProgressReporter reporter("decrypt", &progress, err);
    status = bundle::DecryptBundle(*verified, *dek, flags->Get("target"), options);
  }
  if (!status.ok()) return ExitFor(status, err);
  std::fprintf(out, "decrypted %d files into %s\n", verified->verified.manifest.files_size(),
               flags->Get("target").c_str());
  return kExitOk;
}

}  // namespace

int RunBundleCommand(const std::vector<std::string>& args, FILE* out, FILE* err) {
  if (args.empty()) {
    std::fprintf(err, "%s", kUsage);
    return kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "pack") return Pack(args, out, err);
  if (command == "verify") return Verify(args, out, err);
  if (command == "inspect") return Inspect(args, out, err);
  if (command == "decrypt") return Decrypt(args, out, err);
  if (command == "help" || command == "--help") {
    std::fprintf(out, "%s", kUsage);
    return kExitOk;
  }
  std::fprintf(err, "hosnctl: unknown bundle command %s\n%s", command.c_str(), kUsage);
  return kExitUsage;
}

}  // namespace hosn::ctl
