// Readers for the shared third-party TPM data used by the attestation tests:
// raw files, the JSON expectation files (go-tpm-tools) through protobuf's
// google.protobuf.Struct, and the `pcrs:` section of tpm2-tools' expected
// YAML output. Test-only; failures abort the calling test through gtest.
#ifndef HOSN_TESTS_SERVER_ATTEST_TEST_DATA_H_
#define HOSN_TESTS_SERVER_ATTEST_TEST_DATA_H_

#include <google/protobuf/struct.pb.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/tpm/tpm_types.h"

namespace hosn::attest::testing {

// The bytes of ../shared/data/<relative>.
absl::StatusOr<tpm::Bytes> ReadSharedBytes(const std::string& relative);

// ../shared/data/<relative> parsed as JSON.
absl::StatusOr<google::protobuf::Struct> ReadSharedJson(const std::string& relative);

// {"0": "hex", "1": "hex", ...} as one PCR bank.
absl::StatusOr<tpm::PcrBank> PcrBankFromJson(const google::protobuf::Struct& object);

// The `pcrs:` section of a tpm2_eventlog YAML output:
//   pcrs:
//     sha1:
//       0  : 0x...
absl::StatusOr<tpm::PcrValues> ReadYamlPcrs(const std::string& relative);

}  // namespace hosn::attest::testing

#endif  // HOSN_TESTS_SERVER_ATTEST_TEST_DATA_H_
