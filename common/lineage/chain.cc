// Lineage chain verification; see chain.h and docs/lineage.md.
#include "common/lineage/chain.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/absl_compat.h"
#include "common/bundle/errors.h"

namespace hosn::lineage {
namespace {

namespace v1 = ::hosn::keyd::v1;

std::string RunKindName(v1::LineageRunKind kind) {
  switch (kind) {
    case v1::LINEAGE_RUN_KIND_FINE_TUNE:
      return "fine-tune";
    case v1::LINEAGE_RUN_KIND_LORA_ADAPTER:
      return "lora-adapter";
    case v1::LINEAGE_RUN_KIND_MERGE:
      return "merge";
    default:
      return "unknown";
  }
}

std::string ModelName(const v1::LineageModel& model) {
  return absl::StrCat(model.name(), "@", model.version());
}

}  // namespace

absl::Status VerifyChain(const ChainInput& input, std::vector<std::string>* report) {
  // name@version -> manifest digest.
  std::map<std::string, std::string> bundles;
  for (const ChainBundle& bundle : input.bundles) {
    const std::string key = absl::StrCat(bundle.name, "@", bundle.version);
    auto [it, inserted] = bundles.emplace(key, bundle.manifest_sha256);
    if (!inserted && it->second != bundle.manifest_sha256) {
      return bundle::BundleError(
          absl::StatusCode::kFailedPrecondition, "bundle_ambiguous",
          absl::StrCat(key, ": two bundles with different manifests (", bundle.label, ")"));
    }
  }
  // envelope digest -> subject (output manifest digest); subjects produced.
  std::map<std::string, std::string> subject_of;
  std::set<std::string> produced;
  for (const ChainLink& link : input.links) {
    const auto& output = link.verified.statement.predicate().output();
    subject_of[link.verified.envelope_sha256] = output.manifest_sha256();
    produced.insert(output.manifest_sha256());
  }

  std::set<std::string> datasets_used;
  for (const ChainLink& link : input.links) {
    const LineagePredicate& p = link.verified.statement.predicate();
    auto fail = [&](std::string_view name, const std::string& detail) {
      return bundle::BundleError(
          absl::StatusCode::kFailedPrecondition, name,
          absl::StrCat("link ", link.label, " (", ModelName(p.output()), "): ", detail));
    };
    // The output and the inputs are the bundles' actual signed manifests.
    auto output = bundles.find(ModelName(p.output()));
    if (output == bundles.end()) {
      return fail("output_bundle_missing", absl::StrCat("no bundle ", ModelName(p.output())));
    }
    if (output->second != p.output().manifest_sha256()) {
      return fail("output_digest_mismatch",
                  absl::StrCat("bundle manifest ", output->second, ", statement ",
                               p.output().manifest_sha256()));
    }
    std::set<std::string> inputs;
    std::vector<std::string> input_names;
    for (const v1::LineageModel& base : p.base_models()) {
      auto found = bundles.find(ModelName(base));
      if (found == bundles.end()) {
        return fail("base_bundle_missing", absl::StrCat("no bundle ", ModelName(base)));
      }
      if (found->second != base.manifest_sha256()) {
        return fail("base_digest_mismatch",
                    absl::StrCat(ModelName(base), ": bundle manifest ", found->second,
                                 ", statement ", base.manifest_sha256()));
      }
      inputs.insert(base.manifest_sha256());
      input_names.push_back(ModelName(base));
    }
    // Parent links: present, and each produced one of the inputs.
    std::set<std::string> linked_subjects;
    for (const v1::LineageParent& parent : p.parents()) {
      auto found = subject_of.find(parent.envelope_sha256());
      if (found == subject_of.end()) {
        return fail("parent_missing",
                    absl::StrCat("no envelope with SHA-256 ", parent.envelope_sha256()));
      }
      if (inputs.count(found->second) == 0) {
        return fail("parent_mismatch", absl::StrCat("parent ", parent.envelope_sha256(),
                                                    " produced none of the inputs"));
      }
      linked_subjects.insert(found->second);
    }
    // An input produced by a given link must be linked to it.
    for (const v1::LineageModel& base : p.base_models()) {
      if (produced.count(base.manifest_sha256()) &&
          !linked_subjects.count(base.manifest_sha256())) {
        return fail("parent_unlinked", absl::StrCat(ModelName(base),
                                                    " was produced by a given link that is not "
                                                    "listed as a parent"));
      }
    }
    for (const v1::LineageDataset& dataset : p.datasets()) {
      auto given = input.datasets.find(dataset.name());
      if (given == input.datasets.end()) continue;
      datasets_used.insert(dataset.name());
      if (given->second != dataset.sha256()) {
        return fail("dataset_digest_mismatch",
                    absl::StrCat(dataset.name(), ": file ", given->second, ", statement ",
                                 dataset.sha256()));
      }
    }
    if (report != nullptr) {
      report->push_back(absl::StrCat(
          "ok: ", link.label, ": ", RunKindName(p.run_kind()), " ", ModelName(p.output()), " <- ",
          absl::StrJoin(input_names, " + "), ", signed by ", link.verified.signer_subject));
    }
  }
  for (const auto& [name, digest] : input.datasets) {
    if (!datasets_used.count(name)) {
      return bundle::BundleError(absl::StatusCode::kFailedPrecondition, "dataset_unused",
                                 absl::StrCat(name, ": named by no statement"));
    }
  }
  return absl::OkStatus();
}

}  // namespace hosn::lineage
