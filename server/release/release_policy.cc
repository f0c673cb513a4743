// Release policy conversion and validation; see release_policy.h.
#include "server/release/release_policy.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tpm/tpm_types.h"

namespace hosn::release {

namespace v1 = ::hosn::keyd::v1;

absl::StatusOr<attest::BootPolicy> ToBootPolicy(const v1::ReleasePolicy& policy) {
  if (policy.reference_sets().empty()) {
    return absl::InvalidArgumentError("policy: at least one reference set is required");
  }
  attest::BootPolicy boot;
  boot.node_class = policy.node_class();
  const std::string& bank_name = policy.reference_sets(0).bank();
  HOSN_ASSIGN_OR_RETURN(boot.bank, tpm::HashAlgFromName(bank_name.empty() ? "sha256" : bank_name));
  std::set<uint32_t> required;
  for (const v1::PcrReferenceSet& set : policy.reference_sets()) {
    if (set.bank() != bank_name) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: reference set ", set.name(), " names another bank"));
    }
    if (set.pcrs().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: reference set ", set.name(), " names no PCR"));
    }
    attest::PcrReferenceSet reference;
    reference.name = set.name();
    for (const auto& [index, digest] : set.pcrs()) {
      reference.pcrs[index] = tpm::Bytes(digest.begin(), digest.end());
      required.insert(index);
    }
    boot.reference_sets.push_back(std::move(reference));
  }
  // The PCRs the event rules read must be quoted and replayed, whatever
  // their values.
  const v1::EventLogRules& rules = policy.event_log_rules();
  boot.event_rules.require_secure_boot = rules.require_secure_boot();
  if (rules.require_secure_boot()) required.insert(attest::kSecureBootPcr);
  for (const std::string& digest : rules.allowed_efi_application_sha256()) {
    boot.event_rules.allowed_efi_applications.emplace_back(digest.begin(), digest.end());
    required.insert(attest::kEfiApplicationPcr);
  }
  boot.event_rules.forbidden_efi_actions.assign(rules.forbidden_efi_actions().begin(),
                                                rules.forbidden_efi_actions().end());
  boot.required_pcrs.assign(required.begin(), required.end());
  boot.require_event_log = policy.require_event_log();
  boot.event_log_pcrs.clear();
  for (uint32_t index : required) {
    if (index <= 7) boot.event_log_pcrs.push_back(index);
  }
  if (boot.require_event_log && boot.event_log_pcrs.empty()) {
    return absl::InvalidArgumentError("policy: an event log needs at least one of PCRs 0-7");
  }
  HOSN_RETURN_IF_ERROR(attest::ValidateBootPolicy(boot));
  return boot;
}

absl::StatusOr<v1::ReleasePolicy> PolicyFromRequest(const v1::SetReleasePolicyRequest& request,
                                                    uint64_t version, int64_t now_unix_seconds) {
  if (request.node_class().empty()) return absl::InvalidArgumentError("node_class: empty");
  v1::ReleasePolicy policy;
  policy.set_node_class(request.node_class());
  policy.set_version(version);
  *policy.mutable_reference_sets() = request.reference_sets();
  policy.set_require_event_log(request.require_event_log());
  *policy.mutable_event_log_rules() = request.event_log_rules();
  for (const std::string& model : request.allowed_models()) {
    if (model.empty()) return absl::InvalidArgumentError("allowed_models: empty name");
    policy.add_allowed_models(model);
  }
  policy.set_updated_at_unix_seconds(now_unix_seconds);
  HOSN_RETURN_IF_ERROR(ToBootPolicy(policy).status());
  return policy;
}

}  // namespace hosn::release
