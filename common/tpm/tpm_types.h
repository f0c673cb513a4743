// TPM 2.0 value types shared by the agent (which quotes) and the daemon (which
// verifies): hash algorithms, PCR selections, PCR values and the quote's
// pcrDigest.
//
// A PcrSelection is an ordered list of banks, each with an ascending list of
// PCR indices; that order is the order in which a TPM concatenates PCR values
// for a quote. PcrValues hold digests per bank and index. All types are plain
// values: thread-compatible, no shared state.
#ifndef HOSN_COMMON_TPM_TPM_TYPES_H_
#define HOSN_COMMON_TPM_TPM_TYPES_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace hosn::tpm {

using Bytes = std::vector<uint8_t>;

// Highest PCR index a PC-client TPM has (PCRs 0..23).
inline constexpr uint32_t kMaxPcrIndex = 23;

// Digest size of a TPM hash algorithm (SHA-1, SHA-256, SHA-384, SHA-512,
// SM3-256), or 0 for an algorithm this project does not know.
size_t HashDigestSize(TPM2_ALG_ID alg);

// "sha1", "sha256", ... or "alg 0x...." for an unknown algorithm.
std::string HashAlgName(TPM2_ALG_ID alg);

// Inverse of HashAlgName for the known names; InvalidArgument otherwise.
absl::StatusOr<TPM2_ALG_ID> HashAlgFromName(std::string_view name);

// Hashes `data` with `alg`. InvalidArgument for an unknown or unsupported
// algorithm, Internal if OpenSSL fails.
absl::StatusOr<Bytes> HashBytes(TPM2_ALG_ID alg, std::span<const uint8_t> data);

// One bank of a PCR selection: a hash algorithm and ascending PCR indices.
struct PcrBankSelection {
  TPM2_ALG_ID hash = TPM2_ALG_SHA256;
  std::vector<uint32_t> pcrs;

  bool operator==(const PcrBankSelection&) const = default;
};
using PcrSelection = std::vector<PcrBankSelection>;

// Converts the TPM structure to a PcrSelection, keeping the bank order and
// listing PCRs in ascending bit order. InvalidArgument if sizeofSelect exceeds
// TPM2_PCR_SELECT_MAX or a bank's algorithm is unknown.
absl::StatusOr<PcrSelection> PcrSelectionFromTpm(const TPML_PCR_SELECTION& tpml);

// Converts a PcrSelection to the TPM structure with sizeofSelect 3 (PCRs
// 0..23). InvalidArgument for more than TPM2_NUM_PCR_BANKS banks, a PCR above
// 23 or an unknown algorithm.
absl::StatusOr<TPML_PCR_SELECTION> PcrSelectionToTpm(const PcrSelection& selection);

// "sha256:0,1,2+sha1:7" for logs and error messages.
std::string PcrSelectionToString(const PcrSelection& selection);

// PCR values: bank algorithm -> PCR index -> digest.
using PcrBank = std::map<uint32_t, Bytes>;
using PcrValues = std::map<TPM2_ALG_ID, PcrBank>;

// The quote's pcrDigest: `digest_alg` over the concatenation of the selected
// PCR values, bank by bank in selection order, ascending PCR index within a
// bank. `digest_alg` is the signing scheme's hash, not the bank's (TPM 2.0
// Part 3, TPM2_Quote). NotFound naming the PCR if a selected value is missing,
// InvalidArgument if a value's length does not match its bank's digest size.
absl::StatusOr<Bytes> ComputePcrDigest(TPM2_ALG_ID digest_alg, const PcrSelection& selection,
                                       const PcrValues& values);

}  // namespace hosn::tpm

#endif  // HOSN_COMMON_TPM_TPM_TYPES_H_
