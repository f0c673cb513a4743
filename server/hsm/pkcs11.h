// The PKCS#11 declarations used inside server/hsm (and nowhere else).
//
// They come from p11-kit's pkcs11.h, an independent implementation of the
// OASIS interface that already sets the platform macros. A few PKCS#11 3.0
// numbers that the header lacks are defined here.
#ifndef HOSN_SERVER_HSM_PKCS11_H_
#define HOSN_SERVER_HSM_PKCS11_H_

#include "p11-kit/pkcs11.h"

namespace hosn::hsm {

// PKCS#11 3.0 number for AES key wrap with padding (RFC 5649). SoftHSM 2.6
// and p11-kit call 0x210A CKM_AES_KEY_WRAP_PAD and use it for RFC 5649.
inline constexpr CK_MECHANISM_TYPE kCkmAesKeyWrapKwp = 0x210B;

}  // namespace hosn::hsm

#endif  // HOSN_SERVER_HSM_PKCS11_H_
