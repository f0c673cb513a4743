#include "common/lineage/training_host_quote.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/marshal.h"

namespace hosn::lineage {
namespace {

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

absl::Status Named(std::string_view error, const std::string& detail) {
  return absl::FailedPreconditionError(absl::StrCat(ToAbsl(error), ": ", detail));
}

// A TPM2B_PUBLIC, or else a bare TPMT_PUBLIC.
absl::StatusOr<TPMT_PUBLIC> ParseAkPublic(std::string_view bytes) {
  absl::StatusOr<TPMT_PUBLIC> sized = tpm::Unmarshal2bPublic(AsBytes(bytes));
  if (sized.ok()) return sized;
  return tpm::UnmarshalPublic(AsBytes(bytes));
}

}  // namespace

absl::StatusOr<tpm::Bytes> TrainingHostQualifyingData(std::string_view output_manifest_sha256) {
  absl::StatusOr<std::vector<uint8_t>> digest = HexDecode(output_manifest_sha256);
  if (output_manifest_sha256.size() != 64 || !digest.ok() || digest->size() != 32 ||
      HexEncode(*digest) != output_manifest_sha256) {
    return absl::InvalidArgumentError("output manifest sha256 must be 64 lowercase hex digits");
  }
  tpm::Bytes input(kTrainingHostQuoteLabel.begin(), kTrainingHostQuoteLabel.end());
  input.push_back(0x00);
  input.insert(input.end(), digest->begin(), digest->end());
  tpm::Bytes out(SHA256_DIGEST_LENGTH);
  if (SHA256(input.data(), input.size(), out.data()) == nullptr) {
    return absl::InternalError("cannot hash qualifying data");
  }
  return out;
}

absl::StatusOr<VerifiedTrainingHostQuote> VerifyTrainingHostQuote(
    const hosn::keyd::v1::LineageStatement& statement,
    const std::optional<std::string>& pinned_ak) {
  const auto& predicate = statement.predicate();
  if (!predicate.has_training_host_quote()) {
    return Named("quote_missing", "the statement carries no training host quote");
  }
  const auto& quote = predicate.training_host_quote();

  // 1. The AK carried beside the quote: an acceptable AK, and the pinned one.
  absl::StatusOr<TPMT_PUBLIC> public_area = ParseAkPublic(quote.ak_public());
  if (!public_area.ok()) return Named("quote_ak_unacceptable", "akPublic does not parse");
  absl::StatusOr<std::unique_ptr<tpm::AkPublicKey>> ak = tpm::AkPublicKey::Create(*public_area);
  if (!ak.ok()) return Named("quote_ak_unacceptable", std::string(ak.status().message()));
  HOSN_ASSIGN_OR_RETURN(tpm::Bytes ak_bytes, tpm::MarshalPublic(*public_area));
  VerifiedTrainingHostQuote out;
  uint8_t ak_digest[SHA256_DIGEST_LENGTH];
  SHA256(ak_bytes.data(), ak_bytes.size(), ak_digest);
  out.ak_sha256 = HexEncode(std::span<const uint8_t>(ak_digest, sizeof(ak_digest)));
  if (pinned_ak.has_value()) {
    absl::StatusOr<TPMT_PUBLIC> pinned = ParseAkPublic(*pinned_ak);
    if (!pinned.ok()) return absl::InvalidArgumentError("pinned ak public does not parse");
    HOSN_ASSIGN_OR_RETURN(tpm::Bytes pinned_bytes, tpm::MarshalPublic(*pinned));
    if (pinned_bytes != ak_bytes) {
      return Named("quote_ak_mismatch", "the quote's ak is not the pinned training host ak");
    }
    out.ak_pinned = true;
  }

  // 2. Signed by that AK over the exact attest bytes, then a quote, whole.
  absl::StatusOr<tpm::SignatureInfo> signature =
      tpm::CheckQuoteSignature(**ak, AsBytes(quote.attest()), AsBytes(quote.signature()));
  if (!signature.ok()) {
    if (!tpm::QuoteFaultOf(signature.status()).has_value()) return signature.status();
    return Named("quote_signature_invalid", std::string(signature.status().message()));
  }
  out.signature = *signature;
  absl::StatusOr<TPMS_ATTEST> attest = tpm::ParseQuoteAttest(AsBytes(quote.attest()));
  if (!attest.ok()) return Named("quote_malformed", std::string(attest.status().message()));

  // 3. Bound to this output. Both values are public: a plain comparison.
  HOSN_ASSIGN_OR_RETURN(tpm::Bytes expected,
                        TrainingHostQualifyingData(predicate.output().manifest_sha256()));
  const TPM2B_DATA& extra = attest->extraData;
  if (extra.size != expected.size() ||
      !std::equal(expected.begin(), expected.end(), extra.buffer)) {
    return Named("quote_nonce_mismatch",
                 "qualifyingData is not the binding to this output's manifest");
  }

  absl::StatusOr<tpm::PcrSelection> selection =
      tpm::PcrSelectionFromTpm(attest->attested.quote.pcrSelect);
  if (!selection.ok()) return Named("quote_malformed", std::string(selection.status().message()));
  out.pcr_selection = tpm::PcrSelectionToString(*selection);
  const TPM2B_DIGEST& pcr_digest = attest->attested.quote.pcrDigest;
  out.pcr_digest = HexEncode(std::span<const uint8_t>(pcr_digest.buffer, pcr_digest.size));
  return out;
}

}  // namespace hosn::lineage
