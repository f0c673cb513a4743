#include "common/tpm/tpm_types.h"

#include <openssl/evp.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/absl_compat.h"

namespace hosn::tpm {
namespace {

struct AlgInfo {
  TPM2_ALG_ID alg;
  size_t size;
  const char* name;
  const char* openssl_name;
};

constexpr AlgInfo kAlgs[] = {
    {TPM2_ALG_SHA1, 20, "sha1", "SHA1"},       {TPM2_ALG_SHA256, 32, "sha256", "SHA256"},
    {TPM2_ALG_SHA384, 48, "sha384", "SHA384"}, {TPM2_ALG_SHA512, 64, "sha512", "SHA512"},
    {TPM2_ALG_SM3_256, 32, "sm3_256", "SM3"},
};

const AlgInfo* FindAlg(TPM2_ALG_ID alg) {
  for (const AlgInfo& info : kAlgs) {
    if (info.alg == alg) return &info;
  }
  return nullptr;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct MdDeleter {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};

}  // namespace

size_t HashDigestSize(TPM2_ALG_ID alg) {
  const AlgInfo* info = FindAlg(alg);
  return info == nullptr ? 0 : info->size;
}

std::string HashAlgName(TPM2_ALG_ID alg) {
  const AlgInfo* info = FindAlg(alg);
  if (info != nullptr) return info->name;
  return absl::StrFormat("alg 0x%04x", alg);
}

absl::StatusOr<TPM2_ALG_ID> HashAlgFromName(std::string_view name) {
  for (const AlgInfo& info : kAlgs) {
    if (name == info.name) return info.alg;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown hash algorithm ", ToAbsl(name)));
}

absl::StatusOr<Bytes> HashBytes(TPM2_ALG_ID alg, std::span<const uint8_t> data) {
  const AlgInfo* info = FindAlg(alg);
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown hash algorithm ", HashAlgName(alg)));
  }
  std::unique_ptr<EVP_MD, MdDeleter> md(EVP_MD_fetch(nullptr, info->openssl_name, nullptr));
  if (md == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("hash algorithm not available: ", HashAlgName(alg)));
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  Bytes out(info->size);
  unsigned int out_len = 0;
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), md.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &out_len) != 1 || out_len != info->size) {
    return absl::InternalError("digest computation failed");
  }
  return out;
}

absl::StatusOr<PcrSelection> PcrSelectionFromTpm(const TPML_PCR_SELECTION& tpml) {
  if (tpml.count > TPM2_NUM_PCR_BANKS) {
    return absl::InvalidArgumentError("pcr selection has too many banks");
  }
  PcrSelection selection;
  for (uint32_t i = 0; i < tpml.count; ++i) {
    const TPMS_PCR_SELECTION& bank = tpml.pcrSelections[i];
    if (bank.sizeofSelect > TPM2_PCR_SELECT_MAX) {
      return absl::InvalidArgumentError("pcr selection bitmap too large");
    }
    if (HashDigestSize(bank.hash) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pcr selection names unknown bank ", HashAlgName(bank.hash)));
    }
    PcrBankSelection out{.hash = bank.hash, .pcrs = {}};
    for (uint32_t byte = 0; byte < bank.sizeofSelect; ++byte) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if ((bank.pcrSelect[byte] >> bit) & 1) out.pcrs.push_back(byte * 8 + bit);
      }
    }
    selection.push_back(std::move(out));
  }
  return selection;
}

absl::StatusOr<TPML_PCR_SELECTION> PcrSelectionToTpm(const PcrSelection& selection) {
  if (selection.size() > TPM2_NUM_PCR_BANKS) {
    return absl::InvalidArgumentError("pcr selection has too many banks");
  }
  TPML_PCR_SELECTION tpml = {};
  tpml.count = static_cast<UINT32>(selection.size());
  for (size_t i = 0; i < selection.size(); ++i) {
    if (HashDigestSize(selection[i].hash) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pcr selection names unknown bank ", HashAlgName(selection[i].hash)));
    }
    TPMS_PCR_SELECTION& bank = tpml.pcrSelections[i];
    bank.hash = selection[i].hash;
    bank.sizeofSelect = 3;
    for (uint32_t pcr : selection[i].pcrs) {
      if (pcr > kMaxPcrIndex) {
        return absl::InvalidArgumentError(absl::StrCat("pcr index ", pcr, " out of range"));
      }
      bank.pcrSelect[pcr / 8] |= static_cast<BYTE>(1u << (pcr % 8));
    }
  }
  return tpml;
}

std::string PcrSelectionToString(const PcrSelection& selection) {
  std::string out;
  for (const PcrBankSelection& bank : selection) {
    if (!out.empty()) out += "+";
    absl::StrAppend(&out, HashAlgName(bank.hash), ":");
    for (size_t i = 0; i < bank.pcrs.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", bank.pcrs[i]);
    }
  }
  return out;
}

absl::StatusOr<Bytes> ComputePcrDigest(TPM2_ALG_ID digest_alg, const PcrSelection& selection,
                                       const PcrValues& values) {
  Bytes concatenated;
  for (const PcrBankSelection& bank : selection) {
    const size_t size = HashDigestSize(bank.hash);
    if (size == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown pcr bank ", HashAlgName(bank.hash)));
    }
    auto bank_values = values.find(bank.hash);
    for (uint32_t pcr : bank.pcrs) {
      if (bank_values == values.end() || !bank_values->second.contains(pcr)) {
        return absl::NotFoundError(
            absl::StrCat("no value for pcr ", HashAlgName(bank.hash), ":", pcr));
      }
      const Bytes& value = bank_values->second.at(pcr);
      if (value.size() != size) {
        return absl::InvalidArgumentError(
            absl::StrCat("pcr ", HashAlgName(bank.hash), ":", pcr, " has the wrong length"));
      }
      concatenated.insert(concatenated.end(), value.begin(), value.end());
    }
  }
  return HashBytes(digest_alg, concatenated);
}

}  // namespace hosn::tpm
