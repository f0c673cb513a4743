#include "client/ctl/audit_command.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/agent/cli/flags.h"
#include "client/agent/cli/keyd_channel.h"
#include "client/ctl/bundle_command.h"
#include "common/audit/audit_export.h"
#include "common/audit/audit_reader.h"
#include "common/audit/audit_verify.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "hosn/keyd/v1/audit.grpc.pb.h"

namespace hosn::ctl {
namespace v1 = ::hosn::keyd::v1;
namespace fs = std::filesystem;
namespace {

constexpr char kUsage[] =
    "usage: hosnctl audit export --keyd HOST:PORT --tls-cert PEM --tls-key REF --tls-ca PEM\n"
    "           [--tls-server-name NAME] --out DIR [--from N] [--follow]\n"
    "       hosnctl audit verify --log DIR --ca PEM [--signer-chain PEM]\n"
    "           [--anchor-sequence N --anchor-sha256 HEX] [--checkpoint-interval N]\n"
    "exit codes: 0 verified, 1 error, 2 usage, 3 log refused (findings),\n"
    "  4 signer not trusted by --ca, 5 hosn-keyd refused the caller, 6 hosn-keyd unreachable\n";

constexpr size_t kMaxLogFileBytes = size_t{1} << 31;

int Fail(int code, std::string_view message) {
  std::fprintf(stderr, "hosnctl audit: %.*s\n", static_cast<int>(message.size()), message.data());
  return code;
}

int Fail(int code, const absl::Status& status) { return Fail(code, std::string(status.message())); }

int KeydFail(const absl::Status& status) {
  const bool refused = absl::IsPermissionDenied(status) || absl::IsUnauthenticated(status);
  return Fail(refused ? kExitKeydRefused : kExitKeydUnavailable, status);
}

// PEM text of a DER certificate (RFC 7468: base64 in 64-column lines).
std::string CertificatePem(const std::string& der) {
  std::string base64(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()),
                                     reinterpret_cast<const unsigned char*>(der.data()),
                                     static_cast<int>(der.size()));
  base64.resize(static_cast<size_t>(length));
  std::string pem = "-----BEGIN CERTIFICATE-----\n";
  for (size_t at = 0; at < base64.size(); at += 64) pem += base64.substr(at, 64) + "\n";
  return pem + "-----END CERTIFICATE-----\n";
}

// Writes `data` to `path` and syncs it.
absl::Status WriteDurably(const std::string& path, std::string_view data) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path));
  const bool ok = std::fwrite(data.data(), 1, data.size(), file) == data.size() &&
                  std::fflush(file) == 0 && ::fsync(fileno(file)) == 0;
  return std::fclose(file) == 0 && ok ? absl::OkStatus()
                                      : absl::InternalError(absl::StrCat("cannot write ", path));
}

int Export(const std::vector<std::string>& args) {
  auto flags = agent::ParseArgs(
      args, {"keyd", "tls-cert", "tls-key", "tls-ca", "tls-server-name", "out", "from"}, {"follow"},
      {"keyd", "tls-cert", "tls-key", "tls-ca", "out"});
  if (!flags.ok()) return Fail(kExitUsage, flags.status());
  uint64_t from = 1;
  if (flags->Has("from") && (!absl::SimpleAtoi(flags->Get("from"), &from) || from == 0)) {
    return Fail(kExitUsage, "--from: want an entry number from 1");
  }
  const std::string out = flags->Get("out");
  std::error_code ec;
  if (fs::exists(out, ec)) return Fail(kExitUsage, absl::StrCat(out, " already exists"));
  fs::create_directories(out, ec);
  if (ec) return Fail(kExitError, absl::StrCat("cannot create ", out));

  agent::KeydEndpoint endpoint{flags->Get("keyd"), flags->Get("tls-cert"), flags->Get("tls-key"),
                               flags->Get("tls-ca"), flags->Get("tls-server-name")};
  auto channel = agent::MakeKeydChannel(endpoint);
  if (!channel.ok()) return Fail(kExitError, channel.status());
  auto stub = v1::AuditService::NewStub(*channel);

  // 1. The daemon's signed head: the anchor, the signer chain, the interval.
  v1::GetCheckpointResponse anchor;
  {
    auto context = agent::ContextWithTimeout(absl::Seconds(30));
    grpc::Status status = stub->GetCheckpoint(context.get(), {}, &anchor);
    if (!status.ok()) return KeydFail(agent::FromGrpcStatus("GetCheckpoint", status));
  }
  std::string chain_pem;
  for (const std::string& der : anchor.certificate_chain()) chain_pem += CertificatePem(der);
  if (chain_pem.empty()) return Fail(kExitKeydUnavailable, "daemon sent no signer certificate");
  const std::string anchor_hex = HexEncode(anchor.head_sha256());

  // 2. The entries and checkpoints, written as they arrive.
  std::ofstream entries(out + "/" + audit::LogFileName(1), std::ios::binary);
  std::ofstream checkpoints(out + "/checkpoints.jsonl", std::ios::binary);
  v1::StreamAuditLogRequest request;
  request.set_from_sequence(from);
  request.set_follow(flags->switches.count("follow") != 0);
  grpc::ClientContext context;
  if (!request.follow()) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
  }
  auto reader = stub->StreamAuditLog(&context, request);
  v1::StreamAuditLogResponse item;
  uint64_t entry_count = 0;
  uint64_t checkpoint_count = 0;
  while (reader->Read(&item)) {
    if (!item.checkpoint_json().empty()) {
      checkpoints << item.checkpoint_json() << '\n' << std::flush;
      ++checkpoint_count;
    } else {
      entries << item.entry_json() << '\n';
      if (request.follow()) entries.flush();
      ++entry_count;
    }
  }
  grpc::Status streamed = reader->Finish();
  entries.close();
  checkpoints.close();
  if (!streamed.ok()) return KeydFail(agent::FromGrpcStatus("StreamAuditLog", streamed));
  if (!entries || !checkpoints) return Fail(kExitError, absl::StrCat("cannot write ", out));

  // 3. What verify needs beside the files.
  const std::string meta =
      audit::SerializeAuditExportMeta({.anchor_sequence = anchor.sequence(),
                                       .anchor_sha256 = anchor_hex,
                                       .checkpoint_interval = anchor.checkpoint_interval()});
  for (const auto& [name, data] : {std::pair<std::string, std::string>{"export.json", meta},
                                   {"signer-chain.pem", chain_pem}}) {
    if (absl::Status written = WriteDurably(out + "/" + name, data); !written.ok()) {
      return Fail(kExitError, written);
    }
  }
  std::printf("exported %llu entries and %llu checkpoints to %s\nanchor: sequence %llu sha256 %s\n",
              static_cast<unsigned long long>(entry_count),
              static_cast<unsigned long long>(checkpoint_count), out.c_str(),
              static_cast<unsigned long long>(anchor.sequence()), anchor_hex.c_str());
  return kExitOk;
}

// The public key of the chain's leaf, if the chain leads to a CA of
// `ca_pem`; null otherwise (the reason in `why`).
EVP_PKEY* TrustedSignerKey(const std::string& chain_pem, const std::string& ca_pem,
                           std::string& why) {
  auto read_all = [](const std::string& pem) {
    std::vector<X509*> certs;
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      certs.push_back(cert);
    }
    ERR_clear_error();
    return certs;
  };
  std::vector<X509*> chain = read_all(chain_pem);
  std::vector<X509*> cas = read_all(ca_pem);
  EVP_PKEY* key = nullptr;
  X509_STORE* store = X509_STORE_new();
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  for (X509* ca : cas) X509_STORE_add_cert(store, ca);
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i]);
  if (chain.empty() || cas.empty()) {
    why = chain.empty() ? "no signer certificate" : "no CA certificate in --ca";
  } else if (X509_STORE_CTX_init(ctx, store, chain[0], untrusted) != 1 ||
             X509_verify_cert(ctx) != 1) {
    why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  } else {
    key = X509_get_pubkey(chain[0]);
  }
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  for (X509* cert : chain) X509_free(cert);
  for (X509* cert : cas) X509_free(cert);
  ERR_clear_error();
  return key;
}

int Verify(const std::vector<std::string>& args) {
  auto flags = agent::ParseArgs(
      args,
      {"log", "ca", "signer-chain", "anchor-sequence", "anchor-sha256", "checkpoint-interval"}, {},
      {"log", "ca"});
  if (!flags.ok()) return Fail(kExitUsage, flags.status());
  const std::string dir = flags->Get("log");

  // export.json supplies defaults; flags override it.
  audit::AuditExportMeta meta;
  if (auto text = ReadFile(dir + "/export.json", 1 << 16); text.ok()) {
    auto parsed = audit::ParseAuditExportMeta(*text);
    if (!parsed.ok()) return Fail(kExitError, parsed.status());
    meta = *std::move(parsed);
  }
  audit::VerifyOptions options;
  options.checkpoint_interval = meta.checkpoint_interval;
  if (flags->Has("checkpoint-interval") &&
      !absl::SimpleAtoi(flags->Get("checkpoint-interval"), &options.checkpoint_interval)) {
    return Fail(kExitUsage, "--checkpoint-interval: want a number");
  }
  audit::CheckpointAnchor anchor;
  anchor.sequence = meta.anchor_sequence;
  anchor.head_sha256 = meta.anchor_sha256;
  if (flags->Has("anchor-sequence") != flags->Has("anchor-sha256")) {
    return Fail(kExitUsage, "--anchor-sequence and --anchor-sha256 go together");
  }
  if (flags->Has("anchor-sequence")) {
    if (!absl::SimpleAtoi(flags->Get("anchor-sequence"), &anchor.sequence)) {
      return Fail(kExitUsage, "--anchor-sequence: want a number");
    }
    anchor.head_sha256 = flags->Get("anchor-sha256");
  }
  if (anchor.sequence > 0) options.anchor = anchor;

  auto chain = ReadFile(flags->Get("signer-chain", dir + "/signer-chain.pem"), 1 << 20);
  if (!chain.ok()) return Fail(kExitError, chain.status());
  auto ca = ReadFile(flags->Get("ca"), 1 << 20);
  if (!ca.ok()) return Fail(kExitError, ca.status());
  std::string why;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(TrustedSignerKey(*chain, *ca, why),
                                                          EVP_PKEY_free);
  if (key == nullptr) {
    return Fail(kExitAuditSignerUntrusted, absl::StrCat("signer certificate not trusted: ", why));
  }

  std::vector<std::string> files;
  for (uint64_t index : audit::ListLogFiles(dir)) {
    auto contents = ReadFile(dir + "/" + audit::LogFileName(index), kMaxLogFileBytes);
    if (!contents.ok()) return Fail(kExitError, contents.status());
    files.push_back(*std::move(contents));
  }
  if (files.empty()) return Fail(kExitError, absl::StrCat("no audit-NNNNNN.jsonl in ", dir));
  std::string checkpoints;
  if (fs::exists(dir + "/checkpoints.jsonl")) {
    auto contents = ReadFile(dir + "/checkpoints.jsonl", kMaxLogFileBytes);
    if (!contents.ok()) return Fail(kExitError, contents.status());
    checkpoints = *std::move(contents);
  }

  const audit::VerifyReport report = audit::VerifyAuditLog(files, checkpoints, key.get(), options);
  for (const audit::Finding& finding : report.findings) {
    std::printf("entry %llu: %s: %s\n", static_cast<unsigned long long>(finding.sequence),
                audit::FindingKindName(finding.kind).c_str(), finding.message.c_str());
  }
  std::printf(
      "%s: %llu entries (last %llu), %llu checkpoints checked, last checkpoint %llu, "
      "%llu entries after it%s%s\n",
      report.verified ? "verified" : "REFUSED", static_cast<unsigned long long>(report.entries),
      static_cast<unsigned long long>(report.last_sequence),
      static_cast<unsigned long long>(report.checkpoints_checked),
      static_cast<unsigned long long>(report.last_checkpoint_sequence),
      static_cast<unsigned long long>(report.unanchored_entries),
      options.anchor.has_value() ? absl::StrCat(", anchor ", anchor.sequence).c_str()
                                 : ", no anchor",
      report.checkpoint_failures > 0
          ? absl::StrCat(", ", report.checkpoint_failures, " checkpoint failures recorded").c_str()
          : "");
  return report.verified ? kExitOk : kExitRefused;
}

}  // namespace

int RunAuditCommand(const std::vector<std::string>& args) {
  if (args.empty() || (args[0] != "export" && args[0] != "verify")) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  return args[0] == "export" ? Export(rest) : Verify(rest);
}

}  // namespace hosn::ctl
