# Every dependency comes from a Debian 12 package installed by
# deploy/install-deps.sh. Nothing is downloaded at configure time.
find_package(Threads REQUIRED)
find_package(OpenSSL 3.0 REQUIRED)
find_package(absl REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(P11KIT REQUIRED IMPORTED_TARGET p11-kit-1)
pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-mu tss2-rc tss2-tctildr)
if(HOSN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(HOSN_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()

# PKCS#11 declarations: the p11-kit header (libp11-kit-dev), an independent
# implementation of the OASIS interface. Only server/hsm and the test fault
# module may use this target.
add_library(hosn_pkcs11_headers INTERFACE)
target_include_directories(hosn_pkcs11_headers INTERFACE ${P11KIT_INCLUDE_DIRS})
