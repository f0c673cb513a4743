// Benchmark (label benchmark): attested releases per second through hosn-keyd
// with the audit log's durable write (ext4, write + fdatasync with group
// commit) next to the same daemon, token, node and requests with the log on
// tmpfs, where the write costs a memory copy and fdatasync returns at once:
// the difference is what durability costs a release. The daemon refuses to
// run without its log, so "without the durable write" is the closest honest
// comparison. Both phases in one run; figures to stdout and to
// $HOSN_BENCH_OUT if set. docs/benchmarks/audit.md has the figures.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_format.h"
#include "tests/server/release/release_fixture.h"
#include "tests/testing/status_matchers.h"

namespace hosn::release::testing {
namespace {

namespace fs = std::filesystem;
constexpr auto kPhase = std::chrono::seconds(4);
constexpr int kPairs = 16;

struct Phase {
  double per_second = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;
  uint64_t first_sequence = 0;
  uint64_t last_sequence = 0;
};

class AuditReleaseBench : public ReleaseFixture {
 protected:
  // `threads` clients share up to 8 channels and replay `pairs` for kPhase.
  Phase Run(const std::vector<Attempt>& pairs, int threads) {
    std::vector<std::unique_ptr<v1::KeyReleaseService::Stub>> stubs;
    for (int i = 0; i < std::min(threads, 8); ++i) {
      stubs.push_back(v1::KeyReleaseService::NewStub(ChannelFor("node-a")));
      grpc::ClientContext warm;
      v1::ReleaseKeyResponse ignored;
      EXPECT_TRUE(stubs.back()->ReleaseKey(&warm, pairs[0].request, &ignored).ok());
    }
    std::atomic<bool> done{false};
    std::atomic<uint64_t> ok{0}, failed{0}, low{UINT64_MAX}, high{0};
    std::vector<std::thread> clients;
    const auto begin = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      clients.emplace_back([&, t] {
        for (size_t n = static_cast<size_t>(t); !done.load(); n += static_cast<size_t>(threads)) {
          grpc::ClientContext context;
          v1::ReleaseKeyResponse response;
          if (!stubs[t % stubs.size()]
                   ->ReleaseKey(&context, pairs[n % pairs.size()].request, &response)
                   .ok()) {
            failed.fetch_add(1);
            continue;
          }
          ok.fetch_add(1);
          uint64_t seen = low.load();
          while (response.audit_sequence() < seen &&
                 !low.compare_exchange_weak(seen, response.audit_sequence())) {
          }
          seen = high.load();
          while (response.audit_sequence() > seen &&
                 !high.compare_exchange_weak(seen, response.audit_sequence())) {
          }
        }
      });
    }
    std::this_thread::sleep_for(kPhase);
    done = true;
    for (std::thread& client : clients) client.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    return Phase{ok.load() / seconds, ok.load(), failed.load(), low.load(), high.load()};
  }
};

TEST_F(AuditReleaseBench, DurableAuditBesideTmpfsAudit) {
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

  // Phase 1: the log on this test's ext4 directory.
  std::string report = "# attested releases through hosn-keyd, audit durable vs tmpfs\n";
  std::vector<std::pair<int, Phase>> durable;
  for (int threads : {1, 8, 32}) durable.emplace_back(threads, Run(pairs, threads));

  // Phase 2: same daemon configuration, its audit directory now a link to
  // tmpfs. Enrollment and policy live on the token and survive the restart;
  // the challenges are valid for an hour.
  ASSERT_TRUE(keyd_->Stop(SIGTERM, absl::Seconds(30)).ok());
  const std::string shm = absl::StrFormat("/dev/shm/hosn-audit-bench-%d", getpid());
  fs::remove_all(shm);
  fs::create_directories(shm);
  fs::rename(dir_.Join("audit"), dir_.Join("audit-durable"));
  fs::create_directory_symlink(shm, dir_.Join("audit"));
  ASSERT_NO_FATAL_FAILURE(StartKeyd(/*challenge_ttl_seconds=*/3600));
  std::vector<std::pair<int, Phase>> memory;
  for (int threads : {1, 8, 32}) memory.emplace_back(threads, Run(pairs, threads));
  ASSERT_TRUE(keyd_->Stop(SIGTERM, absl::Seconds(30)).ok());
  fs::remove_all(shm);

  for (size_t i = 0; i < durable.size(); ++i) {
    const auto& [threads, d] = durable[i];
    const Phase& m = memory[i].second;
    report += absl::StrFormat(
        "%2d clients: durable %7.0f releases/s, tmpfs %7.0f releases/s, durable/tmpfs %.2f "
        "(%llu and %llu ok, %llu failed)\n",
        threads, d.per_second, m.per_second, m.per_second > 0 ? d.per_second / m.per_second : 0,
        static_cast<unsigned long long>(d.ok), static_cast<unsigned long long>(m.ok),
        static_cast<unsigned long long>(d.failed + m.failed));
    EXPECT_EQ(d.failed + m.failed, 0u);
    // Every release got its own entry (plus the warm-up releases).
    EXPECT_GE(d.last_sequence - d.first_sequence + 1, d.ok);
  }
  std::fputs(report.c_str(), stdout);
  if (const char* out = std::getenv("HOSN_BENCH_OUT")) std::ofstream(out, std::ios::app) << report;
}

}  // namespace
}  // namespace hosn::release::testing
