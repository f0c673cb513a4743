// libFuzzer target: VerifyTrainingHostQuote on the attacker-controlled
// training-host quote of a lineage statement (predicate.trainingHostQuote:
// attest, signature, akPublic) and on a verifier's pinned AK.
// Input: four fields (tests/testing/fuzz_input.h): akPublic, attest,
// signature, pinned AK. An empty akPublic stands for a fixed test AK (ECDSA
// P-256, made once per process), and an empty signature then for that AK's
// signature over the fuzzed attest, so the structure, nonce and PCR
// selection checks behind the signature see fuzzed bytes too. An empty
// pinned AK means none. The output manifest is fixed; seeds/README.md says
// how the seeds' quotes were bound to it.
// Invariants: a refusal is one of the named FailedPrecondition errors (or
// InvalidArgument for a bad pinned AK); an accepted quote reports a 64-digit
// AK fingerprint, a hex pcrDigest, and ak_pinned exactly when a pin was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "common/lineage/training_host_quote.h"
#include "tests/server/attest/test_quotes.h"
#include "tests/testing/fuzz_input.h"
#include "tests/testing/fuzz_tss2_quiet.h"

namespace {

// SHA-256 of "hosn fuzz seed output manifest".
constexpr char kOutputManifestSha256[] =
    "5705f1916db3c3b638e7bee6af790f22f91b4dd521c366c5d13f9f4d6364b6c0";

const hosn::attest::testing::TestAk& FixedAk() {
  static const auto* ak = [] {
    auto made = hosn::attest::testing::MakeTestAk(TPM2_ALG_ECDSA);
    if (!made.ok()) std::abort();
    return new hosn::attest::testing::TestAk(*std::move(made));
  }();
  return *ak;
}

bool IsLowerHex(std::string_view s) {
  return s.size() % 2 == 0 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hosn;
  const auto [ak_public, attest, signature, pinned] = testing::SplitFuzzInput<4>(data, size);

  keyd::v1::LineageStatement statement;
  statement.mutable_predicate()->mutable_output()->set_manifest_sha256(kOutputManifestSha256);
  keyd::v1::LineageTpmQuote* quote = statement.mutable_predicate()->mutable_training_host_quote();
  quote->set_attest(std::string(attest));
  if (!ak_public.empty()) {
    quote->set_ak_public(std::string(ak_public));
    quote->set_signature(std::string(signature));
  } else {
    const attest::testing::TestAk& ak = FixedAk();
    quote->set_ak_public(std::string(ak.marshalled.begin(), ak.marshalled.end()));
    if (signature.empty()) {
      auto signed_attest = attest::testing::SignAttest(
          ak, {reinterpret_cast<const uint8_t*>(attest.data()), attest.size()}, TPM2_ALG_ECDSA);
      if (!signed_attest.ok()) std::abort();
      quote->set_signature(std::string(signed_attest->begin(), signed_attest->end()));
    } else {
      quote->set_signature(std::string(signature));
    }
  }
  const std::optional<std::string> pin =
      pinned.empty() ? std::nullopt : std::optional<std::string>(pinned);

  absl::StatusOr<lineage::VerifiedTrainingHostQuote> verified =
      lineage::VerifyTrainingHostQuote(statement, pin);
  if (!verified.ok()) {
    const absl::Status& status = verified.status();
    if (status.code() == absl::StatusCode::kInvalidArgument && pin.has_value()) return 0;
    if (status.code() != absl::StatusCode::kFailedPrecondition) std::abort();
    bool named = false;
    for (const char* error :
         {"quote_ak_unacceptable:", "quote_ak_mismatch:", "quote_signature_invalid:",
          "quote_malformed:", "quote_nonce_mismatch:"}) {
      named = named || absl::StartsWith(status.message(), error);
    }
    if (!named) std::abort();
    return 0;
  }
  if (verified->ak_sha256.size() != 64 || !IsLowerHex(verified->ak_sha256) ||
      !IsLowerHex(verified->pcr_digest) || verified->ak_pinned != pin.has_value()) {
    std::abort();
  }
  return 0;
}
