// Release policies: from the SetReleasePolicy request to the stored
// hosn.keyd.v1.ReleasePolicy, and from that to the attest::BootPolicy the
// verifier applies.
//
// A policy must name at least one PCR reference set (fail closed: a class
// with no golden values releases nothing), every set must name the same bank,
// and the resulting BootPolicy must pass attest::ValidateBootPolicy. The
// PCRs a quote must cover are the union of the sets' PCRs. With
// require_event_log, the log must reproduce those of PCRs 0-7 that the
// policy covers. Event-log rules (require_secure_boot, allowed EFI
// applications, forbidden EFI actions) need require_event_log and add the PCR
// they read (7, 4) to the quoted and replayed PCRs without pinning its value.
// Stateless and thread-safe.
#ifndef HOSN_SERVER_RELEASE_RELEASE_POLICY_H_
#define HOSN_SERVER_RELEASE_RELEASE_POLICY_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "hosn/keyd/v1/admin.pb.h"
#include "hosn/keyd/v1/fleet.pb.h"
#include "server/attest/boot_policy.h"

namespace hosn::release {

// The BootPolicy of a stored policy. InvalidArgument naming the defect if it
// is unusable (see above).
absl::StatusOr<attest::BootPolicy> ToBootPolicy(const keyd::v1::ReleasePolicy& policy);

// The policy to store for `request` at `version`. InvalidArgument naming the
// defect: empty class, no reference set, mixed banks, an empty model name,
// or anything ValidateBootPolicy refuses.
absl::StatusOr<keyd::v1::ReleasePolicy> PolicyFromRequest(
    const keyd::v1::SetReleasePolicyRequest& request, uint64_t version, int64_t now_unix_seconds);

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_RELEASE_POLICY_H_
