// Counters and latency figures of the HSM session pool, as a plain snapshot.
//
// The pool keeps these in atomics and hands out copies; the daemon turns a
// snapshot into Prometheus metrics (ops by kind and result, waits, wait time,
// recoveries, sessions in use, waiters). No secret ever reaches a metric:
// there are no labels carrying key names here at all.
//
// Value type; thread-compatible.
#ifndef HOSN_SERVER_HSM_POOL_METRICS_H_
#define HOSN_SERVER_HSM_POOL_METRICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hosn::hsm {

// What an operation through the pool was doing, for metrics only.
enum class OpKind : int {
  kFind = 0,
  kGenerate,
  kWrap,
  kUnwrap,
  kRewrap,
  kSign,
  kExportPublic,
  kOther,
};
inline constexpr size_t kOpKindCount = 8;
std::string_view OpKindName(OpKind kind);

// Upper bounds, in microseconds, of the latency histogram buckets; the last
// bucket (index kLatencyBucketCount - 1) counts everything above the last
// bound. Cumulative counts are left to the exporter.
inline constexpr std::array<uint64_t, 11> kLatencyBucketBoundsUs = {
    50, 100, 200, 500, 1'000, 2'000, 5'000, 10'000, 50'000, 100'000, 1'000'000};
inline constexpr size_t kLatencyBucketCount = kLatencyBucketBoundsUs.size() + 1;

struct OpMetrics {
  uint64_t ok = 0;
  uint64_t failed = 0;   // the caller got an error (after any retry)
  uint64_t retried = 0;  // first attempt failed retriably, pool recovered and retried
  uint64_t latency_sum_us = 0;
  std::array<uint64_t, kLatencyBucketCount> latency_buckets{};  // non-cumulative
};

struct PoolMetrics {
  std::array<OpMetrics, kOpKindCount> ops{};  // indexed by OpKind
  uint64_t waits = 0;                         // acquisitions that found no free session
  uint64_t wait_time_us = 0;                  // total time spent waiting for a session
  uint64_t wait_timeouts = 0;                 // acquisitions that hit their deadline
  uint64_t recoveries = 0;                    // successful re-initialise + login + reopen
  uint64_t recovery_failures = 0;
  uint64_t sessions_replaced = 0;  // sessions closed after a failed operation
  int size = 0;                    // configured number of sessions
  int in_use = 0;                  // sessions lent out right now
  int waiters = 0;                 // callers waiting for a session right now
};

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_POOL_METRICS_H_
