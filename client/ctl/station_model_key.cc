#include "client/ctl/station_model_key.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/agent/release/dek_opener.h"
#include "common/base/status_macros.h"
#include "common/bundle/segment.h"

namespace hosn::ctl {
namespace v1 = ::hosn::keyd::v1;

namespace {

// The only scheme a station opens (docs/release-wrap.md).
constexpr char kWrapScheme[] = "ecdh-p256-kwp";

absl::Status BadReply(absl::StatusCode code, const std::string& what) {
  return AsKeydError(absl::Status(code, absl::StrCat("hosn-keyd: CreateModelKey: ", what)));
}

}  // namespace

absl::StatusOr<StationModelKey> CreateStationModelKey(KeydManifestSigner& keyd,
                                                      std::string_view model_name,
                                                      std::string_view model_version,
                                                      std::string_view kek_label) {
  // 1. A key pair of this process only; its private half never leaves it.
  HOSN_ASSIGN_OR_RETURN(std::unique_ptr<agent::EphemeralKey> station,
                        agent::EphemeralKey::Generate());

  // 2. The HSM makes the DEK and wraps it twice: under the KEK and to us.
  v1::CreateModelKeyRequest request;
  request.set_model_name(std::string(model_name));
  request.set_model_version(std::string(model_version));
  request.set_kek_label(std::string(kek_label));
  request.set_station_public_key(station->public_key_der());
  HOSN_ASSIGN_OR_RETURN(v1::CreateModelKeyResponse reply, keyd.CreateModelKey(request));

  // 3. Check the reply before opening anything; no field here is secret.
  if (reply.wrap_scheme() != kWrapScheme) {
    return BadReply(absl::StatusCode::kFailedPrecondition,
                    absl::StrCat("wrap scheme \"", reply.wrap_scheme(), "\" is not ", kWrapScheme));
  }
  auto kdf = agent::ReleaseKdfFromName(reply.wrap_kdf());
  if (!kdf.ok()) {
    return BadReply(absl::StatusCode::kFailedPrecondition, std::string(kdf.status().message()));
  }
  if (reply.kek_wrapped_dek().empty() || reply.kek_label().empty() || reply.kek_id().empty()) {
    return BadReply(absl::StatusCode::kFailedPrecondition, "no kek-wrapped dek, label or id");
  }

  // 4. Open our copy as a node opens a release (empty shared info).
  auto dek =
      station->OpenWrappedDek(reply.releaser_public_key(), reply.station_wrapped_dek(), *kdf, "");
  if (!dek.ok()) {
    return BadReply(dek.status().code() == absl::StatusCode::kDataLoss
                        ? absl::StatusCode::kDataLoss
                        : absl::StatusCode::kFailedPrecondition,
                    std::string(dek.status().message()));
  }
  if (dek->size() != bundle::kDekSize) {
    return BadReply(absl::StatusCode::kDataLoss, "the station's dek is not 32 bytes");
  }
  return StationModelKey{*std::move(dek), std::move(*reply.mutable_kek_wrapped_dek()),
                         reply.kek_label(), reply.kek_id()};
}

}  // namespace hosn::ctl
