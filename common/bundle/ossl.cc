#include "common/bundle/ossl.h"

#include <openssl/err.h>

namespace hosn::bundle::internal {

std::string OsslErrorText() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

}  // namespace hosn::bundle::internal
