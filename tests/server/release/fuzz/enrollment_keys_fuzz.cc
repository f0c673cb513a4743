// libFuzzer target: the AK and EK public areas of an enrollment request, in
// the order ReleaseService::ParseEnrollmentKeys and BeginEnrollment use them:
// tpm::Unmarshal2bPublic on each, attest::AcceptAk on the AK, the AK's name
// and the EK's marshalled TPMT_PUBLIC (its digest goes into the node record),
// then enroll::MakeCredential to that EK for that AK.
// Input: two fields (tests/testing/fuzz_input.h): ak_public, ek_public.
// Invariants: a TPM2B_PUBLIC that parses re-marshals to exactly its inner
// bytes (one meaning per byte string); a refused AK is a kAkNotAcceptable
// denial; an accepted AK has a name of nameAlg plus digest.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/base/secret_bytes.h"
#include "common/tpm/marshal.h"
#include "server/attest/denial.h"
#include "server/attest/quote_verifier.h"
#include "server/enroll/make_credential.h"
#include "tests/testing/fuzz_input.h"
#include "tests/testing/fuzz_tss2_quiet.h"

namespace {

std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The public area in `sized`, checked to re-marshal to its own bytes.
std::optional<TPMT_PUBLIC> ParseSized(std::string_view sized) {
  absl::StatusOr<TPMT_PUBLIC> parsed = hosn::tpm::Unmarshal2bPublic(AsSpan(sized));
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return std::nullopt;
  }
  absl::StatusOr<hosn::tpm::Bytes> again = hosn::tpm::MarshalPublic(*parsed);
  const std::span<const uint8_t> inner = AsSpan(sized).subspan(2);
  if (!again.ok() || !std::equal(again->begin(), again->end(), inner.begin(), inner.end())) {
    std::abort();
  }
  return *parsed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn;
  const auto [ak_public, ek_public] = testing::SplitFuzzInput<2>(data, size);

  std::optional<TPMT_PUBLIC> ak = ParseSized(ak_public);
  std::optional<TPMT_PUBLIC> ek = ParseSized(ek_public);
  if (!ak.has_value()) return 0;
  absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> accepted = attest::AcceptAk(*ak);
  if (!accepted.ok()) {
    if (attest::GetDenialReason(accepted.status()) != attest::DenialReason::kAkNotAcceptable) {
      std::abort();
    }
    return 0;
  }
  absl::StatusOr<tpm::Bytes> name = enroll::ObjectName(*ak);
  if (!name.ok()) return 0;  // an AK whose nameAlg hashes nothing is refused there
  if (name->size() <= 2 || ((*name)[0] << 8 | (*name)[1]) != ak->nameAlg) std::abort();
  if (!ek.has_value()) return 0;

  const SecretBytes credential = SecretBytes::CopyOf(std::string(32, '\x5a'));
  absl::StatusOr<enroll::CredentialChallenge> challenge =
      enroll::MakeCredential(*ek, *ak, credential);
  if (challenge.ok() &&
      (challenge->credential_blob.empty() || challenge->encrypted_secret.empty())) {
    std::abort();
  }
  return 0;
}
