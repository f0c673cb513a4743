// A private software TPM for one test: `swtpm socket` on loopback with
// ephemeral ports and a state folder in a temporary directory, driven through
// the tpm2-tools CLI (TPM2TOOLS_TCTI=swtpm:...). The process is killed and
// reaped when the object is destroyed. Not thread-safe: one test thread.
#ifndef HOSN_TESTS_SERVER_ATTEST_SWTPM_H_
#define HOSN_TESTS_SERVER_ATTEST_SWTPM_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tpm/pcr_file.h"
#include "common/tpm/tpm_types.h"
#include "tests/testing/test_paths.h"

namespace hosn::attest::testing {

class Swtpm {
 public:
  // Starts swtpm and creates an RSA endorsement key. Internal (with the tail
  // of swtpm's log) if it does not come up within a few seconds.
  static absl::StatusOr<std::unique_ptr<Swtpm>> Start();
  ~Swtpm();

  struct Ak {
    std::string context;     // tpm2-tools context file
    tpm::Bytes tpmt_public;  // marshalled TPMT_PUBLIC
  };
  // `type`: "rsa" or "ecc"; `scheme`: "rsassa", "rsapss" or "ecdsa".
  absl::StatusOr<Ak> CreateAk(const std::string& name, const std::string& type,
                              const std::string& scheme);

  struct Quote {
    tpm::Bytes attest;     // TPMS_ATTEST as signed
    tpm::Bytes signature;  // TPMT_SIGNATURE
    tpm::PcrFile pcrs;     // the values tpm2_quote read beside it
  };
  // `selection` in tpm2-tools syntax, e.g. "sha256:0,1,2,3,4,5,6,7".
  absl::StatusOr<Quote> MakeQuote(const Ak& ak, const std::string& selection,
                                  std::span<const uint8_t> qualifying_data);

  // tpm2_pcrextend PCR:BANK=DIGEST.
  absl::Status Extend(uint32_t pcr, const std::string& bank, std::span<const uint8_t> digest);

  // Runs one tpm2-tools command against this TPM, then flushes transient
  // objects (swtpm has no resource manager). Internal with stderr on failure.
  absl::Status Run(const std::vector<std::string>& argv);

 private:
  Swtpm() = default;
  absl::Status Launch();

  hosn::testing::ScopedTempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  int counter_ = 0;
};

}  // namespace hosn::attest::testing

#endif  // HOSN_TESTS_SERVER_ATTEST_SWTPM_H_
