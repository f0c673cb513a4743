// KeyStore: token data objects that hold the daemon's fleet state, so that
// several hosn-keyd replicas on one token share it (docs/hsm.md, "Data
// objects").
//
// Each put creates a new CKO_DATA token object whose CKA_VALUE starts with a
// 16-byte version header (8-byte big-endian generation, 8 random bytes),
// then destroys the versions it read before, oldest first. Readers take the
// highest (generation, random) version that parses. A crash at any moment
// leaves either the old value or the new one readable, never nothing and
// never half a value: SoftHSM writes each object into a file of its own and
// loads only complete files; a real HSM creates objects atomically.
//
// Every call searches afresh inside one pooled session: no handle survives
// the call, so another replica's changes are seen by the next call.
// Thread safety: as KeyStore.
#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "server/hsm/attributes.h"
#include "server/hsm/ckr.h"
#include "server/hsm/key_store.h"
#include "server/hsm/key_store_internal.h"
#include "server/hsm/pkcs11.h"
#include "server/hsm/session_pool.h"

namespace hosn::hsm {
namespace {

constexpr std::string_view kApplication = "hosn-keyd";
constexpr size_t kHeaderBytes = 16;
constexpr size_t kMaxLabelBytes = 128;
// The most objects one search returns.
constexpr size_t kMaxObjects = 100'000;

struct Version {
  uint64_t generation = 0;
  uint64_t nonce = 0;
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  std::string value;  // without the header

  bool operator<(const Version& other) const {
    return std::tie(generation, nonce) < std::tie(other.generation, other.nonce);
  }
};

absl::Status CheckLabel(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelBytes) {
    return absl::InvalidArgumentError("data object label must be 1-128 bytes");
  }
  return absl::OkStatus();
}

// The object was destroyed by another replica between our find and use.
bool Gone(const absl::Status& status) {
  const std::optional<CK_RV> rv = CkrOf(status);
  return rv.has_value() && *rv == CKR_OBJECT_HANDLE_INVALID;
}

// Our data objects on the token, all of them or those with `label`.
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindData(Session& session,
                                                       std::optional<std::string_view> label) {
  Template t;
  t.Ulong(CKA_CLASS, CKO_DATA);
  t.Bool(CKA_TOKEN, true);
  t.Bytes(CKA_APPLICATION, kApplication);
  if (label.has_value()) t.Bytes(CKA_LABEL, *label);
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      session.FindObjects(t.data(), t.size(), kMaxObjects);
  if (found.status().code() == absl::StatusCode::kResourceExhausted) {
    return absl::ResourceExhaustedError("too many data objects");
  }
  return found;
}

// Every complete version of `label`, oldest first. Objects without a valid
// header are not ours and are skipped.
absl::StatusOr<std::vector<Version>> ReadVersions(Session& session, std::string_view label) {
  HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles, FindData(session, label));
  std::vector<Version> versions;
  for (CK_OBJECT_HANDLE handle : handles) {
    absl::StatusOr<std::string> value =
        GetBytesAttribute(session, handle, CKA_VALUE, kHeaderBytes + KeyStore::kMaxDataObjectBytes);
    if (Gone(value.status())) continue;
    HOSN_RETURN_IF_ERROR(value.status());
    if (value->size() < kHeaderBytes) continue;
    Version version;
    version.handle = handle;
    for (size_t i = 0; i < 8; ++i) {
      version.generation = (version.generation << 8) | static_cast<unsigned char>((*value)[i]);
      version.nonce = (version.nonce << 8) | static_cast<unsigned char>((*value)[8 + i]);
    }
    version.value = value->substr(kHeaderBytes);
    versions.push_back(std::move(version));
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

// Destroys `versions` in order (oldest first, so that a crash midway never
// brings an older value back). Objects already gone are fine.
absl::Status DestroyVersions(Session& session, const std::vector<Version>& versions) {
  for (const Version& version : versions) {
    absl::Status status = CkrStatus(session.fn()->C_DestroyObject(session.handle(), version.handle),
                                    "C_DestroyObject");
    if (!status.ok() && !Gone(status)) return status;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KeyStore::PutDataObject(std::string_view label, std::string_view value) {
  HOSN_RETURN_IF_ERROR(CheckLabel(label));
  if (value.size() > kMaxDataObjectBytes) {
    return absl::InvalidArgumentError("data object value too long");
  }
  return internals_->pool->Run(OpKind::kOther, [&](Session& session) -> absl::Status {
    HOSN_ASSIGN_OR_RETURN(std::vector<Version> old, ReadVersions(session, label));
    const uint64_t generation = old.empty() ? 1 : old.back().generation + 1;
    unsigned char nonce[8];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1) return absl::InternalError("openssl: rand");
    std::string stored(kHeaderBytes, '\0');
    for (size_t i = 0; i < 8; ++i) {
      stored[i] = static_cast<char>(generation >> (56 - 8 * i));
      stored[8 + i] = static_cast<char>(nonce[i]);
    }
    stored.append(value);
    Template t;
    t.Ulong(CKA_CLASS, CKO_DATA);
    t.Bool(CKA_TOKEN, true);
    t.Bool(CKA_PRIVATE, true);
    t.Bytes(CKA_APPLICATION, kApplication);
    t.Bytes(CKA_LABEL, label);
    t.Bytes(CKA_VALUE, stored);
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    HOSN_RETURN_IF_ERROR(
        CkrStatus(session.fn()->C_CreateObject(session.handle(), t.data(), t.size(), &handle),
                  "C_CreateObject"));
    // The new version is readable from here on; older ones can go.
    return DestroyVersions(session, old);
  });
}

absl::StatusOr<std::optional<std::string>> KeyStore::GetDataObject(std::string_view label) {
  HOSN_RETURN_IF_ERROR(CheckLabel(label));
  return internals_->pool->RunFor<std::optional<std::string>>(
      OpKind::kFind, [&](Session& session) -> absl::StatusOr<std::optional<std::string>> {
        HOSN_ASSIGN_OR_RETURN(std::vector<Version> versions, ReadVersions(session, label));
        if (versions.empty()) return std::optional<std::string>();
        return std::optional<std::string>(std::move(versions.back().value));
      });
}

absl::StatusOr<std::vector<std::string>> KeyStore::ListDataObjects(std::string_view label_prefix) {
  return internals_->pool->RunFor<std::vector<std::string>>(
      OpKind::kFind, [&](Session& session) -> absl::StatusOr<std::vector<std::string>> {
        HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                              FindData(session, std::nullopt));
        std::set<std::string> labels;
        for (CK_OBJECT_HANDLE handle : handles) {
          absl::StatusOr<std::string> label =
              GetBytesAttribute(session, handle, CKA_LABEL, kMaxLabelBytes);
          if (Gone(label.status())) continue;
          HOSN_RETURN_IF_ERROR(label.status());
          if (absl::StartsWith(*label, ToAbsl(label_prefix))) labels.insert(*std::move(label));
        }
        return std::vector<std::string>(labels.begin(), labels.end());
      });
}

absl::Status KeyStore::DeleteDataObject(std::string_view label) {
  HOSN_RETURN_IF_ERROR(CheckLabel(label));
  return internals_->pool->Run(OpKind::kOther, [&](Session& session) -> absl::Status {
    HOSN_ASSIGN_OR_RETURN(std::vector<Version> versions, ReadVersions(session, label));
    return DestroyVersions(session, versions);
  });
}

}  // namespace hosn::hsm
