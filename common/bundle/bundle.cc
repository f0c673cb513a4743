#include "common/bundle/bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/absl_compat.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "common/bundle/errors.h"
#include "common/bundle/ossl.h"
#include "common/bundle/path_rules.h"
#include "common/bundle/segment.h"

namespace hosn::bundle {
namespace {

constexpr size_t kMaxSignatureBytes = 1u << 20;
constexpr int kMaxDepth = 128;
// Segments per work item when files are split across threads.
constexpr uint64_t kSegmentsPerChunk = 64;

absl::Status IoError(std::string_view op, std::string_view path, int err) {
  return absl::InternalError(absl::StrCat(ToAbsl(op), " ", ToAbsl(path), ": ", std::strerror(err)));
}

std::vector<std::string> SplitPath(std::string_view path) {
  return absl::StrSplit(ToAbsl(path), '/', absl::SkipEmpty());
}

// Opens directory `rel` below `root`, one component at a time, never
// following a symlink. Empty `rel`: a duplicate of `root`.
absl::StatusOr<UniqueFd> OpenDirBeneath(int root, std::string_view rel, bool create,
                                        mode_t mode = 0700) {
  UniqueFd current(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return IoError("dup", rel, errno);
  for (const std::string& part : SplitPath(rel)) {
    if (create && ::mkdirat(current.get(), part.c_str(), mode) != 0 && errno != EEXIST) {
      return IoError("mkdir", rel, errno);
    }
    UniqueFd next(
        ::openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      if (errno == ENOENT) return BundleError(absl::StatusCode::kDataLoss, "file_missing", rel);
      if (errno == ELOOP || errno == ENOTDIR) {
        return BundleError(absl::StatusCode::kDataLoss, "special_file", rel);
      }
      return IoError("open", rel, errno);
    }
    current = std::move(next);
  }
  return current;
}

std::pair<std::string, std::string> SplitParent(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(path)};
  return {std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
}

// Opens regular file `rel` below `root` for reading. O_NONBLOCK keeps a FIFO
// from blocking the open; anything but a regular file is refused.
absl::StatusOr<UniqueFd> OpenFileBeneath(int root, std::string_view rel) {
  auto [dir, leaf] = SplitParent(rel);
  HOSN_ASSIGN_OR_RETURN(UniqueFd parent, OpenDirBeneath(root, dir, false));
  UniqueFd fd(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return BundleError(absl::StatusCode::kDataLoss, "file_missing", rel);
    if (errno == ELOOP) return BundleError(absl::StatusCode::kDataLoss, "special_file", rel);
    return IoError("open", rel, errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("stat", rel, errno);
  if (!S_ISREG(st.st_mode)) return BundleError(absl::StatusCode::kDataLoss, "special_file", rel);
  int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

absl::StatusOr<std::string> ReadAllBeneath(int root, std::string_view rel, size_t max_bytes,
                                           std::string_view too_large_error) {
  HOSN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFileBeneath(root, rel));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("stat", rel, errno);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return BundleError(absl::StatusCode::kInvalidArgument, too_large_error, rel);
  }
  std::string out;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", rel, errno);
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return BundleError(absl::StatusCode::kInvalidArgument, too_large_error, rel);
    }
  }
  return out;
}

// A directory stream over `dir_fd` with its own read position. Never
// fdopendir a dup of `dir_fd`: a duplicate shares the file offset, so a
// second listing of the same directory would silently see no entries.
DIR* OpenDirStream(int dir_fd) {
  const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) ::close(fd);
  return dir;
}

// Every regular file below `dir_fd`, as "/"-joined paths relative to it.
// Symlinks and special files are refused (special_file); so are empty
// directories when `refuse_empty_dirs` (file_unlisted).
absl::Status ListTree(int dir_fd, const std::string& prefix, bool refuse_empty_dirs,
                      std::vector<std::pair<std::string, uint64_t>>* files, int depth) {
  if (depth > kMaxDepth)
    return BundleError(absl::StatusCode::kInvalidArgument, "path_too_long", prefix);
  DIR* dir = OpenDirStream(dir_fd);
  if (dir == nullptr) return IoError("opendir", prefix, errno);
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
  bool empty = true;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    empty = false;
    std::string rel = prefix.empty() ? name : prefix + "/" + name;
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return IoError("stat", rel, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      UniqueFd child(
          ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child.valid()) return IoError("open", rel, errno);
      HOSN_RETURN_IF_ERROR(ListTree(child.get(), rel, refuse_empty_dirs, files, depth + 1));
    } else if (S_ISREG(st.st_mode)) {
      files->emplace_back(rel, static_cast<uint64_t>(st.st_size));
    } else {
      return BundleError(absl::StatusCode::kInvalidArgument, "special_file", rel);
    }
  }
  if (empty && refuse_empty_dirs && !prefix.empty()) {
    return BundleError(absl::StatusCode::kDataLoss, "file_unlisted", prefix + "/");
  }
  return absl::OkStatus();
}

// Removes everything below `dir_fd` (never following symlinks). Best effort:
// used on failure paths, where the first error is what the caller reports.
void RemoveContents(int dir_fd, int depth = 0) {
  if (depth > kMaxDepth) return;
  DIR* dir = OpenDirStream(dir_fd);
  if (dir == nullptr) return;
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    if (::unlinkat(dir_fd, name.c_str(), 0) == 0) continue;
    UniqueFd child(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (child.valid()) RemoveContents(child.get(), depth + 1);
    ::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR);
  }
}

int ThreadCount(int requested) {
  if (requested > 0) return requested;
  unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

// Runs fn(0..count-1) on `threads` threads; stops handing out work after the
// first failure and returns it.
absl::Status RunParallel(size_t count, int threads, const std::function<absl::Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex mu;
  absl::Status first_error;
  auto worker = [&] {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= count || failed.load()) return;
      absl::Status status = fn(i);
      if (!status.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = status;
        failed.store(true);
        return;
      }
    }
  };
  int n = std::min<int>(threads, static_cast<int>(std::max<size_t>(count, 1)));
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  absl::MutexLock lock(&mu);
  return first_error;
}

std::atomic<uint64_t>* ProgressCounter(Progress* progress) {
  return progress == nullptr ? nullptr : &progress->done;
}

bool IsMemoryFs(int fd) {
  struct statfs sfs;
  if (::fstatfs(fd, &sfs) != 0) return false;
  return sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC;
}

absl::Status WriteNewFile(int dir_fd, const std::string& name, std::string_view bytes) {
  UniqueFd fd(
      ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError("create", name, errno);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", name, errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return IoError("fsync", name, errno);
  return absl::OkStatus();
}

std::string FormatTime(int64_t seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(seconds),
                          absl::UTCTimeZone());
}

ExpectedFile Expected(const BundleManifest& manifest, const BundleFile& file, bool plain_digest) {
  ExpectedFile expected;
  expected.path = file.path();
  expected.size = file.size();
  expected.segment_size = manifest.encryption().segment_size();
  if (plain_digest) expected.sha256_hex = file.sha256();
  expected.tags_sha256_hex = file.tags_sha256();
  return expected;
}

}  // namespace

absl::StatusOr<BundleManifest> PackBundle(const std::string& model_dir,
                                          const std::string& bundle_dir, const SecretBytes& dek,
                                          const PackOptions& options, ManifestSigner& signer) {
  // 1. The model's files: regular files only, paths that obey every rule.
  if (dek.size() != kDekSize) return absl::InvalidArgumentError("dek: must be 32 bytes");
  UniqueFd model(::open(model_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!model.valid()) return IoError("open", model_dir, errno);
  std::vector<std::pair<std::string, uint64_t>> listed;
  HOSN_RETURN_IF_ERROR(ListTree(model.get(), "", false, &listed, 0));
  std::sort(listed.begin(), listed.end());
  std::vector<std::string> paths;
  uint64_t total = 0;
  for (const auto& [path, size] : listed) {
    paths.push_back(path);
    total += size;
  }
  HOSN_RETURN_IF_ERROR(ValidateBundlePathSet(paths));
  if (options.progress != nullptr) options.progress->total.store(total);

  // 2. The bundle directory, new; removed again on any failure below.
  if (::mkdir(bundle_dir.c_str(), 0755) != 0) {
    if (errno == EEXIST)
      return BundleError(absl::StatusCode::kAlreadyExists, "target_exists", bundle_dir);
    return IoError("mkdir", bundle_dir, errno);
  }
  UniqueFd out(::open(bundle_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!out.valid()) return IoError("open", bundle_dir, errno);
  auto fail = [&](absl::Status status) {
    RemoveContents(out.get());
    ::rmdir(bundle_dir.c_str());
    return status;
  };

  // 3. Encrypt every file, files in parallel.
  std::vector<SealedFileInfo> sealed(paths.size());
  absl::Status status;
  if (::mkdirat(out.get(), std::string(kDataDirName).c_str(), 0755) != 0) {
    return fail(IoError("mkdir", kDataDirName, errno));
  }
  status = RunParallel(paths.size(), ThreadCount(options.threads), [&](size_t i) -> absl::Status {
    const std::string& path = paths[i];
    HOSN_ASSIGN_OR_RETURN(UniqueFd in, OpenFileBeneath(model.get(), path));
    auto [dir, leaf] = SplitParent(path);
    HOSN_ASSIGN_OR_RETURN(UniqueFd data, OpenDirBeneath(out.get(), kDataDirName, false));
    HOSN_ASSIGN_OR_RETURN(UniqueFd parent, OpenDirBeneath(data.get(), dir, true, 0755));
    UniqueFd target(::openat(parent.get(), leaf.c_str(),
                             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!target.valid()) return IoError("create", path, errno);
    HOSN_ASSIGN_OR_RETURN(sealed[i],
                          SealStream(in.get(), target.get(), dek, path, options.segment_size,
                                     ProgressCounter(options.progress)));
    if (::fsync(target.get()) != 0) return IoError("fsync", path, errno);
    return absl::OkStatus();
  });
  if (!status.ok()) return fail(status);

  // 4. The manifest, its canonical bytes, and the signature over them.
  BundleManifest manifest;
  manifest.set_format_version(kManifestFormatVersion);
  manifest.mutable_model()->set_name(options.model_name);
  manifest.mutable_model()->set_version(options.model_version);
  manifest.set_created_at(
      FormatTime(options.created_at.value_or(absl::ToUnixSeconds(absl::Now()))));
  auto* enc = manifest.mutable_encryption();
  enc->set_aead(std::string(kAeadName));
  enc->set_kdf(std::string(kKdfName));
  enc->set_segment_size(options.segment_size);
  enc->set_key_wrap(std::string(kKeyWrapName));
  enc->set_wrapped_dek(options.wrapped_dek);
  enc->set_kek_label(options.kek_label);
  enc->set_kek_id(options.kek_id);
  for (size_t i = 0; i < paths.size(); ++i) {
    BundleFile* file = manifest.add_files();
    file->set_path(paths[i]);
    file->set_size(sealed[i].size);
    file->set_sha256(sealed[i].sha256_hex);
    file->set_tags_sha256(sealed[i].tags_sha256_hex);
  }
  absl::StatusOr<std::string> bytes = SerializeManifest(manifest);
  if (!bytes.ok()) return fail(bytes.status());
  absl::StatusOr<std::string> signature = SignManifest(*bytes, signer);
  if (!signature.ok()) return fail(signature.status());
  status = WriteNewFile(out.get(), std::string(kManifestFileName), *bytes);
  if (status.ok()) status = WriteNewFile(out.get(), std::string(kSignatureFileName), *signature);
  if (!status.ok()) return fail(status);
  return manifest;
}

absl::StatusOr<BundleManifest> ReadUnverifiedManifest(const std::string& bundle_dir) {
  UniqueFd root(::open(bundle_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return IoError("open", bundle_dir, errno);
  HOSN_ASSIGN_OR_RETURN(std::string bytes, ReadAllBeneath(root.get(), kManifestFileName,
                                                          kMaxManifestBytes, "manifest_too_large"));
  return ParseManifest(bytes);
}

absl::StatusOr<VerifiedBundle> VerifyBundle(const std::string& bundle_dir,
                                            const TrustOptions& trust, Progress* progress) {
  UniqueFd root(::open(bundle_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("bundle ", bundle_dir));
    return IoError("open", bundle_dir, errno);
  }

  // 1. Signature over the exact manifest bytes, then parse those bytes (the
  //    path rules run here, before any model file is opened).
  HOSN_ASSIGN_OR_RETURN(
      std::string manifest_bytes,
      ReadAllBeneath(root.get(), kManifestFileName, kMaxManifestBytes, "manifest_too_large"));
  HOSN_ASSIGN_OR_RETURN(
      std::string signature,
      ReadAllBeneath(root.get(), kSignatureFileName, kMaxSignatureBytes, "signature_malformed"));
  VerifiedBundle bundle;
  bundle.dir = bundle_dir;
  HOSN_ASSIGN_OR_RETURN(bundle.verified,
                        VerifyAndParseManifest(std::move(manifest_bytes), signature, trust));
  const BundleManifest& manifest = bundle.verified.manifest;

  // 2. The top level holds exactly the manifest, its signature and data/.
  std::vector<std::pair<std::string, uint64_t>> top;
  {
    DIR* dir = OpenDirStream(root.get());
    if (dir == nullptr) return IoError("opendir", bundle_dir, errno);
    while (struct dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == ".." || name == kManifestFileName || name == kSignatureFileName ||
          name == kDataDirName) {
        continue;
      }
      ::closedir(dir);
      return BundleError(absl::StatusCode::kDataLoss, "file_unlisted", name);
    }
    ::closedir(dir);
  }

  // 3. Completeness both ways over the data tree.
  std::vector<std::pair<std::string, uint64_t>> present;
  UniqueFd data(::openat(root.get(), std::string(kDataDirName).c_str(),
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (data.valid()) {
    absl::Status listed = ListTree(data.get(), "", true, &present, 0);
    if (!listed.ok()) {
      if (BundleErrorName(listed) == "special_file") {
        return BundleError(absl::StatusCode::kDataLoss, "special_file",
                           FromAbsl(listed.message()).substr(14));
      }
      return listed;
    }
  } else if (errno != ENOENT || manifest.files_size() > 0) {
    return BundleError(absl::StatusCode::kDataLoss,
                       errno == ENOENT ? "file_missing" : "special_file", kDataDirName);
  }
  std::set<std::string> on_disk;
  for (const auto& entry : present) on_disk.insert(entry.first);
  std::set<std::string> listed_paths;
  for (const BundleFile& file : manifest.files()) {
    listed_paths.insert(file.path());
    if (!on_disk.count(file.path())) {
      return BundleError(absl::StatusCode::kDataLoss, "file_missing", file.path());
    }
  }
  for (const std::string& path : on_disk) {
    if (!listed_paths.count(path))
      return BundleError(absl::StatusCode::kDataLoss, "file_unlisted", path);
  }

  // 4. Each file: exact size, header, and the signed digest of its tags.
  uint64_t total = 0;
  for (const BundleFile& file : manifest.files()) total += file.size();
  if (progress != nullptr) progress->total.store(total);
  for (const BundleFile& file : manifest.files()) {
    HOSN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFileBeneath(data.get(), file.path()));
    HOSN_RETURN_IF_ERROR(CheckSealedFile(fd.get(), Expected(manifest, file, false)));
    if (progress != nullptr) progress->done.fetch_add(file.size());
  }
  return bundle;
}

absl::Status DecryptBundle(const VerifiedBundle& bundle, const SecretBytes& dek,
                           const std::string& target_dir, const DecryptOptions& options) {
  const BundleManifest& manifest = bundle.verified.manifest;
  if (dek.size() != kDekSize) return absl::InvalidArgumentError("dek: must be 32 bytes");

  // 1. The target: on tmpfs or ramfs, mode 0700, new or an empty prepared mount.
  // Named copies, not structured bindings: the cleanup lambda captures them.
  std::pair<std::string, std::string> split = SplitParent(target_dir);
  std::string parent_path = split.first;
  const std::string leaf = split.second;
  if (target_dir.empty() || leaf.empty()) {
    return absl::InvalidArgumentError("target: needs a directory name");
  }
  if (parent_path.empty()) parent_path.assign(target_dir[0] == '/' ? 1 : 0, '/');
  if (parent_path.empty()) parent_path.push_back('.');
  UniqueFd parent(::open(parent_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent.valid()) return IoError("open", parent_path, errno);
  bool created = false;
  if (::mkdirat(parent.get(), leaf.c_str(), 0700) == 0) {
    created = true;
  } else if (errno != EEXIST) {
    return IoError("mkdir", target_dir, errno);
  }
  UniqueFd root(
      ::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    return BundleError(absl::StatusCode::kFailedPrecondition, "target_exists", target_dir);
  }
  // What cleanup may remove: a directory we created, or a prepared one only
  // once it has been checked to be empty and ours. Never anything else.
  bool owned = created;
  auto cleanup = [&](absl::Status status) {
    if (owned) RemoveContents(root.get());
    if (created) ::unlinkat(parent.get(), leaf.c_str(), AT_REMOVEDIR);
    return status;
  };
  if (!IsMemoryFs(root.get())) {
    return cleanup(
        BundleError(absl::StatusCode::kFailedPrecondition, "target_not_tmpfs", target_dir));
  }
  if (!created) {
    // A prepared mount: must be ours, private and empty. Never clean it up
    // before these hold: its contents are not ours.
    struct stat st;
    if (::fstat(root.get(), &st) != 0) return IoError("stat", target_dir, errno);
    DIR* dir = OpenDirStream(root.get());
    if (dir == nullptr) return IoError("opendir", target_dir, errno);
    bool empty = true;
    while (struct dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") empty = false;
    }
    ::closedir(dir);
    if (!empty || (st.st_mode & 07777) != 0700 || st.st_uid != ::geteuid()) {
      return BundleError(absl::StatusCode::kAlreadyExists, "target_exists", target_dir);
    }
    owned = true;
  }
  if (::fchmod(root.get(), 0700) != 0) return cleanup(IoError("chmod", target_dir, errno));

  // 2. Staging: one file per manifest entry, named by its index.
  if (::mkdirat(root.get(), std::string(kStagingDirName).c_str(), 0700) != 0) {
    return cleanup(IoError("mkdir", kStagingDirName, errno));
  }
  UniqueFd staging(::openat(root.get(), std::string(kStagingDirName).c_str(),
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd source(::open(bundle.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!staging.valid() || !source.valid()) return cleanup(IoError("open", "staging", errno));
  absl::StatusOr<UniqueFd> data = OpenDirBeneath(source.get(), kDataDirName, false);
  if (!data.ok()) return cleanup(data.status());

  const int files = manifest.files_size();
  std::vector<UniqueFd> inputs(files), outputs(files);
  uint64_t total = 0;
  for (int i = 0; i < files; ++i) {
    const BundleFile& file = manifest.files(i);
    absl::StatusOr<UniqueFd> in = OpenFileBeneath(data->get(), file.path());
    if (!in.ok()) return cleanup(in.status());
    inputs[i] = std::move(*in);
    std::string name = absl::StrCat(i);
    outputs[i] = UniqueFd(::openat(staging.get(), name.c_str(),
                                   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400));
    if (!outputs[i].valid()) return cleanup(IoError("create", file.path(), errno));
    // Reserve the pages now: a target too small for the model fails here,
    // before any decryption work (ramfs cannot reserve; it has no limit).
    if (file.size() > 0 &&
        ::fallocate(outputs[i].get(), 0, 0, static_cast<off_t>(file.size())) != 0 &&
        errno != EOPNOTSUPP) {
      return cleanup(IoError("allocate", file.path(), errno));
    }
    if (::ftruncate(outputs[i].get(), static_cast<off_t>(file.size())) != 0) {
      return cleanup(IoError("truncate", file.path(), errno));
    }
    total += file.size();
  }
  if (options.progress != nullptr) options.progress->total.store(total);

  // 3. Work items: whole files when their plaintext is hashed (a hash is
  //    sequential), otherwise runs of segments so one big file still uses
  //    every core. Largest first.
  struct Item {
    int file;
    uint64_t first;
    uint64_t count;
  };
  const uint32_t segment_size = manifest.encryption().segment_size();
  std::vector<Item> items;
  std::vector<std::vector<std::array<uint8_t, kTagSize>>> tags(files);
  for (int i = 0; i < files; ++i) {
    uint64_t segments = SegmentCount(manifest.files(i).size(), segment_size);
    if (options.check_plaintext_digests || segments <= kSegmentsPerChunk) {
      items.push_back({i, 0, segments});
      continue;
    }
    tags[i].resize(segments);
    for (uint64_t first = 0; first < segments; first += kSegmentsPerChunk) {
      items.push_back({i, first, std::min(kSegmentsPerChunk, segments - first)});
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [&](const Item& a, const Item& b) { return a.count > b.count; });
  absl::Status status =
      RunParallel(items.size(), ThreadCount(options.threads), [&](size_t k) -> absl::Status {
        const Item& item = items[k];
        const BundleFile& file = manifest.files(item.file);
        ExpectedFile expected = Expected(manifest, file, options.check_plaintext_digests);
        auto* tag_out = tags[item.file].empty() ? nullptr : &tags[item.file];
        std::vector<std::array<uint8_t, kTagSize>> local;
        if (tag_out != nullptr) local.resize(item.count);
        HOSN_RETURN_IF_ERROR(OpenSegments(inputs[item.file].get(), dek, expected, item.first,
                                          item.count, outputs[item.file].get(),
                                          tag_out != nullptr ? &local : nullptr,
                                          ProgressCounter(options.progress)));
        if (tag_out != nullptr)
          std::copy(local.begin(), local.end(), tag_out->begin() + item.first);
        return absl::OkStatus();
      });
  if (!status.ok()) return cleanup(status);

  // 4. Split files: the signed digest over header and tags, now complete.
  for (int i = 0; i < files; ++i) {
    if (tags[i].empty()) continue;
    uint8_t header[kFileHeaderSize];
    if (::pread(inputs[i].get(), header, sizeof(header), 0) !=
        static_cast<ssize_t>(sizeof(header))) {
      return cleanup(IoError("read", manifest.files(i).path(), errno));
    }
    internal::MdCtxPtr md(EVP_MD_CTX_new());
    EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
    EVP_DigestUpdate(md.get(), header, sizeof(header));
    for (const auto& tag : tags[i]) EVP_DigestUpdate(md.get(), tag.data(), tag.size());
    uint8_t digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md.get(), digest, &len);
    if (HexEncode(std::span<const uint8_t>(digest, len)) != manifest.files(i).tags_sha256()) {
      return cleanup(BundleError(absl::StatusCode::kDataLoss, "tags_digest_mismatch",
                                 manifest.files(i).path()));
    }
  }

  // 5. Everything checked: move each file to its final name, drop staging.
  for (int i = 0; i < files; ++i) {
    const std::string& path = manifest.files(i).path();
    auto [dir, name] = SplitParent(path);
    absl::StatusOr<UniqueFd> dir_fd = OpenDirBeneath(root.get(), dir, true);
    if (!dir_fd.ok()) return cleanup(dir_fd.status());
    if (::renameat(staging.get(), absl::StrCat(i).c_str(), dir_fd->get(), name.c_str()) != 0) {
      return cleanup(IoError("rename", path, errno));
    }
  }
  if (::unlinkat(root.get(), std::string(kStagingDirName).c_str(), AT_REMOVEDIR) != 0) {
    return cleanup(IoError("rmdir", kStagingDirName, errno));
  }
  return absl::OkStatus();
}

}  // namespace hosn::bundle
