// The one place where absl::Status becomes grpc::Status.
//
// The canonical codes are numerically identical in Abseil and gRPC, so the
// mapping keeps the code. Messages are passed on as they are: libraries write
// short messages that never contain secrets (docs/contributing.md), and
// Internal errors are reduced to a generic text so that PKCS#11 or OpenSSL
// details stay in the daemon's log rather than reaching a remote caller.
//
// Stateless; safe from any thread.
#ifndef HOSN_SERVER_API_STATUS_MAPPING_H_
#define HOSN_SERVER_API_STATUS_MAPPING_H_

#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace hosn::api {

// Same code; the message, except for Internal and Unknown, which become
// "internal error".
grpc::Status ToGrpcStatus(const absl::Status& status);

// The upper-case name of a gRPC code ("OK", "PERMISSION_DENIED"...), used as
// a metric label and in logs.
std::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace hosn::api

#endif  // HOSN_SERVER_API_STATUS_MAPPING_H_
