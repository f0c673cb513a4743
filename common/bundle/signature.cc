#include "common/bundle/signature.h"

#include <openssl/bn.h>
#include <openssl/cmserr.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "common/base/absl_compat.h"
#include "common/base/status_macros.h"
#include "common/bundle/errors.h"
#include "common/bundle/ossl.h"

namespace hosn::bundle {
namespace {

using internal::BioPtr;
using internal::CmsPtr;
using internal::MdCtxPtr;
using internal::OsslErrorText;
using internal::OsslPtr;
using internal::PkeyPtr;
using internal::X509Ptr;
using internal::X509StackPtr;
using internal::X509StorePtr;

using EcdsaSigPtr = OsslPtr<ECDSA_SIG, ECDSA_SIG_free>;
using BnPtr = OsslPtr<BIGNUM, BN_free>;
using AsnTimePtr = OsslPtr<ASN1_TIME, ASN1_TIME_free>;

// Stacks whose elements are borrowed: only the stack itself is freed.
void FreeBorrowedX509Stack(STACK_OF(X509) * s) { sk_X509_free(s); }
void FreeBorrowedAttrStack(STACK_OF(X509_ATTRIBUTE) * s) { sk_X509_ATTRIBUTE_free(s); }
using BorrowedX509StackPtr = OsslPtr<STACK_OF(X509), FreeBorrowedX509Stack>;
using BorrowedAttrStackPtr = OsslPtr<STACK_OF(X509_ATTRIBUTE), FreeBorrowedAttrStack>;

BioPtr MemBio(std::string_view bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// Every certificate of a PEM bundle, in order. Empty if none parsed.
X509StackPtr ReadCertificates(std::string_view pem) {
  X509StackPtr certs(sk_X509_new_null());
  BioPtr bio = MemBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(certs.get(), cert);
  }
  ERR_clear_error();
  return certs;
}

std::string SubjectLine(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_ONELINE);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::Status SignatureError(absl::StatusCode code, std::string_view name, std::string detail) {
  return BundleError(code, name, detail);
}

}  // namespace

struct OpenSslKeySigner::Key {
  PkeyPtr pkey;
};

OpenSslKeySigner::~OpenSslKeySigner() = default;

absl::StatusOr<std::unique_ptr<OpenSslKeySigner>> OpenSslKeySigner::Create(
    const SecretBytes& key_pem, std::string chain_pem) {
  auto key_bytes = RevealSecret(key_pem);
  BioPtr bio(BIO_new_mem_buf(key_bytes.data(), static_cast<int>(key_bytes.size())));
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return absl::InvalidArgumentError("signer key: not a PEM private key");
  }
  X509StackPtr certs = ReadCertificates(chain_pem);
  if (sk_X509_num(certs.get()) < 1) {
    return absl::InvalidArgumentError("signer certificate: no PEM certificate");
  }
  if (X509_check_private_key(sk_X509_value(certs.get(), 0), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("signer key: does not match the certificate");
  }
  auto signer = std::unique_ptr<OpenSslKeySigner>(new OpenSslKeySigner());
  if (EVP_PKEY_is_a(pkey.get(), "EC")) {
    signer->algorithm_ = SignatureAlgorithm::kEcdsaSha256;
  } else if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
    signer->algorithm_ = SignatureAlgorithm::kRsaPkcs1Sha256;
  } else {
    return absl::InvalidArgumentError("signer key: only EC and RSA keys are supported");
  }
  signer->key_ = std::make_unique<Key>(Key{std::move(pkey)});
  signer->chain_pem_ = std::move(chain_pem);
  return signer;
}

absl::StatusOr<std::string> OpenSslKeySigner::SignRaw(std::string_view /*manifest_bytes*/,
                                                      std::string_view message) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx ||
      EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key_->pkey.get(),
                            nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(message.data()),
                     message.size()) != 1) {
    return absl::InternalError("signer: " + OsslErrorText());
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(signature.data()), &len,
                     reinterpret_cast<const uint8_t*>(message.data()), message.size()) != 1) {
    return absl::InternalError("signer: " + OsslErrorText());
  }
  signature.resize(len);
  if (algorithm_ != SignatureAlgorithm::kEcdsaSha256) return signature;
  // Return what a PKCS#11 token returns: r||s.
  size_t half = static_cast<size_t>((EVP_PKEY_get_bits(key_->pkey.get()) + 7) / 8);
  return EcdsaDerToRaw(signature, half);
}

absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw) {
  if (raw.empty() || raw.size() % 2 != 0 || raw.size() > 264) {
    return absl::InvalidArgumentError("ecdsa signature: raw length must be even");
  }
  size_t half = raw.size() / 2;
  const auto* p = reinterpret_cast<const uint8_t*>(raw.data());
  BnPtr r(BN_bin2bn(p, static_cast<int>(half), nullptr));
  BnPtr s(BN_bin2bn(p + half, static_cast<int>(half), nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return absl::InternalError("ecdsa signature: " + OsslErrorText());
  }
  r.release();  // now owned by sig
  s.release();
  uint8_t* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return absl::InternalError("ecdsa signature: " + OsslErrorText());
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> EcdsaDerToRaw(std::string_view der, size_t half_size) {
  const auto* p = reinterpret_cast<const uint8_t*>(der.data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != reinterpret_cast<const uint8_t*>(der.data()) + der.size()) {
    ERR_clear_error();
    return absl::InvalidArgumentError("ecdsa signature: not DER");
  }
  std::string raw(2 * half_size, '\0');
  auto* out = reinterpret_cast<uint8_t*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, static_cast<int>(half_size)) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + half_size, static_cast<int>(half_size)) < 0) {
    return absl::InvalidArgumentError("ecdsa signature: value too large");
  }
  return raw;
}

absl::StatusOr<std::string> SignManifest(std::string_view manifest_bytes, ManifestSigner& signer,
                                         std::optional<int64_t> signing_time) {
  // 1. The signer certificate and its public key stand in for the private key.
  X509StackPtr chain = ReadCertificates(signer.CertificateChainPem());
  if (sk_X509_num(chain.get()) < 1) {
    return absl::InvalidArgumentError("signer certificate: no PEM certificate");
  }
  X509* cert = sk_X509_value(chain.get(), 0);
  EVP_PKEY* public_key = X509_get0_pubkey(cert);
  if (public_key == nullptr) return absl::InvalidArgumentError("signer certificate: no key");

  // 2. An empty detached SignedData with one SignerInfo; CMS_PARTIAL stops
  //    OpenSSL from signing with the (public) key itself.
  const unsigned int flags = CMS_PARTIAL | CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP;
  CmsPtr cms(CMS_sign(nullptr, nullptr, nullptr, nullptr, flags));
  if (!cms) return absl::InternalError("cms: " + OsslErrorText());
  CMS_SignerInfo* si = CMS_add1_signer(cms.get(), cert, public_key, EVP_sha256(), flags);
  if (si == nullptr) return absl::InternalError("cms signer: " + OsslErrorText());
  for (int i = 1; i < sk_X509_num(chain.get()); ++i) {
    if (CMS_add1_cert(cms.get(), sk_X509_value(chain.get(), i)) != 1) {
      return absl::InternalError("cms chain: " + OsslErrorText());
    }
  }

  // 3. Signed attributes: content type, signing time, message digest.
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  AsnTimePtr when(X509_time_adj_ex(nullptr, 0, 0, signing_time ? &*signing_time : nullptr));
  if (EVP_Digest(manifest_bytes.data(), manifest_bytes.size(), digest, &digest_len, EVP_sha256(),
                 nullptr) != 1 ||
      !when ||
      CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
                                  OBJ_nid2obj(NID_pkcs7_data), -1) != 1 ||
      CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, when->type, when.get(), -1) != 1 ||
      CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, digest,
                                  static_cast<int>(digest_len)) != 1) {
    return absl::InternalError("cms attributes: " + OsslErrorText());
  }

  // 4. The bytes to sign: the DER SET OF the signed attributes, encoded by
  //    OpenSSL (PKCS7_ATTR_SIGN has the same DER as CMS's signing form).
  BorrowedAttrStackPtr attrs(sk_X509_ATTRIBUTE_new_null());
  for (int i = 0; i < CMS_signed_get_attr_count(si); ++i) {
    sk_X509_ATTRIBUTE_push(attrs.get(), CMS_signed_get_attr(si, i));
  }
  uint8_t* to_sign = nullptr;
  int to_sign_len = ASN1_item_i2d(reinterpret_cast<ASN1_VALUE*>(attrs.get()), &to_sign,
                                  ASN1_ITEM_rptr(PKCS7_ATTR_SIGN));
  if (to_sign_len <= 0) return absl::InternalError("cms attributes: " + OsslErrorText());
  std::string message(reinterpret_cast<char*>(to_sign), static_cast<size_t>(to_sign_len));
  OPENSSL_free(to_sign);

  // 5. The raw signature from the signer, in the encoding CMS expects.
  HOSN_ASSIGN_OR_RETURN(std::string raw, signer.SignRaw(manifest_bytes, message));
  std::string encoded = raw;
  if (signer.algorithm() == SignatureAlgorithm::kEcdsaSha256) {
    HOSN_ASSIGN_OR_RETURN(encoded, EcdsaRawToDer(raw));
  }
  ASN1_OCTET_STRING* slot = CMS_SignerInfo_get0_signature(si);
  if (slot == nullptr ||
      ASN1_STRING_set(slot, encoded.data(), static_cast<int>(encoded.size())) != 1) {
    return absl::InternalError("cms signature: " + OsslErrorText());
  }

  // 6. Check our own work before handing it out: a signer that returned the
  //    wrong bytes must not produce a bundle.
  if (CMS_SignerInfo_verify(si) != 1) {
    return SignatureError(absl::StatusCode::kInternal, "signature_invalid",
                          "signer returned a signature that does not verify");
  }

  BioPtr out(BIO_new(BIO_s_mem()));
  if (i2d_CMS_bio(out.get(), cms.get()) != 1) {
    return absl::InternalError("cms encode: " + OsslErrorText());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::string> VerifyManifestSignature(std::string_view manifest_bytes,
                                                    std::string_view signature_der,
                                                    const TrustOptions& trust) {
  ERR_clear_error();
  // 1. Shape: DER CMS SignedData, detached, one signer.
  const auto* p = reinterpret_cast<const uint8_t*>(signature_der.data());
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(signature_der.size())));
  if (!cms || p != reinterpret_cast<const uint8_t*>(signature_der.data()) + signature_der.size() ||
      OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
    ERR_clear_error();
    return SignatureError(absl::StatusCode::kInvalidArgument, "signature_malformed",
                          "manifest signature");
  }
  if (CMS_is_detached(cms.get()) != 1 ||
      sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms.get())) != 1) {
    return SignatureError(absl::StatusCode::kInvalidArgument, "signature_malformed",
                          "not detached or not exactly one signer");
  }

  // 2. The pinned roots; nothing else is trusted.
  X509StorePtr store(X509_STORE_new());
  X509StackPtr roots = ReadCertificates(trust.ca_bundle_pem);
  if (!store || sk_X509_num(roots.get()) < 1) {
    return SignatureError(absl::StatusCode::kInvalidArgument, "trust_bundle_invalid",
                          "no CA certificate");
  }
  for (int i = 0; i < sk_X509_num(roots.get()); ++i) {
    X509_STORE_add_cert(store.get(), sk_X509_value(roots.get(), i));
  }
  X509_VERIFY_PARAM* param = X509_STORE_get0_param(store.get());
  // Purpose "any" here; our own key-usage policy is checked below.
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_ANY);
  if (trust.at_time) X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(*trust.at_time));

  // 3. Chain, validity, content digest and signature.
  BioPtr content = MemBio(manifest_bytes);
  if (CMS_verify(cms.get(), nullptr, store.get(), content.get(), nullptr, CMS_BINARY) != 1) {
    unsigned long err = ERR_peek_error();
    std::string text = OsslErrorText();
    if (ERR_GET_LIB(err) == ERR_LIB_CMS && ERR_GET_REASON(err) == CMS_R_CERTIFICATE_VERIFY_ERROR) {
      return SignatureError(absl::StatusCode::kPermissionDenied, "signer_untrusted", text);
    }
    return SignatureError(absl::StatusCode::kDataLoss, "signature_invalid", text);
  }

  // 4. Key usage policy: digitalSignature and codeSigning, both present.
  // CMS_get0_signers does not take references: free only the stack.
  BorrowedX509StackPtr signers(CMS_get0_signers(cms.get()));
  if (sk_X509_num(signers.get()) != 1) {
    return SignatureError(absl::StatusCode::kInvalidArgument, "signature_malformed",
                          "no signer certificate");
  }
  X509* cert = sk_X509_value(signers.get(), 0);
  uint32_t ext = X509_get_extension_flags(cert);
  if (!(ext & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE) ||
      !(ext & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(cert) & XKU_CODE_SIGN)) {
    return SignatureError(absl::StatusCode::kPermissionDenied, "signer_key_usage",
                          SubjectLine(cert));
  }
  return SubjectLine(cert);
}

absl::StatusOr<VerifiedManifest> VerifyAndParseManifest(std::string manifest_bytes,
                                                        std::string_view signature_der,
                                                        const TrustOptions& trust) {
  VerifiedManifest verified;
  verified.bytes = std::move(manifest_bytes);
  HOSN_ASSIGN_OR_RETURN(verified.signer_subject,
                        VerifyManifestSignature(verified.bytes, signature_der, trust));
  HOSN_ASSIGN_OR_RETURN(verified.manifest, ParseManifest(verified.bytes));
  return verified;
}

}  // namespace hosn::bundle
