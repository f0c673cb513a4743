#include "server/api/tls_material.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/file_util.h"
#include "common/base/secret_bytes.h"
#include "common/base/status_macros.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace hosn::api {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;
constexpr char kIdentityFile[] = "/identity.pem";
constexpr char kCaFile[] = "/client_ca.pem";

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

BioPtr MemBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Every CERTIFICATE block of `pem`, in order. Other block types are skipped.
std::vector<X509Ptr> ReadCertificates(std::string_view pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the loop always ends on a "no start line" error
  return certs;
}

absl::Time AsnTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

absl::Status Invalid(std::string_view what) {
  return absl::InvalidArgumentError(std::string(what));
}

std::string Sha256Hex(std::string_view a, std::string_view b, std::string_view c) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return {};
  for (std::string_view part : {a, b, c}) {
    const uint64_t size = part.size();
    EVP_DigestUpdate(ctx.get(), &size, sizeof(size));
    EVP_DigestUpdate(ctx.get(), part.data(), part.size());
  }
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) return {};
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string_view AsView(const SecretBytes& secret) {
  std::span<const uint8_t> bytes = RevealSecret(secret);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

absl::StatusOr<TlsMaterialInfo> ValidateTlsMaterial(std::string_view certificate_chain_pem,
                                                    std::string_view private_key_pem,
                                                    std::string_view ca_bundle_pem) {
  // 1. The chain parses and its leaf is within its validity period.
  std::vector<X509Ptr> chain = ReadCertificates(certificate_chain_pem);
  if (chain.empty()) return Invalid("server certificate: no certificate");
  X509* leaf = chain.front().get();
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
    return Invalid("server certificate: not yet valid");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    return Invalid("server certificate: expired");
  }

  // 2. The key parses and matches the leaf.
  BioPtr key_bio = MemBio(private_key_pem);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (key == nullptr) return Invalid("private key: unparsable");
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return Invalid("private key: does not match server certificate");
  }

  // 3. The CA bundle holds at least one certificate.
  std::vector<X509Ptr> cas = ReadCertificates(ca_bundle_pem);
  if (cas.empty()) return Invalid("client ca bundle: no certificate");

  TlsMaterialInfo info;
  info.server_not_after = AsnTime(X509_get0_notAfter(leaf));
  info.earliest_ca_not_after = absl::InfiniteFuture();
  for (const X509Ptr& ca : cas) {
    info.earliest_ca_not_after =
        std::min(info.earliest_ca_not_after, AsnTime(X509_get0_notAfter(ca.get())));
  }
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof(subject));
  info.server_subject = subject;
  return info;
}

TlsMaterialWatcher::TlsMaterialWatcher(TlsPaths paths, std::string staging_directory,
                                       ReloadCallback callback)
    : paths_(std::move(paths)),
      staging_directory_(std::move(staging_directory)),
      callback_(std::move(callback)) {}

absl::StatusOr<std::unique_ptr<TlsMaterialWatcher>> TlsMaterialWatcher::Create(
    TlsPaths paths, std::string staging_directory, absl::Duration interval,
    ReloadCallback callback) {
  if (mkdir(staging_directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(
        absl::StrCat("tls staging directory ", staging_directory, ": ", std::strerror(errno)));
  }
  std::unique_ptr<TlsMaterialWatcher> watcher(
      new TlsMaterialWatcher(std::move(paths), std::move(staging_directory), std::move(callback)));
  {
    absl::MutexLock lock(&watcher->check_mu_);
    HOSN_RETURN_IF_ERROR(watcher->CheckLocked());
  }
  if (interval > absl::ZeroDuration()) {
    watcher->poller_ = std::thread([w = watcher.get(), interval] { w->PollLoop(interval); });
  }
  return watcher;
}

TlsMaterialWatcher::~TlsMaterialWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (poller_.joinable()) poller_.join();
  // The staging copy of the private key does not outlive the watcher.
  unlink((staging_directory_ + kIdentityFile).c_str());
  unlink((staging_directory_ + kCaFile).c_str());
}

absl::Status TlsMaterialWatcher::CheckNow() {
  absl::MutexLock lock(&check_mu_);
  return CheckLocked();
}

absl::Status TlsMaterialWatcher::CheckLocked() {
  // 1. Read the three files; a missing file is an error like any other.
  HOSN_ASSIGN_OR_RETURN(std::string chain, ReadFile(paths_.server_certificate, kMaxPemBytes));
  HOSN_ASSIGN_OR_RETURN(SecretBytes key, ReadSecretFile(paths_.server_private_key));
  HOSN_ASSIGN_OR_RETURN(std::string cas, ReadFile(paths_.client_ca_bundle, kMaxPemBytes));

  // 2. Nothing to do when the contents are what was last seen (published or
  // refused): a refused set is reported once, not on every poll.
  std::string digest = Sha256Hex(chain, AsView(key), cas);
  if (digest == last_seen_digest_) return absl::OkStatus();
  last_seen_digest_ = digest;

  // 3. Validate as one set; on failure keep the published set.
  absl::StatusOr<TlsMaterialInfo> info = ValidateTlsMaterial(chain, AsView(key), cas);
  if (!info.ok()) {
    if (callback_) callback_(info.status(), current());
    return info.status();
  }

  // 4. Publish: chain and key in one file, so no reader sees a mixed pair.
  SecretBytes identity(chain.size() + 1 + key.size());
  std::span<uint8_t> out = RevealSecret(identity);
  std::memcpy(out.data(), chain.data(), chain.size());
  out[chain.size()] = '\n';
  std::memcpy(out.data() + chain.size() + 1, RevealSecret(key).data(), key.size());
  HOSN_RETURN_IF_ERROR(
      WriteFileAtomically(staging_directory_ + kIdentityFile, AsView(identity), 0600));
  HOSN_RETURN_IF_ERROR(WriteFileAtomically(staging_directory_ + kCaFile, cas, 0600));
  {
    absl::MutexLock lock(&mu_);
    current_ = *info;
  }
  if (callback_) callback_(absl::OkStatus(), *info);
  return absl::OkStatus();
}

void TlsMaterialWatcher::PollLoop(absl::Duration interval) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    // Errors reach the callback; the poller itself has nothing to add.
    (void)CheckNow();
  }
}

TlsMaterialInfo TlsMaterialWatcher::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::shared_ptr<grpc::ServerCredentials> TlsMaterialWatcher::ServerCredentials(
    absl::Duration refresh) const {
  const unsigned int refresh_seconds =
      static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(refresh)));
  const std::string identity = staging_directory_ + kIdentityFile;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      identity, identity, staging_directory_ + kCaFile, refresh_seconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace hosn::api
