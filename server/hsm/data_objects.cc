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
// Reads avoid the search where they can: KeyStore keeps a DataObjectIndex
// (label -> handle of its only version; data_object_index.h says why and
// when it is rebuilt), and a read fetches that object directly, checking
// that it is still a data object of ours with this label. When a put on any
// replica replaces the value, the put destroys the old version before it
// returns, the remembered handle stops working (CKR_OBJECT_HANDLE_INVALID),
// and the reader searches again: a completed write is seen by every later
// read. Two versions can live side by side when a put failed between its
// create and its destroys (its writer was told so) or when two replicas put
// one label at the same moment: searching readers take the newest, while a
// reader that remembered the other one keeps it until the next put of the
// label or the next index rebuild, which leaves out labels with several
// versions.
// Thread safety: as KeyStore.
#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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

// A stored value: the 16-byte version header, then the value. nullopt if
// it is too short to be ours.
std::optional<Version> ParseVersion(CK_OBJECT_HANDLE handle, std::string_view stored) {
  if (stored.size() < kHeaderBytes) return std::nullopt;
  Version version;
  version.handle = handle;
  for (size_t i = 0; i < 8; ++i) {
    version.generation = (version.generation << 8) | static_cast<unsigned char>(stored[i]);
    version.nonce = (version.nonce << 8) | static_cast<unsigned char>(stored[8 + i]);
  }
  version.value = std::string(stored.substr(kHeaderBytes));
  return version;
}

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

// What SoftHSM answers for an object that another session of this process
// is destroying at that moment (seen under concurrent puts and reads): the
// object may be gone a moment later, so the caller searches again rather
// than fail.
bool Vanishing(CK_RV rv) {
  return rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_GENERAL_ERROR ||
         rv == CKR_ATTRIBUTE_VALUE_INVALID;
}
bool Vanishing(const absl::Status& status) {
  const std::optional<CK_RV> rv = CkrOf(status);
  return rv.has_value() && Vanishing(*rv);
}

// How often a read searches again when an object it found vanished before
// it could read it; after that, Unavailable.
constexpr int kReadAttempts = 4;

// Our data objects on the token, all of them or those with `label`.
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindData(Session& session,
                                                       std::optional<std::string_view> label) {
  Template t;
  t.Ulong(CKA_CLASS, CKO_DATA);
  t.Bool(CKA_TOKEN, true);
  // Only private objects: a public one can be created without the PIN by
  // any process that reaches the module, and is never fleet state.
  t.Bool(CKA_PRIVATE, true);
  t.Bytes(CKA_APPLICATION, kApplication);
  if (label.has_value()) t.Bytes(CKA_LABEL, *label);
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found =
      session.FindObjects(t.data(), t.size(), kMaxObjects);
  if (found.status().code() == absl::StatusCode::kResourceExhausted) {
    return absl::ResourceExhaustedError("too many data objects");
  }
  return found;
}

// Reads the object at `handle` as a version of `label`. nullopt if the
// object is gone or is no longer a complete data object of ours with that
// label (a module may give a destroyed object's handle to a new object).
absl::StatusOr<std::optional<Version>> ReadKnownVersion(Session& session, CK_OBJECT_HANDLE handle,
                                                        std::string_view label) {
  // One C_GetAttributeValue for all three: this is the hot path of every
  // release, and a module does its per-object checks once per call.
  char stored_label[kMaxLabelBytes];
  char application[kApplication.size()];
  // One buffer per thread, sized once: filling 64 KiB with zeros on every
  // read of a few hundred bytes would be the read's largest host cost.
  thread_local std::string buffer(kHeaderBytes + KeyStore::kMaxDataObjectBytes, '\0');
  CK_ATTRIBUTE attributes[] = {{CKA_LABEL, stored_label, sizeof(stored_label)},
                               {CKA_APPLICATION, application, sizeof(application)},
                               {CKA_VALUE, buffer.data(), buffer.size()}};
  const CK_RV rv = session.fn()->C_GetAttributeValue(session.handle(), handle, attributes,
                                                     std::size(attributes));
  // Gone or going: the caller searches.
  if (Vanishing(rv)) return std::nullopt;
  // An attribute too long or absent: not a data object of ours any more.
  if (rv == CKR_BUFFER_TOO_SMALL || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
  // Any other failure goes to the pool (it may recover the session).
  HOSN_RETURN_IF_ERROR(CkrStatus(rv, "C_GetAttributeValue"));
  // Never trust a returned length beyond its buffer (case P6; this also
  // covers CK_UNAVAILABLE_INFORMATION).
  const CK_ULONG capacity[] = {sizeof(stored_label), sizeof(application), buffer.size()};
  for (size_t i = 0; i < std::size(attributes); ++i) {
    if (attributes[i].ulValueLen > capacity[i]) return std::nullopt;
  }
  if (std::string_view(stored_label, attributes[0].ulValueLen) != label ||
      std::string_view(application, attributes[1].ulValueLen) != kApplication) {
    return std::nullopt;
  }
  return ParseVersion(handle, std::string_view(buffer.data(), attributes[2].ulValueLen));
}

// Every complete version of `label`, oldest first. Objects without a valid
// header are not ours and are skipped.
absl::StatusOr<std::vector<Version>> ReadVersions(Session& session, std::string_view label) {
  // A put creates the new version before it destroys the old one, but the
  // new one may have been created after this search began: when a found
  // object vanishes, the newest version may be missing from what was found,
  // so search again.
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles, FindData(session, label));
    std::vector<Version> versions;
    bool vanished = false;
    for (CK_OBJECT_HANDLE handle : handles) {
      absl::StatusOr<std::string> value = GetBytesAttribute(
          session, handle, CKA_VALUE, kHeaderBytes + KeyStore::kMaxDataObjectBytes);
      if (Vanishing(value.status())) {
        vanished = true;
        continue;
      }
      HOSN_RETURN_IF_ERROR(value.status());
      if (std::optional<Version> version = ParseVersion(handle, *value)) {
        versions.push_back(*std::move(version));
      }
    }
    if (vanished) continue;
    std::sort(versions.begin(), versions.end());
    return versions;
  }
  return absl::UnavailableError(
      absl::StrCat("data object ", ToAbsl(label), ": changing under every read; try again"));
}

// One scan of every data object of ours: label -> handle for each label that
// has exactly one object. Labels with several (a put under way or failed
// midway, or a stray object) are left out, so their readers search.
absl::StatusOr<DataObjectIndex::Handles> ScanSingleVersions(Session& session) {
  HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles, FindData(session, std::nullopt));
  DataObjectIndex::Handles single;
  absl::flat_hash_map<std::string, int> count;
  for (CK_OBJECT_HANDLE handle : handles) {
    absl::StatusOr<std::string> label =
        GetBytesAttribute(session, handle, CKA_LABEL, kMaxLabelBytes);
    if (Vanishing(label.status())) continue;
    HOSN_RETURN_IF_ERROR(label.status());
    if (++count[*label] == 1) {
      single.emplace(*label, handle);
    } else {
      single.erase(*label);
    }
  }
  return single;
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
  WriterLock lock(&internals_->data_mu);
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
    // The next read searches and remembers the new version only if it is
    // the only one (another replica may be putting the same label now).
    internals_->data_index->Forget(label);
    return DestroyVersions(session, old);
  });
}

absl::StatusOr<std::optional<std::string>> KeyStore::GetDataObject(std::string_view label) {
  HOSN_RETURN_IF_ERROR(CheckLabel(label));
  DataObjectIndex& index = *internals_->data_index;
  ReaderLock lock(&internals_->data_mu);
  return internals_->pool->RunFor<std::optional<std::string>>(
      OpKind::kFind, [&](Session& session) -> absl::StatusOr<std::optional<std::string>> {
        if (index.ClaimRebuild(session.generation(), absl::Now())) {
          // The index only saves searches: a failed scan is left for the
          // next reader, and this read goes on without it.
          absl::StatusOr<DataObjectIndex::Handles> scanned = ScanSingleVersions(session);
          if (scanned.ok()) {
            index.FinishRebuild(*std::move(scanned), session.generation(), absl::Now());
          } else {
            index.AbandonRebuild(absl::Now());
          }
        }
        if (std::optional<CK_OBJECT_HANDLE> hint = index.Find(label, session.generation())) {
          HOSN_ASSIGN_OR_RETURN(std::optional<Version> version,
                                ReadKnownVersion(session, *hint, label));
          if (version.has_value()) return std::optional<std::string>(std::move(version->value));
          index.Forget(label);
        }
        HOSN_ASSIGN_OR_RETURN(std::vector<Version> versions, ReadVersions(session, label));
        if (versions.empty()) return std::optional<std::string>();
        // Several versions mean a put is under way or failed midway: search
        // again next time rather than pin one.
        if (versions.size() == 1) {
          index.Remember(label, versions.back().handle, session.generation());
        }
        return std::optional<std::string>(std::move(versions.back().value));
      });
}

absl::StatusOr<std::vector<std::string>> KeyStore::ListDataObjects(std::string_view label_prefix) {
  ReaderLock lock(&internals_->data_mu);
  return internals_->pool->RunFor<std::vector<std::string>>(
      OpKind::kFind, [&](Session& session) -> absl::StatusOr<std::vector<std::string>> {
        HOSN_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                              FindData(session, std::nullopt));
        std::set<std::string> labels;
        for (CK_OBJECT_HANDLE handle : handles) {
          absl::StatusOr<std::string> label =
              GetBytesAttribute(session, handle, CKA_LABEL, kMaxLabelBytes);
          if (Vanishing(label.status())) continue;
          HOSN_RETURN_IF_ERROR(label.status());
          if (absl::StartsWith(*label, ToAbsl(label_prefix))) labels.insert(*std::move(label));
        }
        return std::vector<std::string>(labels.begin(), labels.end());
      });
}

absl::Status KeyStore::DeleteDataObject(std::string_view label) {
  HOSN_RETURN_IF_ERROR(CheckLabel(label));
  WriterLock lock(&internals_->data_mu);
  return internals_->pool->Run(OpKind::kOther, [&](Session& session) -> absl::Status {
    internals_->data_index->Forget(label);
    HOSN_ASSIGN_OR_RETURN(std::vector<Version> versions, ReadVersions(session, label));
    return DestroyVersions(session, versions);
  });
}

}  // namespace hosn::hsm
