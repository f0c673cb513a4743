// Load benchmark of attested key release through hosn-keyd: ReleaseKey at
// concurrency 1, 8 and 64 over persistent mTLS channels, reporting
// releases/s and p50/p99 latency. Beside it, in the same run: the daemon's
// own HSM WrapDekToPeer time per release (from its hosn_keyd_hsm_op_duration
// histogram, kind "wrap": the only wrap on the release path), the quote and
// manifest verification time measured in this process on the same evidence,
// and the raw in-process KeyStore::WrapDekToPeer rate on a second token.
//
// Load design (docs/benchmarks/release.md): a swtpm quotes 16 (challenge,
// quote) pairs once, before the clock starts, with a one-hour challenge TTL.
// The daemon keeps no replay cache (a replay is useless by design, see
// docs/release.md), so every request runs the full decision: HSM MAC check
// of the token, node record and policy read from the token, quote and policy
// verification, CMS manifest verification, and the HSM re-wrap.
// Figures go to stdout and to $HOSN_BENCH_OUT if set.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bundle/signature.h"
#include "common/tpm/qualifying_data.h"
#include "server/attest/attestation.h"
#include "server/attest/quote_verifier.h"
#include "server/hsm/key_store.h"
#include "server/release/evidence.h"
#include "server/release/fleet_store.h"
#include "tests/server/release/release_fixture.h"
#include "tests/testing/status_matchers.h"

namespace hosn::release::testing {
namespace {

constexpr absl::Duration kRunTime = absl::Seconds(4);
constexpr int kPairs = 16;

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

// Sum and count of hosn_keyd_hsm_op_duration_seconds{kind="wrap"}.
std::pair<double, double> WrapSeconds(const std::string& text) {
  std::smatch sum, count;
  static const std::regex kSum(
      R"(hosn_keyd_hsm_op_duration_seconds_sum\{kind="wrap"\} ([0-9.e+-]+))");
  static const std::regex kCount(
      R"(hosn_keyd_hsm_op_duration_seconds_count\{kind="wrap"\} ([0-9.e+-]+))");
  if (!std::regex_search(text, sum, kSum) || !std::regex_search(text, count, kCount)) {
    return {0, 0};
  }
  return {std::stod(sum[1]), std::stod(count[1])};
}

class ReleaseBench : public ReleaseFixture {};

TEST_F(ReleaseBench, AttestedReleasesThroughDaemon) {
  // HOSN_BENCH_AUDIT_DIR (e.g. a folder on /dev/shm) moves the audit log off
  // the disk, to see what its fdatasync costs.
  if (const char* audit = std::getenv("HOSN_BENCH_AUDIT_DIR"); audit != nullptr) {
    audit_dir_ = audit;
  }
  ASSERT_NO_FATAL_FAILURE(StartKeyd(/*challenge_ttl_seconds=*/3600));
  Node node = NewNode("a");
  ASSERT_NE(node.tpm, nullptr);
  ASSERT_TRUE(Enroll(node, "a", "gpu").ok());
  ASSERT_TRUE(SetPolicyFromNode(node, "gpu", {"embeddings-en"}).ok());

  std::vector<Attempt> pairs;
  for (int i = 0; i < kPairs; ++i) {
    HOSN_ASSERT_OK_AND_ASSIGN(Attempt attempt, Prepare(node, "node-a"));
    pairs.push_back(std::move(attempt));
  }
  {
    v1::ReleaseKeyResponse response;
    grpc::Status status = Release("node-a", pairs[0].request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    HOSN_ASSERT_OK_AND_ASSIGN(std::string dek, Open(*pairs[0].key, response));
    ASSERT_EQ(dek, KnownDek());
  }

  std::string report = "# attested release through hosn-keyd\n";
  for (int concurrency : {1, 8, 64}) {
    const int channels = std::min(concurrency, 8);
    std::vector<std::unique_ptr<v1::KeyReleaseService::Stub>> stubs;
    for (int i = 0; i < channels; ++i) {
      stubs.push_back(v1::KeyReleaseService::NewStub(ChannelFor("node-a")));
    }
    // Connect every channel before timing.
    for (auto& stub : stubs) {
      grpc::ClientContext context;
      v1::ReleaseKeyResponse response;
      ASSERT_TRUE(stub->ReleaseKey(&context, pairs[0].request, &response).ok());
    }
    const auto [wrap_sum0, wrap_count0] = WrapSeconds(Metrics());
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::vector<std::vector<double>> latencies(concurrency);
    std::vector<std::thread> workers;
    const auto start = std::chrono::steady_clock::now();
    for (int w = 0; w < concurrency; ++w) {
      workers.emplace_back([&, w] {
        v1::KeyReleaseService::Stub& stub = *stubs[w % channels];
        for (int i = w; !stop.load(std::memory_order_relaxed); ++i) {
          grpc::ClientContext context;
          v1::ReleaseKeyResponse response;
          const auto t0 = std::chrono::steady_clock::now();
          grpc::Status status = stub.ReleaseKey(&context, pairs[i % kPairs].request, &response);
          const auto t1 = std::chrono::steady_clock::now();
          if (!status.ok() || response.wrapped_dek().empty()) {
            failures.fetch_add(1);
            continue;
          }
          latencies[w].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
      });
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRunTime));
    stop = true;
    for (std::thread& t : workers) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto [wrap_sum1, wrap_count1] = WrapSeconds(Metrics());
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    const double wraps = wrap_count1 - wrap_count0;
    report += absl::StrFormat(
        "concurrency %2d: %7.0f releases/s  p50 %6.2f ms  p99 %6.2f ms  (%zu ok, %d failed; "
        "daemon HSM WrapDekToPeer %.3f ms/release over %.0f wraps)\n",
        concurrency, all.size() / seconds, Percentile(all, 0.50), Percentile(all, 0.99), all.size(),
        failures.load(), wraps > 0 ? 1000 * (wrap_sum1 - wrap_sum0) / wraps : 0, wraps);
    EXPECT_EQ(failures.load(), 0);
  }

  // Verification cost in this process, on the same evidence (one thread).
  {
    HOSN_ASSERT_OK_AND_ASSIGN(tpm::Bytes ak_tpmt, node.tpm->AttestationKeyPublic());
    HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<tpm::AkPublicKey> ak, attest::AcceptAk(ak_tpmt));
    const v1::ReleaseKeyRequest& request = pairs[0].request;
    const std::string& nonce = pairs[0].challenge.nonce();
    HOSN_ASSERT_OK_AND_ASSIGN(
        tpm::Bytes qd,
        tpm::ComputeQualifyingData(
            std::span(reinterpret_cast<const uint8_t*>(nonce.data()), nonce.size()),
            std::span(reinterpret_cast<const uint8_t*>(request.ephemeral_public_key().data()),
                      request.ephemeral_public_key().size())));
    attest::AttestationEvidence evidence;
    evidence.attest =
        std::span(reinterpret_cast<const uint8_t*>(request.quote().data()), request.quote().size());
    evidence.signature =
        std::span(reinterpret_cast<const uint8_t*>(request.quote_signature().data()),
                  request.quote_signature().size());
    HOSN_ASSERT_OK_AND_ASSIGN(evidence.pcr_values, PcrValuesFromRequest(request.pcr_values()));
    attest::BootPolicy policy;
    policy.required_pcrs = {0, 1, 2, 3, 4, 5, 6, 7};
    constexpr int kRounds = 2000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) {
      ASSERT_TRUE(attest::VerifyAttestation(*ak, evidence, qd, policy).ok());
    }
    auto t1 = std::chrono::steady_clock::now();
    bundle::TrustOptions trust;
    trust.ca_bundle_pem = manifest_pki_.ca_pem;
    for (int i = 0; i < kRounds; ++i) {
      ASSERT_TRUE(
          bundle::VerifyAndParseManifest(request.manifest(), request.manifest_signature(), trust)
              .ok());
    }
    auto t2 = std::chrono::steady_clock::now();
    report += absl::StrFormat(
        "in-process, 1 thread: quote + boot policy %.3f ms, manifest CMS verify + parse %.3f ms\n",
        std::chrono::duration<double, std::milli>(t1 - t0).count() / kRounds,
        std::chrono::duration<double, std::milli>(t2 - t1).count() / kRounds);
  }

  // Raw HSM unwrap-and-wrap (WrapDekToPeer) on a second token, in process.
  {
    HOSN_ASSERT_OK_AND_ASSIGN(auto token, hosn::testing::SoftHsmToken::Create("raw"));
    hsm::KeyStoreOptions options;
    options.uri = token->uri();
    options.module_path = hosn::testing::SoftHsmToken::kModulePath;
    options.pin_reference = token->pin_reference();
    options.pool_size = 4;
    HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<hsm::KeyStore> store, hsm::KeyStore::Create(options));
    std::string kek(32, '\0');
    for (int i = 0; i < 32; ++i) kek[i] = static_cast<char>(i);
    HOSN_ASSERT_OK(store
                       ->ImportSecretKeyForTesting("model-kek", "k", hsm::KeyType::kAes,
                                                   SecretBytes::CopyOf(kek))
                       .status());
    HOSN_ASSERT_OK(store->GenerateReleaseKey("rel", "r").status());
    const hsm::WrappedKey wrapped{"aes-kwp", hsm::KeyType::kAes, bundle::testing::TestWrappedDek()};
    // Fleet-state reads as each release does them: node record + policy.
    {
      v1::NodeRecord record;
      record.set_node_id("a");
      record.set_node_class("gpu");
      record.set_ak_public(std::string(90, 'k'));
      HOSN_ASSERT_OK(WriteNode(*store, record));
      v1::ReleasePolicy policy;
      policy.set_node_class("gpu");
      policy.set_version(1);
      HOSN_ASSERT_OK(WritePolicy(*store, policy));
      // Measured with the few objects of a fresh token, then with 200 more
      // nodes (a fleet of 200), each release reading another node's record,
      // as a fleet booting does. Reads go through the KeyStore's data-object
      // index (server/hsm/data_object_index.h); the cold read, whose index
      // scan or search is linear in the token's objects, is timed apart on a
      // second KeyStore that has never read the token.
      std::vector<std::string> nodes = {"a"};
      // Reads every node `passes` times in turn, each with the policy.
      auto measure = [&](hsm::KeyStore& reader, int passes, const char* what) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int pass = 0; pass < passes; ++pass) {
          for (const std::string& node_id : nodes) {
            ASSERT_TRUE(ReadNode(reader, node_id).ok());
            ASSERT_TRUE(ReadPolicy(reader, "gpu").ok());
          }
        }
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        report += absl::StrFormat(
            "fleet-state reads (node + policy data objects, %s): %.3f ms per release\n", what,
            ms / (passes * nodes.size()));
      };
      measure(*store, 300, "4 objects on the token");
      for (int i = 0; i < 200; ++i) {
        record.set_node_id(absl::StrCat("n", i));
        HOSN_ASSERT_OK(WriteNode(*store, record));
        nodes.push_back(record.node_id());
      }
      measure(*store, 1,
              "204 objects, 201 nodes in turn, first read of each since its put: a search");
      measure(*store, 2, "204 objects, 201 nodes in turn, read again: remembered");
      // Its own copy of SoftHSM: nothing shared with `store` but the token.
      hsm::KeyStoreOptions cold_options = options;
      cold_options.module_path = token->dir() + "/libsofthsm2-cold.so";
      std::filesystem::copy_file(hosn::testing::SoftHsmToken::kModulePath,
                                 cold_options.module_path);
      HOSN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<hsm::KeyStore> cold,
                                hsm::KeyStore::Create(cold_options));
      const auto cold_start = std::chrono::steady_clock::now();
      ASSERT_TRUE(ReadNode(*cold, "n7").ok());
      report += absl::StrFormat(
          "first fleet-state read of a fresh replica (index scan, 204 objects): %.3f ms\n",
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - cold_start)
              .count());
      measure(*cold, 2, "204 objects, a second replica after its first read");
    }
    for (int threads : {1, 2, 4}) {
      std::atomic<bool> stop{false};
      std::atomic<long> done{0};
      std::vector<std::thread> workers;
      const auto start = std::chrono::steady_clock::now();
      for (int w = 0; w < threads; ++w) {
        workers.emplace_back([&, w] {
          while (!stop.load(std::memory_order_relaxed)) {
            auto out = store->WrapDekToPeer(
                hsm::KeyRef::Kek("model-kek"), wrapped, hsm::KeyRef::ReleaseKey("rel"),
                pairs[w % kPairs].request.ephemeral_public_key(), "null", "");
            if (out.ok()) done.fetch_add(1);
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::seconds(2));
      stop = true;
      for (std::thread& t : workers) t.join();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      report += absl::StrFormat("raw KeyStore::WrapDekToPeer, %d threads: %.0f/s\n", threads,
                                done.load() / seconds);
    }
  }

  std::printf("%s", report.c_str());
  if (const char* out = std::getenv("HOSN_BENCH_OUT"); out != nullptr) {
    std::ofstream(out, std::ios::app) << report;
  }
}

}  // namespace
}  // namespace hosn::release::testing
