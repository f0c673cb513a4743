// libFuzzer target: the challenge and enrollment token parsers get any bytes
// a node or operator could send. A parse that succeeds must re-encode to the
// same bytes (one meaning per token).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/release/challenge_token.h"
#include "server/release/enrollment_proof.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = hosn::release::ParseChallengeToken(input);
  if (parsed.ok()) {
    auto again = hosn::release::EncodeChallengeToken(parsed->claims, parsed->mac);
    if (!again.ok() || *again != input) std::abort();
  }
  auto expiry = hosn::release::ParseEnrollmentToken(input);
  if (expiry.ok() && hosn::release::EncodeEnrollmentToken(*expiry) != input) std::abort();
  return 0;
}
