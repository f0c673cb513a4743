#include "server/keyd/config.h"

#include <unistd.h>

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace hosn::keyd {
namespace {

namespace v1 = ::hosn::keyd::v1;

constexpr size_t kMaxConfigBytes = 1 << 20;

absl::Status Bad(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("config ", ToAbsl(field), ": ", ToAbsl(why)));
}

// "host:port" with a numeric port; "[v6]:port" accepted.
bool IsHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  for (size_t i = colon + 1; i < address.size(); ++i) {
    if (address[i] < '0' || address[i] > '9') return false;
  }
  return address.size() - colon - 1 <= 5;
}

// The audit log is required (docs/audit-log.md): a directory and an HSM key,
// with its certificate, to sign checkpoints.
absl::Status ValidateAuditConfig(const v1::AuditConfig& audit) {
  if (audit.directory().empty()) return Bad("audit.directory", "missing (the log is required)");
  if (audit.max_file_bytes() < 4096) return Bad("audit.max_file_bytes", "at least 4096");
  if (audit.checkpoint_interval() > 1000000) {
    return Bad("audit.checkpoint_interval", "at most 1000000");
  }
  if (audit.checkpoint_key_label().empty()) {
    return Bad("audit.checkpoint_key_label", "missing (and no hsm.signing_key_label)");
  }
  if (audit.checkpoint_certificate_chain_path().empty()) {
    return Bad("audit.checkpoint_certificate_chain_path", "missing");
  }
  return absl::OkStatus();
}

// Signing keys (docs/daemon.md, "Signing keys"): the single fields name the
// default key, hsm.signing_keys adds more. Anything that leaves the default
// unclear or gives one label two chains is refused.
absl::Status ValidateSigningKeys(const v1::HsmConfig& hsm) {
  if (hsm.signing_key_label().empty()) {
    if (!hsm.signing_certificate_chain_path().empty()) {
      return Bad("hsm.signing_certificate_chain_path", "set without hsm.signing_key_label");
    }
    if (hsm.signing_keys_size() > 0) {
      return Bad("hsm.signing_key_label", "missing: name the default among hsm.signing_keys");
    }
    return absl::OkStatus();
  }
  if (hsm.signing_certificate_chain_path().empty()) {
    return Bad("hsm.signing_certificate_chain_path",
               "required with signing_key_label (or list that key in hsm.signing_keys)");
  }
  std::set<std::string> labels;
  for (int i = 0; i < hsm.signing_keys_size(); ++i) {
    const v1::SigningKey& key = hsm.signing_keys(i);
    const std::string field = absl::StrCat("hsm.signing_keys[", i, "]");
    if (key.label().empty()) return Bad(field + ".label", "missing");
    if (key.certificate_chain_path().empty()) {
      return Bad(field + ".certificate_chain_path", "missing");
    }
    if (!labels.insert(key.label()).second) {
      return Bad(field + ".label", absl::StrCat(key.label(), " listed twice"));
    }
    if (key.label() == hsm.signing_key_label() &&
        key.certificate_chain_path() != hsm.signing_certificate_chain_path()) {
      return Bad(field + ".certificate_chain_path",
                 "contradicts hsm.signing_certificate_chain_path for the same key");
    }
  }
  return absl::OkStatus();
}

// A lone hsm.signing_keys entry is the default when no default is named, and
// a default named only by label takes its chain from its entry.
void ResolveDefaultSigningKey(v1::HsmConfig& hsm) {
  if (hsm.signing_key_label().empty() && hsm.signing_certificate_chain_path().empty() &&
      hsm.signing_keys_size() == 1) {
    hsm.set_signing_key_label(hsm.signing_keys(0).label());
  }
  if (hsm.signing_key_label().empty() || !hsm.signing_certificate_chain_path().empty()) return;
  for (const v1::SigningKey& key : hsm.signing_keys()) {
    if (key.label() == hsm.signing_key_label()) {
      hsm.set_signing_certificate_chain_path(key.certificate_chain_path());
      return;
    }
  }
}

}  // namespace

std::vector<v1::SigningKey> ConfiguredSigningKeys(const v1::HsmConfig& hsm) {
  std::vector<v1::SigningKey> keys;
  if (hsm.signing_key_label().empty()) return keys;
  v1::SigningKey& first = keys.emplace_back();
  first.set_label(hsm.signing_key_label());
  first.set_certificate_chain_path(hsm.signing_certificate_chain_path());
  for (const v1::SigningKey& key : hsm.signing_keys()) {
    if (key.label() != hsm.signing_key_label()) keys.push_back(key);
  }
  return keys;
}

void ApplyDefaults(v1::KeydConfig& config) {
  v1::TlsConfig& tls = *config.mutable_tls();
  if (tls.reload_interval_seconds() == 0) tls.set_reload_interval_seconds(10);
  v1::HsmConfig& hsm = *config.mutable_hsm();
  if (hsm.pool_size() == 0) hsm.set_pool_size(4);
  if (hsm.health_check_interval_seconds() == 0) hsm.set_health_check_interval_seconds(5);
  ResolveDefaultSigningKey(hsm);
  v1::LimitsConfig& limits = *config.mutable_limits();
  if (limits.max_request_bytes() == 0) limits.set_max_request_bytes(4u << 20);
  if (limits.max_concurrent_streams() == 0) limits.set_max_concurrent_streams(100);
  if (limits.max_rpc_duration_ms() == 0) limits.set_max_rpc_duration_ms(10000);
  if (limits.shutdown_grace_seconds() == 0) limits.set_shutdown_grace_seconds(10);
  v1::LoggingConfig& logging = *config.mutable_logging();
  if (logging.level().empty()) logging.set_level("info");
  if (logging.format().empty()) logging.set_format("json");
  v1::ReleaseConfig& release = *config.mutable_release();
  if (release.kdf().empty()) release.set_kdf("null");
  if (release.challenge_ttl_seconds() == 0) release.set_challenge_ttl_seconds(60);
  if (release.enrollment_ttl_seconds() == 0) release.set_enrollment_ttl_seconds(300);
  v1::AuditConfig& audit = *config.mutable_audit();
  if (audit.max_file_bytes() == 0) audit.set_max_file_bytes(64u << 20);
  if (audit.checkpoint_interval() == 0) audit.set_checkpoint_interval(1000);
  if (audit.checkpoint_key_label().empty()) {
    audit.set_checkpoint_key_label(config.hsm().signing_key_label());
  }
  if (audit.checkpoint_certificate_chain_path().empty()) {
    audit.set_checkpoint_certificate_chain_path(config.hsm().signing_certificate_chain_path());
  }
  if (config.replica_id().empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0) config.set_replica_id(host);
  }
}

absl::Status ValidateConfig(const v1::KeydConfig& config) {
  if (!IsHostPort(config.listen_address())) return Bad("listen_address", "want host:port");
  if (config.tls().server_certificate_path().empty()) {
    return Bad("tls.server_certificate_path", "missing");
  }
  if (config.tls().server_private_key_path().empty()) {
    return Bad("tls.server_private_key_path", "missing");
  }
  if (config.tls().client_ca_bundle_path().empty()) {
    return Bad("tls.client_ca_bundle_path", "missing");
  }
  if (config.hsm().module_path().empty()) return Bad("hsm.module_path", "missing");
  if (!absl::StartsWith(config.hsm().token_uri(), "pkcs11:")) {
    return Bad("hsm.token_uri", "want an RFC 7512 pkcs11: URI");
  }
  const std::string& pin = config.hsm().pin_reference();
  if (!absl::StartsWith(pin, "file:") && !absl::StartsWith(pin, "credential:")) {
    return Bad("hsm.pin_reference", "want file:/path or credential:NAME");
  }
  if (config.hsm().pool_size() > 256) return Bad("hsm.pool_size", "at most 256");
  HOSN_RETURN_IF_ERROR(ValidateSigningKeys(config.hsm()));
  if (!config.metrics().listen_address().empty() &&
      !IsHostPort(config.metrics().listen_address())) {
    return Bad("metrics.listen_address", "want host:port");
  }
  if (config.limits().max_request_bytes() > (64u << 20)) {
    return Bad("limits.max_request_bytes", "at most 64 MiB");
  }
  const v1::ReleaseConfig& release = config.release();
  if (!release.release_key_label().empty()) {
    if (config.hsm().challenge_mac_key_label().empty()) {
      return Bad("hsm.challenge_mac_key_label", "required with release.release_key_label");
    }
    if (release.manifest_ca_bundle_path().empty()) {
      return Bad("release.manifest_ca_bundle_path", "required with release.release_key_label");
    }
    if (release.kdf() != "null" && release.kdf() != "x963-sha256") {
      return Bad("release.kdf", "want null or x963-sha256");
    }
    if (release.challenge_ttl_seconds() > 3600) {
      return Bad("release.challenge_ttl_seconds", "at most 3600");
    }
    if (release.enrollment_ttl_seconds() > 86400) {
      return Bad("release.enrollment_ttl_seconds", "at most 86400");
    }
    if (!release.ek_crl_bundle_path().empty() && release.ek_ca_bundle_path().empty()) {
      return Bad("release.ek_crl_bundle_path", "requires release.ek_ca_bundle_path");
    }
  }
  const std::string& level = config.logging().level();
  if (level != "debug" && level != "info" && level != "warn" && level != "error") {
    return Bad("logging.level", "want debug, info, warn or error");
  }
  if (config.logging().format() != "json" && config.logging().format() != "text") {
    return Bad("logging.format", "want json or text");
  }
  HOSN_RETURN_IF_ERROR(ValidateAuditConfig(config.audit()));
  return absl::OkStatus();
}

absl::StatusOr<v1::KeydConfig> ParseConfig(std::string_view text, bool json) {
  v1::KeydConfig config;
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(std::string(text), &config, options);
    if (!status.ok()) return Bad("json", std::string(status.message()));
  } else {
    // Collects the parser's first error instead of printing it.
    class Collector : public google::protobuf::io::ErrorCollector {
     public:
      void AddError(int line, int column, const std::string& message) override {
        if (first.empty()) first = absl::StrCat("line ", line + 1, ": ", message);
      }
      std::string first;
    } collector;
    google::protobuf::TextFormat::Parser parser;
    parser.RecordErrorsTo(&collector);
    if (!parser.ParseFromString(std::string(text), &config)) return Bad("text", collector.first);
  }
  ApplyDefaults(config);
  HOSN_RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

absl::StatusOr<v1::KeydConfig> LoadConfig(const std::string& path) {
  HOSN_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxConfigBytes));
  return ParseConfig(text, absl::EndsWith(path, ".json"));
}

}  // namespace hosn::keyd
