// A test certificate authority driven through the OpenSSL CLI: `openssl req
// -x509` for a root, `openssl x509 -new -force_pubkey` to issue, `openssl ca
// -revoke` and `openssl ca -gencrl` for revocation. Its key, certificate and
// `openssl ca` database live under the folder given at creation. Not
// thread-safe.
#ifndef HOSN_TESTS_TESTING_OPENSSL_CA_H_
#define HOSN_TESTS_TESTING_OPENSSL_CA_H_

#include <string>

#include "absl/status/statusor.h"

namespace hosn::testing {

class OpensslTestCa {
 public:
  // A P-256 CA named CN=`name` with files `dir`/`name`.*: self-signed, or
  // issued by `parent`. Valid for 30 days. Internal if the CLI fails.
  static absl::StatusOr<OpensslTestCa> Create(const std::string& dir, const std::string& name,
                                              const OpensslTestCa* parent = nullptr);

  // Issues a certificate for the PEM public key at `public_key_pem_path`,
  // subject CN=`subject`, valid for `days` (negative: already expired), with
  // the extension lines `extensions` (default: a non-CA end entity). Returns
  // the path of the PEM certificate.
  absl::StatusOr<std::string> Issue(const std::string& public_key_pem_path,
                                    const std::string& subject, int days,
                                    const std::string& extensions = "") const;

  // Adds the PEM certificate at `certificate_pem_path` to the revoked list.
  absl::Status Revoke(const std::string& certificate_pem_path) const;

  // A CRL of everything revoked so far, valid for `seconds` from now; PEM.
  absl::StatusOr<std::string> Crl(int seconds) const;

  const std::string& certificate_path() const { return certificate_; }
  const std::string& name() const { return name_; }

 private:
  OpensslTestCa(std::string dir, std::string name);

  std::string dir_;
  std::string name_;
  std::string key_;
  std::string certificate_;
  std::string config_;
};

// Converts a DER certificate file to PEM or back ("PEM"/"DER" `to`); the path
// of the converted file (`path` + ".pem" or ".der").
absl::StatusOr<std::string> ConvertCertificate(const std::string& path, const std::string& to);

}  // namespace hosn::testing

#endif  // HOSN_TESTS_TESTING_OPENSSL_CA_H_
