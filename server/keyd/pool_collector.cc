#include "server/keyd/pool_collector.h"

#include <limits>
#include <string>
#include <utility>

namespace hosn::keyd {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

prometheus::ClientMetric Sample(double value, std::vector<prometheus::ClientMetric::Label> labels,
                                prometheus::MetricType type) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) metric.counter.value = value;
  if (type == prometheus::MetricType::Gauge) metric.gauge.value = value;
  return metric;
}

prometheus::MetricFamily Single(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family = Family(std::move(name), std::move(help), type);
  family.metric.push_back(Sample(value, {}, type));
  return family;
}

}  // namespace

std::vector<prometheus::MetricFamily> PoolCollector::Collect() const {
  using prometheus::MetricType;
  const hsm::PoolMetrics m = backend_->PoolMetrics().value_or(hsm::PoolMetrics{});

  prometheus::MetricFamily ops =
      Family("hosn_keyd_hsm_ops_total",
             "HSM operations through the session pool, by kind and result.", MetricType::Counter);
  prometheus::MetricFamily latency =
      Family("hosn_keyd_hsm_op_duration_seconds", "Latency of HSM operations, by kind.",
             MetricType::Histogram);
  for (size_t i = 0; i < hsm::kOpKindCount; ++i) {
    const hsm::OpMetrics& op = m.ops[i];
    const std::string kind(hsm::OpKindName(static_cast<hsm::OpKind>(i)));
    for (auto [result, value] : {std::pair{"ok", op.ok}, std::pair{"failed", op.failed},
                                 std::pair{"retried", op.retried}}) {
      ops.metric.push_back(Sample(static_cast<double>(value), {{"kind", kind}, {"result", result}},
                                  MetricType::Counter));
    }
    prometheus::ClientMetric histogram;
    histogram.label = {{"kind", kind}};
    uint64_t cumulative = 0;
    for (size_t b = 0; b < hsm::kLatencyBucketCount; ++b) {
      cumulative += op.latency_buckets[b];
      prometheus::ClientMetric::Bucket bucket;
      bucket.cumulative_count = cumulative;
      bucket.upper_bound = b < hsm::kLatencyBucketBoundsUs.size()
                               ? static_cast<double>(hsm::kLatencyBucketBoundsUs[b]) / 1e6
                               : std::numeric_limits<double>::infinity();
      histogram.histogram.bucket.push_back(bucket);
    }
    histogram.histogram.sample_count = cumulative;
    histogram.histogram.sample_sum = static_cast<double>(op.latency_sum_us) / 1e6;
    latency.metric.push_back(std::move(histogram));
  }

  prometheus::MetricFamily recoveries =
      Family("hosn_keyd_hsm_recoveries_total", "Pool recoveries after HSM errors, by result.",
             MetricType::Counter);
  recoveries.metric.push_back(
      Sample(static_cast<double>(m.recoveries), {{"result", "ok"}}, MetricType::Counter));
  recoveries.metric.push_back(Sample(static_cast<double>(m.recovery_failures),
                                     {{"result", "failed"}}, MetricType::Counter));

  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(ops));
  families.push_back(std::move(latency));
  families.push_back(std::move(recoveries));
  families.push_back(
      Single("hosn_keyd_hsm_pool_sessions", "Configured pool size.", MetricType::Gauge, m.size));
  families.push_back(
      Single("hosn_keyd_hsm_pool_in_use", "Sessions lent out now.", MetricType::Gauge, m.in_use));
  families.push_back(Single("hosn_keyd_hsm_pool_waiters", "Callers waiting for a session now.",
                            MetricType::Gauge, m.waiters));
  families.push_back(Single("hosn_keyd_hsm_pool_waits_total",
                            "Acquisitions that found no free session.", MetricType::Counter,
                            static_cast<double>(m.waits)));
  families.push_back(Single("hosn_keyd_hsm_pool_wait_timeouts_total",
                            "Acquisitions that hit their deadline.", MetricType::Counter,
                            static_cast<double>(m.wait_timeouts)));
  families.push_back(Single("hosn_keyd_hsm_pool_wait_seconds_total",
                            "Time spent waiting for a session.", MetricType::Counter,
                            static_cast<double>(m.wait_time_us) / 1e6));
  families.push_back(Single("hosn_keyd_hsm_sessions_replaced_total",
                            "Sessions closed after a failed operation.", MetricType::Counter,
                            static_cast<double>(m.sessions_replaced)));
  return families;
}

}  // namespace hosn::keyd
