// Raw gRPC calls for tests that have no generated stubs at hand: the
// grpc.health.v1 Check RPC, encoded by hand (HealthCheckRequest{service} and
// HealthCheckResponse{status} each hold one field).
#ifndef HOSN_TESTS_SERVER_API_GRPC_TEST_UTIL_H_
#define HOSN_TESTS_SERVER_API_GRPC_TEST_UTIL_H_

#include <memory>
#include <string>

#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace hosn::testing {

// 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN; -1 with `status` set on an RPC
// error.
int HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                grpc::Status* status);

}  // namespace hosn::testing

#endif  // HOSN_TESTS_SERVER_API_GRPC_TEST_UTIL_H_
