// Cost of the verifier's steps on one core: quote verification per signature
// scheme, event-log parse + replay of a real 44-event log, and the combined
// VerifyAttestation. Figures feed the release benchmark in issue #5.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "common/tpm/marshal.h"
#include "server/attest/attestation.h"
#include "server/attest/event_log.h"
#include "tests/server/attest/test_data.h"
#include "tests/server/attest/test_quotes.h"

namespace hosn::attest {
namespace {

struct Fixture {
  std::unique_ptr<tpm::AkPublicKey> ak;
  tpm::Bytes attest;
  tpm::Bytes signature;
  tpm::PcrValues pcrs;
  tpm::Bytes nonce = tpm::Bytes(32, 0x5a);
};

Fixture MakeFixture(TPM2_ALG_ID scheme) {
  Fixture f;
  auto test_ak = testing::MakeTestAk(scheme);
  if (!test_ak.ok()) std::abort();
  f.ak = *AcceptAk(test_ak->marshalled);
  const tpm::PcrSelection selection = {{TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7}}};
  f.pcrs = testing::FilledPcrValues(selection, 0x11);
  const tpm::Bytes digest = *tpm::ComputePcrDigest(TPM2_ALG_SHA256, selection, f.pcrs);
  const TPMS_ATTEST attest =
      testing::MakeQuoteAttest(f.nonce, *tpm::PcrSelectionToTpm(selection), digest);
  f.attest = *tpm::MarshalAttest(attest);
  f.signature = *testing::SignAttest(*test_ak, f.attest, scheme);
  return f;
}

void BM_VerifyQuote(benchmark::State& state) {
  const Fixture f = MakeFixture(static_cast<TPM2_ALG_ID>(state.range(0)));
  for (auto _ : state) {
    auto result = VerifyQuote(*f.ak, f.attest, f.signature, f.nonce, f.pcrs);
    if (!result.ok()) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_VerifyQuote)
    ->Arg(TPM2_ALG_RSASSA)
    ->Arg(TPM2_ALG_RSAPSS)
    ->Arg(TPM2_ALG_ECDSA)
    ->ArgName("scheme");

void BM_ParseAndReplayLog(benchmark::State& state) {
  auto log = testing::ReadSharedBytes(
      "tpm/go-tpm-tools/attestations/gce-cos-85-nonce9009.binary_bios_measurements");
  if (!log.ok()) std::abort();
  for (auto _ : state) {
    auto parsed = ParseEventLog(*log);
    auto replayed = ReplayEventLog(*parsed);
    benchmark::DoNotOptimize(replayed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * log->size()));
}
BENCHMARK(BM_ParseAndReplayLog);

void BM_VerifyAttestation(benchmark::State& state) {
  const Fixture f = MakeFixture(TPM2_ALG_RSASSA);
  BootPolicy policy;
  policy.required_pcrs = {0, 1, 2, 3, 4, 5, 6, 7};
  PcrReferenceSet set{.name = "golden", .pcrs = {}};
  for (uint32_t pcr : policy.required_pcrs) set.pcrs[pcr] = f.pcrs.at(TPM2_ALG_SHA256).at(pcr);
  policy.reference_sets.push_back(set);
  AttestationEvidence evidence{
      .attest = f.attest, .signature = f.signature, .pcr_values = f.pcrs, .event_log = {}};
  for (auto _ : state) {
    auto result = VerifyAttestation(*f.ak, evidence, f.nonce, policy);
    if (!result.ok()) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_VerifyAttestation);

}  // namespace
}  // namespace hosn::attest

BENCHMARK_MAIN();
