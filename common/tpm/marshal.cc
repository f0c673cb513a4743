#include "common/tpm/marshal.h"

#include <tss2/tss2_mu.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hosn::tpm {
namespace {

// Runs a tss2-mu unmarshal function over the whole buffer.
template <typename T, typename Fn>
UnmarshalResult<T> TryUnmarshal(std::span<const uint8_t> bytes, Fn fn) {
  UnmarshalResult<T> result;
  size_t offset = 0;
  if (fn(bytes.data(), bytes.size(), &offset, &result.value) != TSS2_RC_SUCCESS) {
    result.value = {};
    result.error = UnmarshalError::kMalformed;
  } else if (offset != bytes.size()) {
    result.error = UnmarshalError::kTrailingBytes;
  }
  return result;
}

template <typename T>
absl::StatusOr<T> ToStatus(UnmarshalResult<T> result, const char* type) {
  switch (result.error) {
    case UnmarshalError::kNone:
      return result.value;
    case UnmarshalError::kMalformed:
      return absl::InvalidArgumentError(absl::StrCat("malformed ", type));
    case UnmarshalError::kTrailingBytes:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("trailing bytes after ", type));
}

template <typename T, typename Fn>
absl::StatusOr<Bytes> Marshal(const T& value, Fn fn, const char* type) {
  Bytes out(sizeof(T) + 16);
  size_t offset = 0;
  if (fn(&value, out.data(), out.size(), &offset) != TSS2_RC_SUCCESS) {
    return absl::InternalError(absl::StrCat("cannot marshal ", type));
  }
  out.resize(offset);
  return out;
}

}  // namespace

UnmarshalResult<TPMS_ATTEST> TryUnmarshalAttest(std::span<const uint8_t> bytes) {
  return TryUnmarshal<TPMS_ATTEST>(bytes, Tss2_MU_TPMS_ATTEST_Unmarshal);
}

absl::StatusOr<TPMS_ATTEST> UnmarshalAttest(std::span<const uint8_t> bytes) {
  return ToStatus(TryUnmarshalAttest(bytes), "tpms_attest");
}

UnmarshalResult<TPMT_SIGNATURE> TryUnmarshalSignature(std::span<const uint8_t> bytes) {
  return TryUnmarshal<TPMT_SIGNATURE>(bytes, Tss2_MU_TPMT_SIGNATURE_Unmarshal);
}

absl::StatusOr<TPMT_SIGNATURE> UnmarshalSignature(std::span<const uint8_t> bytes) {
  return ToStatus(TryUnmarshalSignature(bytes), "tpmt_signature");
}

absl::StatusOr<TPMT_PUBLIC> UnmarshalPublic(std::span<const uint8_t> bytes) {
  return ToStatus(TryUnmarshal<TPMT_PUBLIC>(bytes, Tss2_MU_TPMT_PUBLIC_Unmarshal), "tpmt_public");
}

absl::StatusOr<TPMT_PUBLIC> Unmarshal2bPublic(std::span<const uint8_t> bytes) {
  // The size prefix must cover exactly the rest of the buffer, and the
  // TPMT_PUBLIC inside must fill it exactly.
  UINT16 size = 0;
  size_t offset = 0;
  if (Tss2_MU_UINT16_Unmarshal(bytes.data(), bytes.size(), &offset, &size) != TSS2_RC_SUCCESS) {
    return absl::InvalidArgumentError("malformed tpm2b_public");
  }
  if (size != bytes.size() - offset) {
    return absl::InvalidArgumentError("tpm2b_public size does not match its contents");
  }
  return UnmarshalPublic(bytes.subspan(offset));
}

absl::StatusOr<Bytes> MarshalAttest(const TPMS_ATTEST& attest) {
  return Marshal(attest, Tss2_MU_TPMS_ATTEST_Marshal, "tpms_attest");
}

absl::StatusOr<Bytes> MarshalSignature(const TPMT_SIGNATURE& signature) {
  return Marshal(signature, Tss2_MU_TPMT_SIGNATURE_Marshal, "tpmt_signature");
}

absl::StatusOr<Bytes> MarshalPublic(const TPMT_PUBLIC& public_area) {
  return Marshal(public_area, Tss2_MU_TPMT_PUBLIC_Marshal, "tpmt_public");
}

}  // namespace hosn::tpm
