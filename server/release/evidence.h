// The node's evidence as it arrives in a ReleaseKeyRequest, turned into the
// verifier's types: PCR values per bank, and the ephemeral public key that
// the DEK will be wrapped to. Untrusted input; stateless and thread-safe.
#ifndef HOSN_SERVER_RELEASE_EVIDENCE_H_
#define HOSN_SERVER_RELEASE_EVIDENCE_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "hosn/keyd/v1/key_release.pb.h"

namespace hosn::release {

// InvalidArgument for an unknown bank name, a PCR index above 23 or a PCR
// sent twice. Digest lengths are checked by the quote verifier.
absl::StatusOr<tpm::PcrValues> PcrValuesFromRequest(
    const google::protobuf::RepeatedPtrField<keyd::v1::PcrValue>& values);

// OK if `spki_der` is exactly one DER SubjectPublicKeyInfo of a P-256 key
// (the only curve of the `ecdh-p256-kwp` scheme). InvalidArgument otherwise.
absl::Status CheckEphemeralKey(std::string_view spki_der);

}  // namespace hosn::release

#endif  // HOSN_SERVER_RELEASE_EVIDENCE_H_
