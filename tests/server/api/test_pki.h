// Test helpers for the gRPC layer: a dev PKI made by deploy/pki/dev-pki.sh in
// a temporary directory, and mTLS client channels built from its files.
//
// Thread-compatible; one DevPki per test.
#ifndef HOSN_TESTS_SERVER_API_TEST_PKI_H_
#define HOSN_TESTS_SERVER_API_TEST_PKI_H_

#include <memory>
#include <string>

#include "grpcpp/channel.h"
#include "tests/testing/test_paths.h"

namespace hosn::testing {

class DevPki {
 public:
  // Runs dev-pki.sh --with-bad into a fresh temporary directory; aborts the
  // test binary if the script fails.
  DevPki();

  const std::string& dir() const { return temp_.path(); }
  // "<dir>/<name>.pem" and "<dir>/<name>.key".
  std::string Cert(const std::string& name) const { return temp_.Join(name + ".pem"); }
  std::string Key(const std::string& name) const { return temp_.Join(name + ".key"); }

  // A channel to 127.0.0.1:`port` (server name "localhost") that trusts
  // `ca` and presents the client certificate `client` (none if empty).
  std::shared_ptr<grpc::Channel> Channel(int port, const std::string& client,
                                         const std::string& ca = "ca") const;

 private:
  ScopedTempDir temp_;
};

// Reads a whole file; aborts on error.
std::string ReadTestFile(const std::string& path);

}  // namespace hosn::testing

#endif  // HOSN_TESTS_SERVER_API_TEST_PKI_H_
