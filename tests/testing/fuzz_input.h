// Splits one libFuzzer input into several byte fields, for targets whose
// parser takes more than one untrusted buffer. Framing: every field but the
// last is a big-endian u16 length followed by that many bytes (cut short at
// the end of the input); the last field is whatever remains. Seed files are
// written in the same framing (tests/testing/make_fuzz_seed.py).
// Header-only, so fuzz targets need not link hosn_testing (gtest).
// Stateless and thread-safe.
#ifndef HOSN_TESTS_TESTING_FUZZ_INPUT_H_
#define HOSN_TESTS_TESTING_FUZZ_INPUT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hosn::testing {

// The `N` fields of `data`; missing fields are empty.
template <size_t N>
std::array<std::string_view, N> SplitFuzzInput(const uint8_t* data, size_t size) {
  static_assert(N > 0);
  std::array<std::string_view, N> fields{};
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (size_t i = 0; i + 1 < N; ++i) {
    if (rest.size() < 2) {
      rest = {};
      break;
    }
    const size_t length =
        static_cast<size_t>(static_cast<uint8_t>(rest[0])) << 8 | static_cast<uint8_t>(rest[1]);
    rest.remove_prefix(2);
    fields[i] = rest.substr(0, length);
    rest.remove_prefix(fields[i].size());
  }
  fields[N - 1] = rest;
  return fields;
}

}  // namespace hosn::testing

#endif  // HOSN_TESTS_TESTING_FUZZ_INPUT_H_
