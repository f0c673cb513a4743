// libFuzzer target: the segment reader on arbitrary encrypted files. The
// first four input bytes choose the plaintext size the "manifest" claims and
// whether digests are checked; the rest is the file. Invariant: no crash, no
// allocation beyond the file, and anything that opens has the claimed size.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "common/bundle/segment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t claim = (uint32_t{data[0]} << 16) | (uint32_t{data[1]} << 8) | data[2];
  bool digests = data[3] & 1;
  hosn::bundle::ExpectedFile expected;
  expected.path = "fuzz/file.bin";
  expected.size = claim % (1u << 20);
  expected.segment_size = (data[3] & 2) ? hosn::bundle::kMinSegmentSize : 4096;
  if (digests) {
    expected.sha256_hex = std::string(64, 'a');
    expected.tags_sha256_hex = std::string(64, 'b');
  }
  static const hosn::SecretBytes dek = hosn::SecretBytes::CopyOf(std::string(32, '\x42'));
  auto opened =
      hosn::bundle::OpenSealedBuffer(std::span<const uint8_t>(data + 4, size - 4), dek, expected);
  if (opened.ok() && opened->size() != expected.size) std::abort();
  return 0;
}
