#include "tests/common/bundle/bundle_test_util.h"

#include <openssl/evp.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace hosn::bundle::testing {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "test fixture failed: " << what << "\n";
  std::abort();
}

void RunOrDie(const std::string& command) {
  if (Run(command + " >/dev/null 2>&1") != 0) Die(command);
}

}  // namespace

int Run(const std::string& command) {
  int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  if (!out.good()) Die("write " + path);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) Die("read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string PatternBytes(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<char>(x);
  }
  return out;
}

TestPki MakeTestPki(const std::string& dir, const std::string& signer_ext,
                    const std::string& key_algorithm) {
  TestPki pki;
  pki.ca_pem_path = dir + "/ca.pem";
  pki.ca_key_path = dir + "/ca.key";
  pki.signer_cert_path = dir + "/signer.pem";
  pki.signer_key_path = dir + "/signer.key";
  std::string keygen = key_algorithm == "RSA"
                           ? "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
                           : "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256";
  WriteFileOrDie(dir + "/signer.ext", signer_ext);
  WriteFileOrDie(dir + "/ca.ext",
                 "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n");
  RunOrDie("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " +
           pki.ca_key_path);
  RunOrDie("openssl req -new -key " + pki.ca_key_path + " -subj '/CN=Hosn Test Bundle CA' -out " +
           dir + "/ca.csr");
  RunOrDie("openssl x509 -req -days 30 -in " + dir + "/ca.csr -signkey " + pki.ca_key_path +
           " -extfile " + dir + "/ca.ext -out " + pki.ca_pem_path);
  RunOrDie(keygen + " -out " + pki.signer_key_path);
  RunOrDie("openssl req -new -key " + pki.signer_key_path +
           " -subj '/CN=Hosn Test Bundle Signer' -out " + dir + "/signer.csr");
  RunOrDie("openssl x509 -req -days 30 -in " + dir + "/signer.csr -CA " + pki.ca_pem_path +
           " -CAkey " + pki.ca_key_path + " -set_serial 2 -extfile " + dir + "/signer.ext -out " +
           pki.signer_cert_path);
  pki.ca_pem = ReadFileOrDie(pki.ca_pem_path);
  pki.signer_cert_pem = ReadFileOrDie(pki.signer_cert_path);
  pki.signer_key_pem = ReadFileOrDie(pki.signer_key_path);
  return pki;
}

SecretBytes TestDek() {
  std::string bytes(32, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xa0 + i);
  return SecretBytes::CopyOf(bytes);
}

std::string TestWrappedDek() {
  unsigned char kek[32];
  for (int i = 0; i < 32; ++i) kek[i] = static_cast<unsigned char>(i);
  SecretBytes dek = TestDek();
  auto plain = RevealSecret(dek);
  unsigned char out[64];
  int len = 0, final_len = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_wrap_pad(), nullptr, kek, nullptr) != 1 ||
      EVP_EncryptUpdate(ctx, out, &len, plain.data(), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, out + len, &final_len) != 1) {
    Die("key wrap");
  }
  EVP_CIPHER_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(len + final_len));
}

}  // namespace hosn::bundle::testing
