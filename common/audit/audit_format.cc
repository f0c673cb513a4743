#include "common/audit/audit_format.h"

#include <openssl/sha.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/hex.h"
#include "google/protobuf/util/json_util.h"

namespace hosn::audit {
namespace {

using ::google::protobuf::util::JsonParseOptions;
using ::google::protobuf::util::JsonPrintOptions;

absl::StatusOr<std::string> ToJsonLine(const google::protobuf::Message& message) {
  JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = false;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    return absl::InternalError("audit: cannot serialize entry");
  }
  return out;
}

absl::Status FromJsonLine(std::string_view line, google::protobuf::Message* message) {
  if (line.find('\n') != std::string_view::npos) {
    return absl::InvalidArgumentError("unparsable entry: embedded newline");
  }
  JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), message, options);
  if (!status.ok()) return absl::InvalidArgumentError("unparsable entry");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SerializeRecord(const hosn::keyd::v1::AuditRecord& record) {
  return ToJsonLine(record);
}

absl::StatusOr<std::string> SerializeCheckpoint(const hosn::keyd::v1::AuditCheckpoint& checkpoint) {
  return ToJsonLine(checkpoint);
}

absl::StatusOr<hosn::keyd::v1::AuditRecord> ParseRecord(std::string_view line) {
  hosn::keyd::v1::AuditRecord record;
  if (auto status = FromJsonLine(line, &record); !status.ok()) return status;
  return record;
}

absl::StatusOr<hosn::keyd::v1::AuditCheckpoint> ParseCheckpoint(std::string_view line) {
  hosn::keyd::v1::AuditCheckpoint checkpoint;
  if (auto status = FromJsonLine(line, &checkpoint); !status.ok()) return status;
  return checkpoint;
}

std::string LineHash(std::string_view line) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(line.data()), line.size(), digest);
  return HexEncode(std::span<const uint8_t>(digest, sizeof(digest)));
}

std::string CheckpointSignedBytes(const hosn::keyd::v1::AuditCheckpoint& checkpoint) {
  return absl::StrCat("hosn-audit-checkpoint-v1\n", checkpoint.replica_id(), "\n",
                      checkpoint.sequence(), "\n", checkpoint.head_sha256(), "\n",
                      checkpoint.time(), "\n");
}

std::string NowRfc3339() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace hosn::audit
