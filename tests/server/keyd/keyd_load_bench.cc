// Load benchmark of hosn-keyd: SignManifest (a cheap HSM signature) over
// persistent mTLS channels at concurrency 1, 8 and 64, reporting RPS and
// p50/p99 latency, with the daemon's HSM pool sign rate (from its metrics)
// and the raw in-process KeyStore sign rate at the same concurrency beside
// it. Figures go to stdout and to $HOSN_BENCH_OUT if set; docs/benchmarks/keyd.md
// records a run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "hosn/keyd/v1/signing.grpc.pb.h"
#include "server/hsm/key_store.h"
#include "tests/server/api/test_pki.h"
#include "tests/server/keyd/cms_attributes.h"
#include "tests/testing/keyd_process.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace hosn::keyd {
namespace {

namespace v1 = ::hosn::keyd::v1;
using ::hosn::testing::DevPki;
using ::hosn::testing::KeydProcess;
using ::hosn::testing::RunCommand;
using ::hosn::testing::SoftHsmToken;

constexpr absl::Duration kRunTime = absl::Seconds(4);

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index];
}

// hosn_keyd_hsm_ops_total{kind="sign",result="ok"} from a scrape.
double SignOps(int metrics_port) {
  absl::StatusOr<std::string> text = hosn::testing::HttpGet(metrics_port, "/metrics");
  if (!text.ok()) return -1;
  std::smatch match;
  static const std::regex kLine(
      R"(hosn_keyd_hsm_ops_total\{kind="sign",result="ok"\} ([0-9.e+]+))");
  if (!std::regex_search(*text, match, kLine)) return -1;
  return std::stod(match[1]);
}

// Sum and count of the daemon's own SignManifest handler latency histogram.
std::pair<double, double> HandlerSeconds(int metrics_port) {
  absl::StatusOr<std::string> text = hosn::testing::HttpGet(metrics_port, "/metrics");
  if (!text.ok()) return {-1, -1};
  static const std::regex kSum(
      R"(hosn_keyd_rpc_duration_seconds_sum\{method="/hosn.keyd.v1.SigningService/SignManifest"\} ([0-9.e+-]+))");
  static const std::regex kCount(
      R"(hosn_keyd_rpc_duration_seconds_count\{method="/hosn.keyd.v1.SigningService/SignManifest"\} ([0-9.e+-]+))");
  std::smatch sum;
  std::smatch count;
  if (!std::regex_search(*text, sum, kSum) || !std::regex_search(*text, count, kCount)) {
    return {0, 0};
  }
  return {std::stod(sum[1]), std::stod(count[1])};
}

struct Result {
  int concurrency;
  double rps;
  double p50_ms;
  double p99_ms;
  uint64_t errors;
  double pool_ops_per_s;
  double raw_ops_per_s;
  double handler_mean_ms;
};

// The benchmark: a real daemon on SoftHSM, real mTLS, real signatures.
TEST(KeydLoad, SignManifestAtConcurrency1_8_64) {
  // 1. Token with a signing key, dev PKI with a certificate for it.
  hosn::testing::ScopedTempDir dir;
  DevPki pki;
  HOSN_ASSERT_OK_AND_ASSIGN(auto token, SoftHsmToken::Create("hosn-bench"));
  hsm::KeyStoreOptions options;
  options.uri = token->uri();
  options.module_path = SoftHsmToken::kModulePath;
  options.pin_reference = token->pin_reference();
  options.pool_size = 4;
  std::unique_ptr<hsm::KeyStore> store;
  {
    HOSN_ASSERT_OK_AND_ASSIGN(store, hsm::KeyStore::Create(options));
    HOSN_ASSERT_OK_AND_ASSIGN(hsm::SigningKey signer,
                              store->GenerateSigningKey("ec-p256", "hosn-signer", "s1"));
    std::ofstream(dir.Join("signer.der"), std::ios::binary) << signer.public_key_der;
  }
  HOSN_ASSERT_OK(
      RunCommand(absl::StrCat("openssl pkey -pubin -inform DER -in ", dir.Join("signer.der"),
                              " -out ", dir.Join("signer.pub.pem")))
          .status());
  HOSN_ASSERT_OK(
      RunCommand(absl::StrCat("bash ", hosn::testing::SourcePath("deploy/pki/dev-pki.sh"), " ",
                              pki.dir(), " --hsm-signer ", dir.Join("signer.pub.pem")))
          .status());

  // 2. The daemon, logging warnings only (one info line per RPC would
  // measure the logger).
  // HOSN_BENCH_AUDIT_DIR (e.g. a folder on /dev/shm) moves the audit log off
  // the disk, to see what its fdatasync costs per RPC (never a production
  // setting).
  std::string audit_dir = dir.Join("audit");
  if (const char* audit = std::getenv("HOSN_BENCH_AUDIT_DIR"); audit != nullptr) audit_dir = audit;
  const std::string config = dir.Join("keyd.textproto");
  std::ofstream(config) << absl::StrCat(
      "listen_address: \"127.0.0.1:0\"\n", "tls { server_certificate_path: \"", pki.Cert("server"),
      "\" server_private_key_path: \"", pki.Key("server"), "\" client_ca_bundle_path: \"",
      pki.Cert("ca"), "\" }\n", "hsm { module_path: \"", SoftHsmToken::kModulePath,
      "\" token_uri: \"", token->uri(), "\" pin_reference: \"", token->pin_reference(),
      "\" pool_size: 4 signing_key_label: \"hosn-signer\" signing_certificate_chain_path: \"",
      pki.Cert("hsm-signer"), "\" }\n", "metrics { listen_address: \"127.0.0.1:0\" }\n",
      "limits { max_concurrent_streams: 1000 }\n", "logging { level: \"warn\" }\n",
      "audit { directory: \"", audit_dir, "\" }\n");
  KeydProcess keyd(config, dir.path());
  HOSN_ASSERT_OK(keyd.WaitReady(absl::Seconds(30)));

  // 3. Persistent channels: one per client thread up to 8, then shared.
  std::vector<std::unique_ptr<v1::SigningService::Stub>> stubs;
  for (int i = 0; i < 8; ++i) {
    stubs.push_back(v1::SigningService::NewStub(pki.Channel(keyd.grpc_port(), "signer")));
  }
  const std::string manifest(2048, 'm');
  const std::string attributes = hosn::testing::CmsAttributesFor(
      manifest, hosn::testing::ReadTestFile(pki.Cert("hsm-signer")));

  std::vector<Result> results;
  for (int concurrency : {1, 8, 64}) {
    // 3a. Through the daemon.
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> errors{0};
    std::vector<std::vector<double>> latencies(concurrency);
    const double ops_before = SignOps(keyd.metrics_port());
    const auto handler_before = HandlerSeconds(keyd.metrics_port());
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < concurrency; ++t) {
      threads.emplace_back([&, t] {
        v1::SignManifestRequest request;
        request.set_manifest(manifest);
        request.set_cms_signed_attributes(attributes);
        while (!stop.load(std::memory_order_relaxed)) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          v1::SignManifestResponse response;
          const auto t0 = std::chrono::steady_clock::now();
          grpc::Status status = stubs[t % stubs.size()]->SignManifest(&context, request, &response);
          const auto t1 = std::chrono::steady_clock::now();
          if (!status.ok()) ++errors;
          latencies[t].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
      });
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRunTime));
    stop = true;
    for (std::thread& thread : threads) thread.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double ops_after = SignOps(keyd.metrics_port());
    const auto handler_after = HandlerSeconds(keyd.metrics_port());
    const double handler_calls = handler_after.second - handler_before.second;
    const double handler_mean_ms =
        handler_calls > 0 ? 1000 * (handler_after.first - handler_before.first) / handler_calls : 0;
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());

    // 3b. The raw KeyStore, in this process, same concurrency.
    std::atomic<uint64_t> raw_ops{0};
    stop = false;
    threads.clear();
    const hsm::KeyRef key{hsm::KeyClass::kPrivateKey, hsm::KeyType::kEc, "hosn-signer",
                          std::nullopt};
    const auto raw_start = std::chrono::steady_clock::now();
    for (int t = 0; t < concurrency; ++t) {
      threads.emplace_back([&] {
        while (!stop.load(std::memory_order_relaxed)) {
          if (store->Sign(key, "ecdsa-p256-sha256", manifest).ok()) ++raw_ops;
        }
      });
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRunTime / 2));
    stop = true;
    for (std::thread& thread : threads) thread.join();
    const double raw_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - raw_start).count();

    results.push_back({concurrency, static_cast<double>(all.size()) / seconds,
                       Percentile(all, 0.50), Percentile(all, 0.99), errors.load(),
                       (ops_after - ops_before) / seconds,
                       static_cast<double>(raw_ops.load()) / raw_seconds, handler_mean_ms});
  }

  // 4. Report.
  std::string report =
      "| concurrency | RPS | p50 ms | p99 ms | errors | daemon handler mean ms | daemon pool sign "
      "ops/s | raw KeyStore sign ops/s |\n|---|---|---|---|---|---|---|---|\n";
  for (const Result& r : results) {
    report += absl::StrFormat("| %d | %.0f | %.2f | %.2f | %d | %.2f | %.0f | %.0f |\n",
                              r.concurrency, r.rps, r.p50_ms, r.p99_ms, r.errors, r.handler_mean_ms,
                              r.pool_ops_per_s, r.raw_ops_per_s);
  }
  std::printf("%s", report.c_str());
  if (const char* out = std::getenv("HOSN_BENCH_OUT"); out != nullptr) std::ofstream(out) << report;
  for (const Result& r : results) {
    EXPECT_GT(r.rps, 0) << r.concurrency;
    EXPECT_EQ(r.errors, 0u) << r.concurrency;
  }
}

}  // namespace
}  // namespace hosn::keyd
