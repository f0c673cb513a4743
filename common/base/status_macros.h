// Propagation macros for absl::Status and absl::StatusOr.
//
// Debian 12's Abseil (20220623) predates Abseil's own macros, so the project
// defines exactly one pair here and uses nothing else:
//
//   HOSN_RETURN_IF_ERROR(DoThing());
//   HOSN_ASSIGN_OR_RETURN(std::string body, ReadFile(path));
//
// Both evaluate their argument once. Neither adds context to the status; call
// sites that need context build a new status with a short lowercase message
// naming the object.
#ifndef HOSN_COMMON_BASE_STATUS_MACROS_H_
#define HOSN_COMMON_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HOSN_STATUS_CONCAT_INNER_(a, b) a##b
#define HOSN_STATUS_CONCAT_(a, b) HOSN_STATUS_CONCAT_INNER_(a, b)

#define HOSN_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status hosn_status_ = (expr);        \
    if (!hosn_status_.ok()) return hosn_status_; \
  } while (false)

#define HOSN_ASSIGN_OR_RETURN(lhs, expr) \
  HOSN_ASSIGN_OR_RETURN_IMPL_(HOSN_STATUS_CONCAT_(hosn_statusor_, __LINE__), lhs, expr)

#define HOSN_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // HOSN_COMMON_BASE_STATUS_MACROS_H_
