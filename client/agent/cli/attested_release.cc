#include "client/agent/cli/attested_release.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "client/agent/cli/keyd_channel.h"
#include "client/agent/release/dek_opener.h"
#include "common/tpm/qualifying_data.h"
#include "hosn/keyd/v1/key_release.grpc.pb.h"

namespace hosn::agent {
namespace v1 = ::hosn::keyd::v1;
namespace {

constexpr char kWrapScheme[] = "ecdh-p256-kwp";

bool Retriable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

// TPM failures become Internal with kTpmErrorPayload: never retried as a
// daemon problem, and mapped to their own exit code.
absl::Status Tpm(const absl::Status& status) {
  absl::Status tagged(absl::StatusCode::kInternal, absl::StrCat("tpm: ", status.message()));
  tagged.SetPayload(kTpmErrorPayload, absl::Cord("1"));
  return tagged;
}

std::string AsString(const tpm::Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

// One attempt: a fresh challenge, key and quote; the DEK or the first error.
absl::StatusOr<SecretBytes> AttemptOnce(TpmDevice& tpm, v1::KeyReleaseService::Stub& stub,
                                        const ReleaseOptions& options, ReleaseTimings* timings) {
  const absl::Time start = absl::Now();
  v1::GetChallengeResponse challenge;
  {
    auto context = ContextWithTimeout(options.rpc_timeout);
    grpc::Status status = stub.GetChallenge(context.get(), v1::GetChallengeRequest(), &challenge);
    if (!status.ok()) return FromGrpcStatus("GetChallenge", status);
  }
  auto ephemeral = EphemeralKey::Generate();
  if (!ephemeral.ok()) return ephemeral.status();
  const std::string& spki = (*ephemeral)->public_key_der();
  const std::string& nonce = challenge.nonce();
  auto qualifying =
      tpm::ComputeQualifyingData({reinterpret_cast<const uint8_t*>(nonce.data()), nonce.size()},
                                 {reinterpret_cast<const uint8_t*>(spki.data()), spki.size()});
  if (!qualifying.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("hosn-keyd sent an unusable challenge: ", qualifying.status().message()));
  }
  auto quote = tpm.Quote(options.selection, *qualifying);
  if (!quote.ok()) return Tpm(quote.status());
  const absl::Time quoted = absl::Now();

  v1::ReleaseKeyRequest request;
  request.set_challenge(challenge.challenge());
  request.set_quote(AsString(quote->attest));
  request.set_quote_signature(AsString(quote->signature));
  for (const auto& [alg, bank] : quote->pcr_values) {
    for (const auto& [index, digest] : bank) {
      v1::PcrValue* value = request.add_pcr_values();
      value->set_bank(tpm::HashAlgName(alg));
      value->set_index(index);
      value->set_digest(AsString(digest));
    }
  }
  request.set_event_log(options.event_log);
  request.set_ephemeral_public_key(spki);
  request.set_manifest(options.manifest);
  request.set_manifest_signature(options.manifest_signature);
  v1::ReleaseKeyResponse response;
  {
    auto context = ContextWithTimeout(options.rpc_timeout);
    grpc::Status status = stub.ReleaseKey(context.get(), request, &response);
    if (!status.ok()) return FromGrpcStatus("ReleaseKey", status);
  }
  if (response.wrap_scheme() != kWrapScheme) {
    return absl::FailedPreconditionError(
        absl::StrCat("unsupported wrap scheme '", response.wrap_scheme(), "'"));
  }
  auto kdf = ReleaseKdfFromName(response.wrap_kdf());
  if (!kdf.ok()) return absl::FailedPreconditionError(kdf.status().message());
  auto dek = (*ephemeral)
                 ->OpenWrappedDek(response.releaser_public_key(), response.wrapped_dek(), *kdf,
                                  AsString(*qualifying));
  if (!dek.ok()) return absl::DataLossError(absl::StrCat("release: ", dek.status().message()));
  timings->attest = quoted - start;
  timings->release = absl::Now() - quoted;
  return dek;
}

}  // namespace

absl::StatusOr<SecretBytes> ObtainDek(TpmDevice& tpm, const std::shared_ptr<grpc::Channel>& channel,
                                      const ReleaseOptions& options, ReleaseTimings* timings) {
  auto stub = v1::KeyReleaseService::NewStub(channel);
  const absl::Time give_up = absl::Now() + options.deadline;
  absl::Duration backoff = absl::Milliseconds(200);
  for (timings->attempts = 1;; ++timings->attempts) {
    ReleaseOptions attempt = options;
    attempt.rpc_timeout =
        std::min(options.rpc_timeout, std::max(give_up - absl::Now(), absl::Milliseconds(100)));
    absl::StatusOr<SecretBytes> dek = AttemptOnce(tpm, *stub, attempt, timings);
    if (dek.ok() || !Retriable(dek.status())) return dek;
    const absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrCat(
          "hosn-keyd unreachable: gave up after ", timings->attempts, " attempts in ",
          absl::FormatDuration(options.deadline), "; last error: ", dek.status().message()));
    }
    if (options.log) {
      options.log(absl::StrCat("hosn-keyd not reachable (", dek.status().message(),
                               "); retrying in ", absl::FormatDuration(std::min(backoff, left))));
    }
    absl::SleepFor(std::min(backoff, left));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

}  // namespace hosn::agent
