// libFuzzer target: P256PointFromSpki, the parser of the node's public key
// that KeyStore::WrapDekToPeer applies to bytes from the network.
// Invariant: an accepted input yields an uncompressed point (65 bytes,
// leading 0x04) that the HSM layer's own SPKI builder turns back into a key.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/hsm/openssl_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto point = hosn::hsm::P256PointFromSpki(bytes);
  if (!point.ok()) return 0;
  if (point->size() != 65 || (*point)[0] != 0x04) std::abort();
  if (!hosn::hsm::EcSpki(hosn::hsm::kOidP256, *point).ok()) std::abort();
  return 0;
}
