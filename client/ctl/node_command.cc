#include "client/ctl/node_command.h"

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/agent/cli/flags.h"
#include "client/agent/cli/keyd_channel.h"
#include "client/agent/tpm/tpm_device.h"
#include "client/ctl/bundle_command.h"
#include "common/base/file_util.h"
#include "common/base/hex.h"
#include "common/tpm/marshal.h"
#include "common/tpm/pcr_file.h"
#include "hosn/keyd/v1/admin.grpc.pb.h"

namespace hosn::ctl {
namespace v1 = ::hosn::keyd::v1;
using agent::ParseArgs;
namespace {

constexpr char kUsage[] =
    "usage: hosnctl node enroll KEYD --node-id ID --node-class CLASS --ak-public FILE\n"
    "           (--ek-public FILE | --ek-cert DER | both)\n"
    "           (--tcti TCTI [--ek-algorithm ecc-p256|rsa-2048]\n"
    "           | --challenge-out DIR | --challenge DIR --activation-secret REF)\n"
    "       hosnctl node revoke KEYD --node-id ID [--reason TEXT]\n"
    "       hosnctl policy set KEYD --node-class CLASS --pcrs FILE [--pcrs FILE...]\n"
    "           --model NAME [--model NAME...] [--require-event-log]\n"
    "           [--require-secure-boot] [--allow-efi-app SHA256HEX...]\n"
    "           [--forbid-efi-action TEXT...]   (these three need --require-event-log)\n"
    "  KEYD: --keyd HOST:PORT --tls-cert PEM --tls-key REF --tls-ca PEM [--tls-server-name N]\n";

const std::set<std::string> kKeydFlags = {"keyd", "tls-cert", "tls-key", "tls-ca",
                                          "tls-server-name"};

int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "hosnctl: %s\n", std::string(status.message()).c_str());
  return code;
}

int KeydFail(const absl::Status& status) {
  const bool refused = absl::IsPermissionDenied(status) || absl::IsUnauthenticated(status) ||
                       absl::IsInvalidArgument(status) || absl::IsFailedPrecondition(status) ||
                       absl::IsNotFound(status);
  return Fail(refused ? kExitKeydRefused : kExitKeydUnavailable, status);
}

// `names` plus the connection flags (all of them optional when `optional`).
std::set<std::string> With(std::set<std::string> names, bool required = false) {
  names.insert(kKeydFlags.begin(), kKeydFlags.end());
  if (required) names.erase("tls-server-name");
  return names;
}

absl::StatusOr<std::unique_ptr<v1::AdminService::Stub>> Connect(const agent::ParsedArgs& flags) {
  agent::KeydEndpoint endpoint{flags.Get("keyd"), flags.Get("tls-cert"), flags.Get("tls-key"),
                               flags.Get("tls-ca"), flags.Get("tls-server-name")};
  auto channel = agent::MakeKeydChannel(endpoint);
  if (!channel.ok()) return channel.status();
  return v1::AdminService::NewStub(*channel);
}

template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> Call(v1::AdminService::Stub& stub, Method method, const char* name,
                              const Request& request) {
  Response response;
  auto context = agent::ContextWithTimeout(absl::Seconds(30));
  grpc::Status status = (stub.*method)(context.get(), request, &response);
  if (!status.ok()) return agent::FromGrpcStatus(name, status);
  return response;
}

std::span<const uint8_t> Span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The EK template the local TPM is to load for ActivateCredential: the type of
// the EK public sent, unless --ek-algorithm names one.
absl::StatusOr<agent::EkAlgorithm> EkAlgorithmFor(const agent::ParsedArgs& flags,
                                                  const std::string& ek_public) {
  if (flags.Has("ek-algorithm")) {
    const std::string name = flags.Get("ek-algorithm");
    if (name == "ecc-p256") return agent::EkAlgorithm::kEccP256;
    if (name == "rsa-2048") return agent::EkAlgorithm::kRsa2048;
    return absl::InvalidArgumentError("--ek-algorithm: must be ecc-p256 or rsa-2048");
  }
  if (ek_public.empty()) return agent::EkAlgorithm::kEccP256;
  auto ek = tpm::Unmarshal2bPublic(Span(ek_public));
  if (!ek.ok()) return absl::InvalidArgumentError("--ek-public: not a TPM2B_PUBLIC");
  return ek->type == TPM2_ALG_RSA ? agent::EkAlgorithm::kRsa2048 : agent::EkAlgorithm::kEccP256;
}

int Enroll(const std::vector<std::string>& args) {
  auto flags = ParseArgs(args,
                         With({"node-id", "node-class", "ak-public", "ek-public", "ek-cert", "tcti",
                               "ek-algorithm", "challenge-out", "challenge", "activation-secret"}),
                         {}, With({"node-id", "node-class", "ak-public"}, true));
  if (!flags.ok()) return Fail(kExitUsage, flags.status());
  if (!flags->Has("ek-public") && !flags->Has("ek-cert")) {
    return Fail(kExitUsage, absl::InvalidArgumentError("--ek-public or --ek-cert is required"));
  }
  auto ak = ReadFile(flags->Get("ak-public"), 4096);
  if (!ak.ok()) return Fail(kExitUsage, ak.status());
  absl::StatusOr<std::string> ek = std::string();
  if (flags->Has("ek-public")) ek = ReadFile(flags->Get("ek-public"), 4096);
  if (!ek.ok()) return Fail(kExitUsage, ek.status());
  // The EK certificate, DER, as the TPM's NV index holds it.
  absl::StatusOr<std::string> ek_cert = std::string();
  if (flags->Has("ek-cert")) ek_cert = ReadFile(flags->Get("ek-cert"), 1 << 16);
  if (!ek_cert.ok()) return Fail(kExitUsage, ek_cert.status());
  auto stub = Connect(*flags);
  if (!stub.ok()) return Fail(kExitUsage, stub.status());

  v1::EnrollNodeRequest enroll;
  enroll.set_node_id(flags->Get("node-id"));
  enroll.set_node_class(flags->Get("node-class"));
  enroll.set_ak_public(*ak);
  enroll.set_ek_public(*ek);
  enroll.set_ek_certificate(*ek_cert);
  if (flags->Has("challenge")) {  // second step: the node's answer
    const std::string dir = flags->Get("challenge");
    auto token = ReadFile(dir + "/enrollment_token", 1 << 16);
    if (!token.ok()) return Fail(kExitUsage, token.status());
    auto secret = ReadSecretReference(flags->Get("activation-secret"));
    if (!secret.ok()) return Fail(kExitUsage, secret.status());
    const auto hex = RevealSecret(*secret);
    auto raw = HexDecode({reinterpret_cast<const char*>(hex.data()), hex.size()});
    if (!raw.ok())
      return Fail(kExitUsage, absl::InvalidArgumentError("activation secret: not hex"));
    enroll.set_activation_secret(std::string(raw->begin(), raw->end()));
    enroll.set_enrollment_token(*token);
  } else {
    v1::BeginEnrollmentRequest begin;
    begin.set_node_id(enroll.node_id());
    begin.set_node_class(enroll.node_class());
    begin.set_ak_public(*ak);
    begin.set_ek_public(*ek);
    begin.set_ek_certificate(*ek_cert);
    auto challenge = Call<v1::BeginEnrollmentRequest, v1::BeginEnrollmentResponse>(
        **stub, &v1::AdminService::Stub::BeginEnrollment, "BeginEnrollment", begin);
    if (!challenge.ok()) return KeydFail(challenge.status());
    if (flags->Has("challenge-out")) {
      const std::string dir = flags->Get("challenge-out");
      for (const auto& [name, bytes] :
           {std::pair<const char*, std::string>{"credential_blob", challenge->credential_blob()},
            {"encrypted_secret", challenge->encrypted_secret()},
            {"enrollment_token", challenge->enrollment_token()}}) {
        if (absl::Status s = WriteFileAtomically(dir + "/" + name, bytes, 0644); !s.ok()) {
          return Fail(kExitError, s);
        }
      }
      std::printf("challenge written to %s; run `hosn-agent activate` on the node\n", dir.c_str());
      return kExitOk;
    }
    if (!flags->Has("tcti")) return Fail(kExitUsage, absl::InvalidArgumentError(kUsage));
    auto ek_algorithm = EkAlgorithmFor(*flags, *ek);
    if (!ek_algorithm.ok()) return Fail(kExitUsage, ek_algorithm.status());
    auto tpm = agent::TpmDevice::Open(flags->Get("tcti"), agent::AkAlgorithm::kEcdsaP256Sha256,
                                      *ek_algorithm);
    if (!tpm.ok()) return Fail(kExitError, tpm.status());
    auto secret = (*tpm)->ActivateCredential(Span(challenge->credential_blob()),
                                             Span(challenge->encrypted_secret()));
    if (!secret.ok()) return Fail(kExitError, secret.status());
    const auto bytes = RevealSecret(*secret);
    enroll.set_activation_secret(
        std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    enroll.set_enrollment_token(challenge->enrollment_token());
  }
  auto done = Call<v1::EnrollNodeRequest, v1::EnrollNodeResponse>(
      **stub, &v1::AdminService::Stub::EnrollNode, "EnrollNode", enroll);
  if (!done.ok()) return KeydFail(done.status());
  std::printf("node %s enrolled in class %s; ak name %s\n", enroll.node_id().c_str(),
              enroll.node_class().c_str(), HexEncode(done->ak_name()).c_str());
  return kExitOk;
}

int Revoke(const std::vector<std::string>& args) {
  auto flags = ParseArgs(args, With({"node-id", "reason"}), {}, With({"node-id"}, true));
  if (!flags.ok()) return Fail(kExitUsage, flags.status());
  auto stub = Connect(*flags);
  if (!stub.ok()) return Fail(kExitUsage, stub.status());
  v1::RevokeNodeRequest request;
  request.set_node_id(flags->Get("node-id"));
  request.set_reason(flags->Get("reason", "revoked by operator"));
  auto done = Call<v1::RevokeNodeRequest, v1::RevokeNodeResponse>(
      **stub, &v1::AdminService::Stub::RevokeNode, "RevokeNode", request);
  if (!done.ok()) return KeydFail(done.status());
  std::printf("node %s revoked\n", request.node_id().c_str());
  return kExitOk;
}

}  // namespace

int RunNodeCommand(const std::vector<std::string>& args) {
  const std::vector<std::string> rest(args.empty() ? args.begin() : args.begin() + 1, args.end());
  if (!args.empty() && args[0] == "enroll") return Enroll(rest);
  if (!args.empty() && args[0] == "revoke") return Revoke(rest);
  std::fputs(kUsage, stderr);
  return kExitUsage;
}

int RunPolicyCommand(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "set") {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  auto flags = ParseArgs(
      {args.begin() + 1, args.end()},
      With({"node-class", "pcrs", "model", "allow-efi-app", "forbid-efi-action"}),
      {"require-event-log", "require-secure-boot"}, With({"node-class", "pcrs", "model"}, true));
  if (!flags.ok()) return Fail(kExitUsage, flags.status());
  v1::SetReleasePolicyRequest request;
  request.set_node_class(flags->Get("node-class"));
  request.set_require_event_log(flags->switches.count("require-event-log") != 0);
  for (const std::string& model : flags->values.at("model")) request.add_allowed_models(model);
  v1::EventLogRules* rules = request.mutable_event_log_rules();
  rules->set_require_secure_boot(flags->switches.count("require-secure-boot") != 0);
  if (auto apps = flags->values.find("allow-efi-app"); apps != flags->values.end()) {
    for (const std::string& hex : apps->second) {
      auto digest = HexDecode(hex);
      if (!digest.ok() || digest->size() != 32) {
        return Fail(kExitUsage, absl::InvalidArgumentError("--allow-efi-app: want 64 hex digits"));
      }
      rules->add_allowed_efi_application_sha256(std::string(digest->begin(), digest->end()));
    }
  }
  if (auto actions = flags->values.find("forbid-efi-action"); actions != flags->values.end()) {
    for (const std::string& action : actions->second) rules->add_forbidden_efi_actions(action);
  }
  for (const std::string& path : flags->values.at("pcrs")) {
    auto bytes = ReadFile(path, 1 << 16);
    if (!bytes.ok()) return Fail(kExitUsage, bytes.status());
    auto file = tpm::ParseTpm2ToolsPcrFile(Span(*bytes));
    if (!file.ok()) return Fail(kExitUsage, file.status());
    for (const auto& [alg, bank] : file->values) {
      v1::PcrReferenceSet* set = request.add_reference_sets();
      set->set_name(std::filesystem::path(path).filename().string());
      set->set_bank(tpm::HashAlgName(alg));
      for (const auto& [index, digest] : bank) {
        (*set->mutable_pcrs())[index] = std::string(digest.begin(), digest.end());
      }
    }
  }
  auto stub = Connect(*flags);
  if (!stub.ok()) return Fail(kExitUsage, stub.status());
  auto done = Call<v1::SetReleasePolicyRequest, v1::SetReleasePolicyResponse>(
      **stub, &v1::AdminService::Stub::SetReleasePolicy, "SetReleasePolicy", request);
  if (!done.ok()) return KeydFail(done.status());
  std::printf("policy for class %s set (version %llu, %d reference set(s))\n",
              request.node_class().c_str(), static_cast<unsigned long long>(done->policy_version()),
              request.reference_sets_size());
  return kExitOk;
}

}  // namespace hosn::ctl
