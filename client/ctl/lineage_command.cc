// `hosnctl lineage sign | verify`; see lineage_command.h and docs/lineage.md.
#include "client/ctl/lineage_command.h"

#include <sys/stat.h>

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/ctl/bundle_command.h"
#include "client/ctl/keyd_signer.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/bundle/bundle.h"
#include "common/lineage/chain.h"
#include "common/lineage/lineage.h"
#include "common/lineage/training_host_quote.h"

namespace hosn::ctl {
namespace {

namespace v1 = ::hosn::keyd::v1;

constexpr char kUsage[] =
    "usage:\n"
    "  hosnctl lineage sign --kind fine-tune|lora-adapter|merge --base DIR [--base DIR]...\n"
    "      --output DIR --ca PEM --out ENVELOPE\n"
    "      [--dataset NAME=FILE]... [--dataset-digest NAME=SHA256HEX]... [--param KEY=VALUE]...\n"
    "      [--parent ENVELOPE]... [--created-at RFC3339]\n"
    "      [--quote-attest FILE --quote-signature FILE --quote-ak-public FILE]\n"
    "      --keyd HOST:PORT --tls-cert PEM --tls-key REF --tls-ca PEM\n"
    "      [--tls-server-name NAME] [--signer-label LABEL] [--keyd-timeout SECONDS]\n"
    "  hosnctl lineage verify --ca PEM --bundle DIR [--bundle DIR]...\n"
    "      --envelope FILE [--envelope FILE]... [--dataset NAME=FILE]...\n"
    "      [--training-host-ak AK_PUBLIC]\n"
    "  hosnctl lineage quote-nonce --output DIR --ca PEM\n"
    "      prints the qualifyingData (hex) the training host quotes with, e.g.\n"
    "      tpm2_quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q HEX -g sha256 \\\n"
    "        -m attest.bin -s sig.bin    (then sign --quote-attest attest.bin ...)\n"
    "exit codes: 0 ok, 1 error, 2 usage, 3 bundle refused, 5 hosn-keyd refused the caller,\n"
    "  6 hosn-keyd unreachable or failed, 7 lineage refused (envelope or link)\n";

// Every flag takes a value and may repeat; `single` ones may appear once.
struct Args {
  std::multimap<std::string, std::string> values;

  std::string Get(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? "" : it->second;
  }
  std::vector<std::string> All(const std::string& name) const {
    std::vector<std::string> out;
    for (auto [it, end] = values.equal_range(name); it != end; ++it) out.push_back(it->second);
    return out;
  }
};

std::optional<Args> ParseArgs(const std::vector<std::string>& args,
                              const std::set<std::string>& single,
                              const std::set<std::string>& repeated,
                              const std::vector<std::string>& required, FILE* err) {
  Args parsed;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    if (name.rfind("--", 0) != 0) {
      std::fprintf(err, "hosnctl: unexpected argument %s\n%s", name.c_str(), kUsage);
      return std::nullopt;
    }
    name = name.substr(2);
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      std::fprintf(err, "hosnctl: --%s needs a value\n", name.c_str());
      return std::nullopt;
    }
    if (!single.count(name) && !repeated.count(name)) {
      std::fprintf(err, "hosnctl: unknown flag --%s\n%s", name.c_str(), kUsage);
      return std::nullopt;
    }
    if (single.count(name) && parsed.values.count(name)) {
      std::fprintf(err, "hosnctl: --%s given twice\n", name.c_str());
      return std::nullopt;
    }
    parsed.values.emplace(name, value);
  }
  for (const std::string& name : required) {
    if (parsed.Get(name).empty()) {
      std::fprintf(err, "hosnctl: --%s is required\n%s", name.c_str(), kUsage);
      return std::nullopt;
    }
  }
  return parsed;
}

// "NAME=VALUE" with a non-empty name.
std::optional<std::pair<std::string, std::string>> SplitPair(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == 0 || eq == std::string::npos) return std::nullopt;
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

int Fail(int code, const std::string& what, const absl::Status& status, FILE* err) {
  std::fprintf(err, "hosnctl: %s: %s\n", what.c_str(), std::string(status.message()).c_str());
  return code;
}

int KeydExit(const absl::Status& status) {
  if (!IsKeydError(status)) return kExitError;
  return status.code() == absl::StatusCode::kPermissionDenied ||
                 status.code() == absl::StatusCode::kUnauthenticated
             ? kExitKeydRefused
             : kExitKeydUnavailable;
}

// A bundle verified in full, as the model it holds and its manifest digest.
absl::StatusOr<v1::LineageModel> ModelOfBundle(const std::string& dir,
                                               const bundle::TrustOptions& trust) {
  auto verified = bundle::VerifyBundle(dir, trust);
  if (!verified.ok()) return verified.status();
  v1::LineageModel model;
  model.set_name(verified->verified.manifest.model().name());
  model.set_version(verified->verified.manifest.model().version());
  model.set_manifest_sha256(lineage::Sha256Hex(verified->verified.bytes));
  return model;
}

// SHA-256 of each --dataset NAME=FILE into `digests`; an exit code on failure.
std::optional<int> HashDatasets(const Args& flags, std::map<std::string, std::string>* digests,
                                FILE* err) {
  for (const std::string& spec : flags.All("dataset")) {
    auto pair = SplitPair(spec);
    if (!pair) {
      return Fail(kExitUsage, "--dataset", absl::InvalidArgumentError("want NAME=FILE"), err);
    }
    auto digest = lineage::FileSha256Hex(pair->second);
    if (!digest.ok()) return Fail(kExitError, "--dataset " + pair->first, digest.status(), err);
    (*digests)[pair->first] = *digest;
  }
  return std::nullopt;
}

std::optional<v1::LineageRunKind> RunKind(const std::string& name) {
  if (name == "fine-tune") return v1::LINEAGE_RUN_KIND_FINE_TUNE;
  if (name == "lora-adapter") return v1::LINEAGE_RUN_KIND_LORA_ADAPTER;
  if (name == "merge") return v1::LINEAGE_RUN_KIND_MERGE;
  return std::nullopt;
}

int Sign(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags = ParseArgs(
      args,
      {"kind", "output", "ca", "out", "created-at", "quote-attest", "quote-signature",
       "quote-ak-public", "keyd", "tls-cert", "tls-key", "tls-ca", "tls-server-name",
       "signer-label", "keyd-timeout"},
      {"base", "dataset", "dataset-digest", "param", "parent"},
      {"kind", "base", "output", "ca", "out", "keyd", "tls-cert", "tls-key", "tls-ca"}, err);
  if (!flags) return kExitUsage;
  v1::LineagePredicate predicate;
  const std::optional<v1::LineageRunKind> kind = RunKind(flags->Get("kind"));
  if (!kind) {
    std::fprintf(err, "hosnctl: --kind must be fine-tune, lora-adapter or merge\n");
    return kExitUsage;
  }
  predicate.set_run_kind(*kind);
  const std::string target = flags->Get("out");
  struct stat st;
  if (::lstat(target.c_str(), &st) == 0) {
    std::fprintf(err, "hosnctl: %s: exists; an envelope is never overwritten\n", target.c_str());
    return kExitUsage;
  }

  auto ca = ReadFile(flags->Get("ca"), 1 << 20);
  if (!ca.ok()) return Fail(kExitError, "--ca", ca.status(), err);
  const bundle::TrustOptions trust{*ca, std::nullopt};

  // The models, from their bundles' verified manifests.
  for (const std::string& dir : flags->All("base")) {
    auto model = ModelOfBundle(dir, trust);
    if (!model.ok()) return Fail(kExitRefused, "bundle " + dir, model.status(), err);
    *predicate.add_base_models() = *std::move(model);
  }
  auto output = ModelOfBundle(flags->Get("output"), trust);
  if (!output.ok()) {
    return Fail(kExitRefused, "bundle " + flags->Get("output"), output.status(), err);
  }
  *predicate.mutable_output() = *std::move(output);

  // Data sets: hashed here from files, or given as digests.
  std::map<std::string, std::string> datasets;
  if (auto failed = HashDatasets(*flags, &datasets, err)) return *failed;
  for (const std::string& spec : flags->All("dataset-digest")) {
    auto pair = SplitPair(spec);
    if (!pair) {
      return Fail(kExitUsage, "--dataset-digest", absl::InvalidArgumentError("want NAME=HEX"), err);
    }
    datasets[pair->first] = pair->second;
  }
  for (const auto& [name, digest] : datasets) {
    v1::LineageDataset* dataset = predicate.add_datasets();
    dataset->set_name(name);
    dataset->set_sha256(digest);
  }
  std::map<std::string, std::string> params;  // sorted by name
  for (const std::string& spec : flags->All("param")) {
    auto pair = SplitPair(spec);
    if (!pair || !params.emplace(pair->first, pair->second).second) {
      return Fail(kExitUsage, "--param",
                  absl::InvalidArgumentError("want KEY=VALUE, each key once"), err);
    }
  }
  for (const auto& [name, value] : params) {
    v1::LineageHyperparameter* param = predicate.add_hyperparameters();
    param->set_name(name);
    param->set_value(value);
  }

  // The quote: all three parts or none.
  const std::vector<std::string> quote_files = {
      flags->Get("quote-attest"), flags->Get("quote-signature"), flags->Get("quote-ak-public")};
  const int quote_parts = static_cast<int>(!quote_files[0].empty()) +
                          static_cast<int>(!quote_files[1].empty()) +
                          static_cast<int>(!quote_files[2].empty());
  if (quote_parts != 0 && quote_parts != 3) {
    std::fprintf(err,
                 "hosnctl: --quote-attest, --quote-signature and --quote-ak-public go together\n");
    return kExitUsage;
  }
  if (quote_parts == 3) {
    std::string parts[3];
    for (int i = 0; i < 3; ++i) {
      auto bytes = ReadFile(quote_files[i], 1 << 16);
      if (!bytes.ok()) return Fail(kExitError, quote_files[i], bytes.status(), err);
      parts[i] = *std::move(bytes);
    }
    v1::LineageTpmQuote* quote = predicate.mutable_training_host_quote();
    quote->set_attest(parts[0]);
    quote->set_signature(parts[1]);
    quote->set_ak_public(parts[2]);
    // Refuse a quote a verifier would refuse before the HSM signs it.
    v1::LineageStatement draft;
    *draft.mutable_predicate() = predicate;
    auto checked = lineage::VerifyTrainingHostQuote(draft, std::nullopt);
    if (!checked.ok())
      return Fail(kExitLineageRefused, "training host quote", checked.status(), err);
  }

  // Parents: verified envelopes that produced one of the inputs.
  std::set<std::string> inputs;
  for (const auto& base : predicate.base_models()) inputs.insert(base.manifest_sha256());
  for (const std::string& file : flags->All("parent")) {
    auto bytes = ReadFile(file, lineage::kMaxEnvelopeBytes);
    if (!bytes.ok()) return Fail(kExitError, file, bytes.status(), err);
    auto parent = lineage::VerifyEnvelope(*bytes, trust);
    if (!parent.ok()) return Fail(kExitLineageRefused, "link " + file, parent.status(), err);
    if (!inputs.count(parent->statement.predicate().output().manifest_sha256())) {
      return Fail(kExitLineageRefused, "link " + file,
                  absl::FailedPreconditionError("parent_mismatch: produced none of the inputs"),
                  err);
    }
    predicate.add_parents()->set_envelope_sha256(parent->envelope_sha256);
  }
  predicate.set_created_at(
      flags->Get("created-at").empty()
          ? absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone())
          : flags->Get("created-at"));

  auto statement = lineage::MakeStatement(predicate);
  if (!statement.ok()) return Fail(kExitUsage, "statement", statement.status(), err);
  auto payload = lineage::SerializeStatement(*statement);
  if (!payload.ok()) return Fail(kExitError, "statement", payload.status(), err);

  // Sign through hosn-keyd.
  auto keyd_options =
      KeydOptionsFromFlags([&](const std::string& name) { return flags->Get(name); });
  if (!keyd_options.ok()) return Fail(kExitUsage, "sign", keyd_options.status(), err);
  auto keyd = KeydManifestSigner::Create(*keyd_options);
  if (!keyd.ok()) return Fail(KeydExit(keyd.status()), "sign", keyd.status(), err);
  auto signed_statement = (*keyd)->SignStatement(lineage::kPayloadType, *payload);
  if (!signed_statement.ok()) {
    return Fail(KeydExit(signed_statement.status()), "sign", signed_statement.status(), err);
  }
  lineage::DsseEnvelope envelope;
  envelope.set_payload_type(std::string(lineage::kPayloadType));
  envelope.set_payload(*payload);
  v1::DsseSignature* signature = envelope.add_signatures();
  signature->set_keyid(signed_statement->key_id());
  signature->set_sig(signed_statement->signature());
  for (const std::string& der : signed_statement->certificate_chain()) {
    signature->add_certificate_chain(der);
  }
  auto bytes = lineage::SerializeEnvelope(envelope);
  if (!bytes.ok()) return Fail(kExitError, "envelope", bytes.status(), err);
  // Checked as a verifier will before anything is written.
  auto verified = lineage::VerifyEnvelope(*bytes, trust);
  if (!verified.ok()) return Fail(kExitLineageRefused, "signed envelope", verified.status(), err);
  absl::Status written = WriteFileAtomically(target, *bytes, 0644);
  if (!written.ok()) return Fail(kExitError, target, written, err);
  std::fprintf(out, "signed %s %s@%s: %s (envelope sha256 %s)\n", flags->Get("kind").c_str(),
               predicate.output().name().c_str(), predicate.output().version().c_str(),
               target.c_str(), verified->envelope_sha256.c_str());
  return kExitOk;
}

// Checks each link's training-host quote (section 6 of docs/lineage.md) and
// prints one line per link; an exit code on failure. With a pinned AK every
// quote must be by that AK (a link without a quote says so; it cannot have
// lost one, which the envelope signature covers).
std::optional<int> VerifyQuotes(const lineage::ChainInput& input,
                                const std::optional<std::string>& pinned_ak, FILE* out, FILE* err) {
  for (const auto& link : input.links) {
    const v1::LineageStatement& statement = link.verified.statement;
    if (!statement.predicate().has_training_host_quote()) {
      std::fprintf(out, "link %s: no training host quote\n", link.label.c_str());
      continue;
    }
    auto quote = lineage::VerifyTrainingHostQuote(statement, pinned_ak);
    if (!quote.ok()) {
      const int code = quote.status().code() == absl::StatusCode::kFailedPrecondition
                           ? kExitLineageRefused
                       : quote.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                                                     : kExitError;
      return Fail(code, "link " + link.label, quote.status(), err);
    }
    std::fprintf(out,
                 "link %s: training host quote verified: ak sha256 %s (%s), %s, pcrDigest %s\n",
                 link.label.c_str(), quote->ak_sha256.c_str(),
                 quote->ak_pinned ? "pinned"
                                  : "UNPINNED: any TPM key could have made it; pass "
                                    "--training-host-ak to require the enrolled AK",
                 quote->pcr_selection.c_str(), quote->pcr_digest.c_str());
  }
  return std::nullopt;
}

int QuoteNonce(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags = ParseArgs(args, {"output", "ca"}, {}, {"output", "ca"}, err);
  if (!flags) return kExitUsage;
  auto ca = ReadFile(flags->Get("ca"), 1 << 20);
  if (!ca.ok()) return Fail(kExitError, "--ca", ca.status(), err);
  auto model = ModelOfBundle(flags->Get("output"), bundle::TrustOptions{*ca, std::nullopt});
  if (!model.ok()) return Fail(kExitRefused, "bundle " + flags->Get("output"), model.status(), err);
  auto nonce = lineage::TrainingHostQualifyingData(model->manifest_sha256());
  if (!nonce.ok()) return Fail(kExitError, "quote-nonce", nonce.status(), err);
  std::fprintf(out, "%s\n", HexEncode(*nonce).c_str());
  return kExitOk;
}

int Verify(const std::vector<std::string>& args, FILE* out, FILE* err) {
  auto flags = ParseArgs(args, {"ca", "training-host-ak"}, {"bundle", "envelope", "dataset"},
                         {"ca", "bundle", "envelope"}, err);
  if (!flags) return kExitUsage;
  std::optional<std::string> pinned_ak;
  if (!flags->Get("training-host-ak").empty()) {
    auto bytes = ReadFile(flags->Get("training-host-ak"), 1 << 16);
    if (!bytes.ok()) return Fail(kExitError, "--training-host-ak", bytes.status(), err);
    pinned_ak = *std::move(bytes);
  }
  auto ca = ReadFile(flags->Get("ca"), 1 << 20);
  if (!ca.ok()) return Fail(kExitError, "--ca", ca.status(), err);
  const bundle::TrustOptions trust{*ca, std::nullopt};

  lineage::ChainInput input;
  for (const std::string& dir : flags->All("bundle")) {
    auto model = ModelOfBundle(dir, trust);
    if (!model.ok()) return Fail(kExitRefused, "bundle " + dir, model.status(), err);
    input.bundles.push_back({dir, model->name(), model->version(), model->manifest_sha256()});
  }
  for (const std::string& file : flags->All("envelope")) {
    auto bytes = ReadFile(file, lineage::kMaxEnvelopeBytes);
    if (!bytes.ok()) return Fail(kExitError, file, bytes.status(), err);
    auto verified = lineage::VerifyEnvelope(*bytes, trust);
    if (!verified.ok()) return Fail(kExitLineageRefused, "link " + file, verified.status(), err);
    input.links.push_back({file, *std::move(verified)});
  }
  if (auto failed = HashDatasets(*flags, &input.datasets, err)) return *failed;
  std::vector<std::string> report;
  absl::Status chain = lineage::VerifyChain(input, &report);
  if (!chain.ok()) return Fail(kExitLineageRefused, "lineage", chain, err);
  for (const std::string& line : report) std::fprintf(out, "%s\n", line.c_str());
  if (auto failed = VerifyQuotes(input, pinned_ak, out, err)) return *failed;
  std::fprintf(out, "lineage verified: %zu links, %zu bundles\n", input.links.size(),
               input.bundles.size());
  return kExitOk;
}

}  // namespace

int RunLineageCommand(const std::vector<std::string>& args, FILE* out, FILE* err) {
  if (args.empty()) {
    std::fprintf(err, "%s", kUsage);
    return kExitUsage;
  }
  if (args[0] == "sign") return Sign(args, out, err);
  if (args[0] == "verify") return Verify(args, out, err);
  if (args[0] == "quote-nonce") return QuoteNonce(args, out, err);
  if (args[0] == "help" || args[0] == "--help") {
    std::fprintf(out, "%s", kUsage);
    return kExitOk;
  }
  std::fprintf(err, "hosnctl: unknown lineage command %s\n%s", args[0].c_str(), kUsage);
  return kExitUsage;
}

}  // namespace hosn::ctl
