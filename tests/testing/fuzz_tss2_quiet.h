// Included once by each fuzz target that feeds malformed TPM structures to
// tss2-mu: defines the target's LLVMFuzzerInitialize, which turns off the
// tss2 error log (one stderr line per refused structure, millions a run)
// unless TSS2_LOG is set already. Not for targets with their own
// LLVMFuzzerInitialize.
#ifndef HOSN_TESTS_TESTING_FUZZ_TSS2_QUIET_H_
#define HOSN_TESTS_TESTING_FUZZ_TSS2_QUIET_H_

#include <cstdlib>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("TSS2_LOG", "all+NONE", /*overwrite=*/0);
  return 0;
}

#endif  // HOSN_TESTS_TESTING_FUZZ_TSS2_QUIET_H_
