// OpenSSL helpers of the HSM layer: SubjectPublicKeyInfo from PKCS#11
// public-key attributes, ECDSA signature encodings, key check values.
//
// Only public values pass through here, except ExpectedCheckValue's input,
// which callers (tests, tooling) already hold in SecretBytes. Every OpenSSL
// object is owned by a unique_ptr with its free function. Stateless;
// thread-safe.
#ifndef HOSN_SERVER_HSM_OPENSSL_UTIL_H_
#define HOSN_SERVER_HSM_OPENSSL_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace hosn::hsm {

// DER encodings of the curve parameters we generate keys on (CKA_EC_PARAMS).
inline constexpr std::string_view kOidP256 =
    std::string_view("\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
inline constexpr std::string_view kOidP384 = std::string_view("\x06\x05\x2b\x81\x04\x00\x22", 7);
inline constexpr std::string_view kOidEd25519 = std::string_view("\x06\x03\x2b\x65\x70", 5);
// The PrintableString "edwards25519" form that some modules use instead.
inline constexpr std::string_view kNameEd25519 = std::string_view(
    "\x13\x0c"
    "edwards25519",
    14);

// EC (P-256/P-384): CKA_EC_PARAMS and CKA_EC_POINT (a DER OCTET STRING, or
// the bare point for modules that skip the wrapping). InvalidArgument on an
// unknown curve or a point not on it.
absl::StatusOr<std::string> EcSpki(std::string_view ec_params, std::string_view ec_point);
// Ed25519 from CKA_EC_POINT (wrapped or bare 32 bytes).
absl::StatusOr<std::string> Ed25519Spki(std::string_view ec_point);
// RSA from CKA_MODULUS and CKA_PUBLIC_EXPONENT (big-endian).
absl::StatusOr<std::string> RsaSpki(std::string_view modulus, std::string_view exponent);

// The uncompressed point (65 bytes, 0x04 || x || y) of a DER
// SubjectPublicKeyInfo that holds a P-256 public key and nothing after it.
// InvalidArgument for anything else (another curve or algorithm, trailing
// bytes, a point not on the curve). Input may come from the network.
absl::StatusOr<std::string> P256PointFromSpki(std::string_view spki);

// SHA-256 or SHA-384 (`bits` 256 or 384) of public data.
absl::StatusOr<std::string> ShaDigest(int bits, std::string_view data);

// r||s (equal halves) -> DER ECDSA-Sig-Value. InvalidArgument on odd length.
absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw);

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_OPENSSL_UTIL_H_
