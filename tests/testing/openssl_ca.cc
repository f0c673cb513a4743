#include "tests/testing/openssl_ca.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/testing/softhsm_token.h"

namespace hosn::testing {
namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

OpensslTestCa::OpensslTestCa(std::string dir, std::string name)
    : dir_(std::move(dir)),
      name_(std::move(name)),
      key_(absl::StrCat(dir_, "/", name_, ".key")),
      certificate_(absl::StrCat(dir_, "/", name_, ".pem")),
      config_(absl::StrCat(dir_, "/", name_, ".cnf")) {}

absl::StatusOr<OpensslTestCa> OpensslTestCa::Create(const std::string& dir, const std::string& name,
                                                    const OpensslTestCa* parent) {
  OpensslTestCa ca(dir, name);
  const std::string base = absl::StrCat(dir, "/", name);
  std::ofstream(ca.config_) << "[ca]\ndefault_ca = d\n[d]\ndatabase = " << base
                            << ".index\ncrlnumber = " << base
                            << ".crlnumber\ncertificate = " << ca.certificate_
                            << "\nprivate_key = " << ca.key_
                            << "\ndefault_md = sha256\ndefault_crl_days = 30\n";
  std::ofstream(base + ".index").flush();
  std::ofstream(base + ".crlnumber") << "01\n";
  const std::string ca_extensions =
      "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
  if (parent == nullptr) {
    absl::StatusOr<std::string> made = RunCommand(absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ", ca.key_,
        " -out ", ca.certificate_, " -subj /CN=", name,
        " -days 30 -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign 2>&1"));
    if (!made.ok()) return made.status();
    return ca;
  }
  absl::StatusOr<std::string> key = RunCommand(
      absl::StrCat("openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out ", ca.key_,
                   " 2>&1 && openssl pkey -in ", ca.key_, " -pubout -out ", base, ".pub 2>&1"));
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> issued = parent->Issue(base + ".pub", name, 30, ca_extensions);
  if (!issued.ok()) return issued.status();
  absl::StatusOr<std::string> moved =
      RunCommand(absl::StrCat("mv ", *issued, " ", ca.certificate_));
  if (!moved.ok()) return moved.status();
  return ca;
}

absl::StatusOr<std::string> OpensslTestCa::Issue(const std::string& public_key_pem_path,
                                                 const std::string& subject, int days,
                                                 const std::string& extensions) const {
  const std::string out = absl::StrCat(public_key_pem_path, ".", name_, ".pem");
  std::ofstream(out + ".ext") << (extensions.empty() ? "basicConstraints=critical,CA:FALSE\n"
                                                     : extensions);
  absl::StatusOr<std::string> issued =
      RunCommand(absl::StrCat("openssl x509 -new -force_pubkey ", public_key_pem_path,
                              " -subj /CN=", subject, " -CA ", certificate_, " -CAkey ", key_,
                              " -days ", days, " -extfile ", out, ".ext -out ", out, " 2>&1"));
  if (!issued.ok()) return issued.status();
  return out;
}

absl::Status OpensslTestCa::Revoke(const std::string& certificate_pem_path) const {
  return RunCommand(absl::StrCat("openssl ca -config ", config_, " -revoke ", certificate_pem_path,
                                 " 2>&1"))
      .status();
}

absl::StatusOr<std::string> OpensslTestCa::Crl(int seconds) const {
  const std::string out = absl::StrCat(dir_, "/", name_, ".crl.pem");
  absl::StatusOr<std::string> made = RunCommand(absl::StrCat(
      "openssl ca -config ", config_, " -gencrl -crlsec ", seconds, " -out ", out, " 2>&1"));
  if (!made.ok()) return made.status();
  return ReadText(out);
}

absl::StatusOr<std::string> ConvertCertificate(const std::string& path, const std::string& to) {
  const std::string from = to == "PEM" ? "DER" : "PEM";
  const std::string out = absl::StrCat(path, to == "PEM" ? ".pem" : ".der");
  absl::StatusOr<std::string> converted = RunCommand(absl::StrCat(
      "openssl x509 -inform ", from, " -in ", path, " -outform ", to, " -out ", out, " 2>&1"));
  if (!converted.ok()) return converted.status();
  return out;
}

}  // namespace hosn::testing
