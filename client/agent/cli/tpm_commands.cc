// `hosn-agent tpm-info` and `hosn-agent activate`: the node's half of
// enrollment (docs/agent.md). tpm-info writes, into --out DIR:
//   ak.pub    the AK's TPM2B_PUBLIC (AdminService.BeginEnrollment ak_public)
//   ek.pub    the EK's TPM2B_PUBLIC (ek_public)
//   pcrs.bin  current PCR values of --pcrs, tpm2_pcrread -o format
// activate reads a BeginEnrollment answer (--challenge DIR holding
// credential_blob and encrypted_secret, as hosnctl writes them), runs
// TPM2_ActivateCredential and writes the recovered secret, hex, to a new
// 0600 file (--out FILE).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "client/agent/cli/commands.h"
#include "client/agent/cli/exit_codes.h"
#include "client/agent/cli/flags.h"
#include "client/agent/cli/pcr_file_writer.h"
#include "client/agent/tpm/tpm_device.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"

namespace hosn::agent {
namespace {

constexpr char kTpmInfoUsage[] =
    "usage: hosn-agent tpm-info --tcti TCTI --out DIR [--pcrs sha256:0,...,7]\n"
    "           [--ek-algorithm ecc-p256|rsa-2048]\n";
constexpr char kActivateUsage[] =
    "usage: hosn-agent activate --tcti TCTI --challenge DIR --out FILE\n"
    "           [--ek-algorithm ecc-p256|rsa-2048]\n";

// --ek-algorithm: the TCG EK template, ECC P-256 (L-2, default) or RSA 2048
// (L-1, the key most EK certificates are issued for).
absl::StatusOr<EkAlgorithm> ParseEkAlgorithm(const std::string& name) {
  if (name == "ecc-p256") return EkAlgorithm::kEccP256;
  if (name == "rsa-2048") return EkAlgorithm::kRsa2048;
  return absl::InvalidArgumentError("--ek-algorithm: must be ecc-p256 or rsa-2048");
}

// TPM2B_PUBLIC: the TPMT_PUBLIC with its big-endian u16 size in front.
std::string Sized(const tpm::Bytes& public_area) {
  std::string out;
  out.push_back(static_cast<char>(public_area.size() >> 8));
  out.push_back(static_cast<char>(public_area.size() & 0xff));
  out.append(public_area.begin(), public_area.end());
  return out;
}

int Fail(int code, const absl::Status& status, const char* usage = "") {
  Log(absl::StrCat(status.message(), usage[0] != '\0' ? "\n" : "", usage));
  return code;
}

}  // namespace

int TpmInfoCommand(const std::vector<std::string>& args) {
  auto flags = ParseArgs(args, {"tcti", "out", "pcrs", "ek-algorithm"}, {}, {"tcti", "out"});
  if (!flags.ok()) return Fail(kExitUsage, flags.status(), kTpmInfoUsage);
  auto selection = ParsePcrSelection(flags->Get("pcrs", "sha256:0,1,2,3,4,5,6,7"));
  if (!selection.ok()) return Fail(kExitUsage, selection.status());
  auto ek_algorithm = ParseEkAlgorithm(flags->Get("ek-algorithm", "ecc-p256"));
  if (!ek_algorithm.ok()) return Fail(kExitUsage, ek_algorithm.status(), kTpmInfoUsage);
  auto tpm = TpmDevice::Open(flags->Get("tcti"), AkAlgorithm::kEcdsaP256Sha256, *ek_algorithm);
  if (!tpm.ok()) return Fail(kExitTpm, tpm.status());
  auto ak = (*tpm)->AttestationKeyPublic();
  if (!ak.ok()) return Fail(kExitTpm, ak.status());
  auto ek = (*tpm)->EndorsementKeyPublic();
  if (!ek.ok()) return Fail(kExitTpm, ek.status());
  auto pcrs = (*tpm)->ReadPcrs(*selection);
  if (!pcrs.ok()) return Fail(kExitTpm, pcrs.status());
  auto pcr_file = SerializePcrFile(*selection, *pcrs);
  if (!pcr_file.ok()) return Fail(kExitInternal, pcr_file.status());
  const std::string out = flags->Get("out");
  for (const auto& [name, bytes] : {std::pair<const char*, std::string>{"ak.pub", Sized(*ak)},
                                    {"ek.pub", Sized(*ek)},
                                    {"pcrs.bin", *pcr_file}}) {
    if (absl::Status s = WriteFileAtomically(out + "/" + name, bytes, 0644); !s.ok()) {
      return Fail(kExitUsage, s);
    }
  }
  for (const auto& [alg, bank] : *pcrs) {
    for (const auto& [index, digest] : bank) {
      std::printf("%s:%u %s\n", tpm::HashAlgName(alg).c_str(), index, HexEncode(digest).c_str());
    }
  }
  Log(absl::StrCat("wrote ak.pub, ek.pub and pcrs.bin (", tpm::PcrSelectionToString(*selection),
                   ") to ", out));
  return kExitOk;
}

int ActivateCommand(const std::vector<std::string>& args) {
  auto flags = ParseArgs(args, {"tcti", "challenge", "out", "ek-algorithm"}, {},
                         {"tcti", "challenge", "out"});
  if (!flags.ok()) return Fail(kExitUsage, flags.status(), kActivateUsage);
  auto ek_algorithm = ParseEkAlgorithm(flags->Get("ek-algorithm", "ecc-p256"));
  if (!ek_algorithm.ok()) return Fail(kExitUsage, ek_algorithm.status(), kActivateUsage);
  const std::string dir = flags->Get("challenge");
  auto blob = ReadFile(dir + "/credential_blob", 4096);
  if (!blob.ok()) return Fail(kExitUsage, blob.status());
  auto secret = ReadFile(dir + "/encrypted_secret", 4096);
  if (!secret.ok()) return Fail(kExitUsage, secret.status());
  auto tpm = TpmDevice::Open(flags->Get("tcti"), AkAlgorithm::kEcdsaP256Sha256, *ek_algorithm);
  if (!tpm.ok()) return Fail(kExitTpm, tpm.status());
  auto credential = (*tpm)->ActivateCredential(
      {reinterpret_cast<const uint8_t*>(blob->data()), blob->size()},
      {reinterpret_cast<const uint8_t*>(secret->data()), secret->size()});
  if (!credential.ok()) {
    return Fail(absl::IsPermissionDenied(credential.status()) ? kExitDenied : kExitTpm,
                credential.status());
  }
  std::string hex = HexEncode(RevealSecret(*credential)) + "\n";
  absl::Status written = WriteFileAtomically(flags->Get("out"), hex, 0600);
  std::fill(hex.begin(), hex.end(), '\0');
  if (!written.ok()) return Fail(kExitUsage, written);
  Log(absl::StrCat("credential activated; secret written to ", flags->Get("out")));
  return kExitOk;
}

}  // namespace hosn::agent
