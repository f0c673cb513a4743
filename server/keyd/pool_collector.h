// Exposes the HSM session pool's counters (server/hsm/pool_metrics.h) as
// Prometheus metric families, read fresh from the pool at every scrape:
//
//   hosn_keyd_hsm_ops_total{kind,result}           counter (result: ok|failed|retried)
//   hosn_keyd_hsm_op_duration_seconds{kind}        histogram
//   hosn_keyd_hsm_pool_sessions / _in_use / _waiters   gauges
//   hosn_keyd_hsm_pool_waits_total, _wait_timeouts_total, _wait_seconds_total
//   hosn_keyd_hsm_recoveries_total{result}         counter (ok|failed)
//   hosn_keyd_hsm_sessions_replaced_total          counter
//
// Before the token is first reached the families are present with zeros.
// Thread safety: Collect() runs on the exposer's threads and only reads a
// snapshot.
#ifndef HOSN_SERVER_KEYD_POOL_COLLECTOR_H_
#define HOSN_SERVER_KEYD_POOL_COLLECTOR_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/keyd/hsm_backend.h"

namespace hosn::keyd {

class PoolCollector : public prometheus::Collectable {
 public:
  // Borrows `backend`, which must outlive every scrape.
  explicit PoolCollector(const HsmBackend* backend) : backend_(backend) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const HsmBackend* const backend_;
};

}  // namespace hosn::keyd

#endif  // HOSN_SERVER_KEYD_POOL_COLLECTOR_H_
