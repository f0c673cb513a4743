// Control interface of the fault-injecting PKCS#11 module (tests only).
//
// libhosn_fault_pkcs11.so is a PKCS#11 module: its C_GetFunctionList hands
// out a table whose every entry forwards to a real module (SoftHSM by
// default, or $HOSN_FAULT_PKCS11_TARGET) unless a rule says to fail that
// call. Rules come from $HOSN_FAULT_PKCS11_SPEC at load time, or from
// hosn_fault_pkcs11_configure() at any time (tests dlopen the same path as
// the code under test, which yields the same instance).
//
// Rule syntax: rules separated by ';', fields by ',':
//   fn=C_UnwrapKey,skip=1,count=1,rv=CKR_DEVICE_REMOVED,kill=1
//     fn     the PKCS#11 function name (required)
//     skip   matching calls that pass before the rule fires (default 0)
//     count  how many calls fail once it fires; -1 = forever (default 1)
//     rv     CKR name or number to return (default CKR_GENERAL_ERROR)
//     kill   1: when the rule fires, every session open at that moment
//            becomes dead: later calls on it return CKR_SESSION_HANDLE_INVALID
//            (C_CloseSession still closes it), as after an HSM restart
//     attr   C_GetAttributeValue only: after forwarding, report this
//            attribute type (number) with ulValueLen =
//            CK_UNAVAILABLE_INFORMATION and CKR_OK (case P6); `rv` unused
// A failing call is not forwarded, so the real module keeps whatever
// operation state it had (which is what case P7 needs).
//
// Thread-safe: rules and counters sit behind one mutex.
#ifndef HOSN_TESTS_SERVER_HSM_FAULT_PKCS11_FAULT_PKCS11_H_
#define HOSN_TESTS_SERVER_HSM_FAULT_PKCS11_FAULT_PKCS11_H_

extern "C" {

// Replaces every rule and resets the counters. Returns 0, or -1 on a syntax
// error (then no rule is active).
int hosn_fault_pkcs11_configure(const char* spec);

// How many calls the rules have failed (or rewritten) since configure.
long hosn_fault_pkcs11_fired(void);

// How many keys that C_UnwrapKey or C_DeriveKey made since configure have
// not been destroyed with a successful C_DestroyObject. Closing a session
// (which frees its objects) does not count as destroying them, so a test
// can tell "destroyed on every path" from "the session happened to close".
long hosn_fault_pkcs11_live_keys(void);

}  // extern "C"

#endif  // HOSN_TESTS_SERVER_HSM_FAULT_PKCS11_FAULT_PKCS11_H_
