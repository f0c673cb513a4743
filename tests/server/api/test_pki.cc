#include "tests/server/api/test_pki.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace hosn::testing {

std::string ReadTestFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

DevPki::DevPki() {
  const std::string command =
      "bash " + SourcePath("deploy/pki/dev-pki.sh") + " " + dir() + " --with-bad >/dev/null";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "dev-pki.sh failed\n");
    std::abort();
  }
}

std::shared_ptr<grpc::Channel> DevPki::Channel(int port, const std::string& client,
                                               const std::string& ca) const {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadTestFile(Cert(ca));
  if (!client.empty()) {
    options.pem_cert_chain = ReadTestFile(Cert(client));
    options.pem_private_key = ReadTestFile(Key(client));
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::SslCredentials(options), args);
}

}  // namespace hosn::testing
