// Test-only builders for quotes that no TPM made: an OpenSSL key standing in
// for an AK, its public area as a TPMT_PUBLIC, TPMS_ATTEST structures with any
// field set (including wrong ones), and TPMT_SIGNATUREs over arbitrary bytes.
// Used for T1 (structures a TPM would never sign) and T6 (a SHA-1 bank quote
// signed with RSASSA-SHA256). Not thread-safe; one per test.
#ifndef HOSN_TESTS_SERVER_ATTEST_TEST_QUOTES_H_
#define HOSN_TESTS_SERVER_ATTEST_TEST_QUOTES_H_

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "common/tpm/ak_public.h"
#include "common/tpm/tpm_types.h"

namespace hosn::attest::testing {

// restricted | sign | fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth
inline constexpr TPMA_OBJECT kAkAttributes =
    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH;

struct TestAk {
  tpm::UniqueEvpPkey key;  // private key
  TPMT_PUBLIC public_area = {};
  tpm::Bytes marshalled;  // TPMT_PUBLIC
};

// `scheme`: TPM2_ALG_RSASSA or TPM2_ALG_RSAPSS (RSA-2048) or TPM2_ALG_ECDSA
// (P-256), with SHA-256, written into the public area's scheme.
absl::StatusOr<TestAk> MakeTestAk(TPM2_ALG_ID scheme, TPMA_OBJECT attributes = kAkAttributes);

// A quote-shaped TPMS_ATTEST with magic and type set right.
TPMS_ATTEST MakeQuoteAttest(std::span<const uint8_t> extra_data,
                            const TPML_PCR_SELECTION& selection,
                            std::span<const uint8_t> pcr_digest);

// A marshalled TPMT_SIGNATURE by `ak` over `message` with `scheme` and `hash`.
absl::StatusOr<tpm::Bytes> SignAttest(const TestAk& ak, std::span<const uint8_t> message,
                                      TPM2_ALG_ID scheme, TPM2_ALG_ID hash = TPM2_ALG_SHA256);

// PCR values with every selected PCR set to `fill` bytes.
tpm::PcrValues FilledPcrValues(const tpm::PcrSelection& selection, uint8_t fill);

}  // namespace hosn::attest::testing

#endif  // HOSN_TESTS_SERVER_ATTEST_TEST_QUOTES_H_
