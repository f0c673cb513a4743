// libFuzzer target: the quote path on arbitrary bytes. The first input byte
// picks the entry point; the rest is its input:
//   0: ParseQuote, then CheckPcrDigest with zero PCR values for its selection
//   1: AcceptAk on a TPMT_PUBLIC
//   2: VerifyQuote with a fixed test AK; the rest is split into attest and
//      signature at a position taken from the second byte
//   3: the tpm2-tools PCR file reader
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "common/tpm/pcr_file.h"
#include "server/attest/denial.h"
#include "server/attest/quote_verifier.h"
#include "tests/server/attest/test_quotes.h"

namespace {

const hosn::tpm::AkPublicKey& FixedAk() {
  static const hosn::tpm::AkPublicKey* ak = [] {
    auto test_ak = hosn::attest::testing::MakeTestAk(TPM2_ALG_RSASSA);
    if (!test_ak.ok()) abort();
    auto accepted = hosn::attest::AcceptAk(test_ak->public_area);
    if (!accepted.ok()) abort();
    return accepted->release();
  }();
  return *ak;
}

void RequireDenialOrOk(const absl::Status& status) {
  if (!status.ok() && status.code() == absl::StatusCode::kPermissionDenied &&
      !hosn::attest::GetDenialReason(status).has_value()) {
    abort();  // a denial without its reason
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn;
  if (size < 2) return 0;
  const uint8_t selector = data[0] % 4;
  std::span<const uint8_t> rest(data + 1, size - 1);

  switch (selector) {
    case 0: {
      absl::StatusOr<TPMS_ATTEST> quote = attest::ParseQuote(rest);
      RequireDenialOrOk(quote.status());
      if (!quote.ok()) return 0;
      absl::StatusOr<tpm::PcrSelection> selection =
          tpm::PcrSelectionFromTpm(quote->attested.quote.pcrSelect);
      if (!selection.ok()) return 0;
      tpm::PcrValues zeros = attest::testing::FilledPcrValues(*selection, 0);
      RequireDenialOrOk(attest::CheckPcrDigest(*quote, TPM2_ALG_SHA256, zeros).status());
      return 0;
    }
    case 1:
      RequireDenialOrOk(attest::AcceptAk(rest).status());
      return 0;
    case 2: {
      const size_t split = std::min<size_t>(rest[0] * 2u, rest.size() - 1);
      std::span<const uint8_t> body = rest.subspan(1);
      const tpm::PcrValues none;
      const uint8_t nonce[32] = {};
      RequireDenialOrOk(
          attest::VerifyQuote(FixedAk(), body.first(split), body.subspan(split), nonce, none)
              .status());
      return 0;
    }
    default:
      (void)tpm::ParseTpm2ToolsPcrFile(rest);
      return 0;
  }
}
