// Helpers shared by the bundle and hosnctl tests: a throw-away PKI made with
// the openssl CLI, a fixed test DEK and its RFC 5649 wrap, small file
// helpers. Test-only; each helper aborts the test binary on setup failure so
// no test can pass without its fixture.
#ifndef HOSN_TESTS_COMMON_BUNDLE_BUNDLE_TEST_UTIL_H_
#define HOSN_TESTS_COMMON_BUNDLE_BUNDLE_TEST_UTIL_H_

#include <cstdint>
#include <string>

#include "common/base/secret_bytes.h"

namespace hosn::bundle::testing {

// Files of a CA and one signer certificate below `dir`: ca.pem, ca.key,
// signer.pem, signer.key. `signer_ext` is the x509v3 extension text for the
// signer certificate.
struct TestPki {
  std::string ca_pem_path;
  std::string ca_key_path;
  std::string signer_cert_path;
  std::string signer_key_path;
  std::string ca_pem;
  std::string signer_cert_pem;
  std::string signer_key_pem;
};

inline constexpr char kSignerExtensions[] =
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=codeSigning,emailProtection\n";

// `key_algorithm` is "EC" (P-256) or "RSA" (2048).
TestPki MakeTestPki(const std::string& dir, const std::string& signer_ext = kSignerExtensions,
                    const std::string& key_algorithm = "EC");

// A fixed 32-byte DEK and its wrap under a fixed test KEK (AES-256-KWP).
SecretBytes TestDek();
std::string TestWrappedDek();

// Runs a shell command; returns its exit status (-1 if it did not exit).
int Run(const std::string& command);

void WriteFileOrDie(const std::string& path, const std::string& contents);
std::string ReadFileOrDie(const std::string& path);
// Deterministic pseudo-random bytes.
std::string PatternBytes(size_t size, uint32_t seed);

}  // namespace hosn::bundle::testing

#endif  // HOSN_TESTS_COMMON_BUNDLE_BUNDLE_TEST_UTIL_H_
