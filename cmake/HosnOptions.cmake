# Build options shared by every target: warnings as errors, sanitizers,
# hardening. Targets opt in with hosn_target_defaults(<target>).
option(HOSN_BUILD_TESTS "Build the test suite" ON)
option(HOSN_BUILD_BENCHMARKS "Build the benchmarks" ON)
option(HOSN_BUILD_FUZZERS "Build libFuzzer targets (needs clang)" OFF)
set(HOSN_SANITIZE "" CACHE STRING
    "Comma-separated sanitizers: address,undefined or thread (empty for none)")

if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "" FORCE)
endif()

set(HOSN_WARNINGS -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor
    -Wformat=2 -Wno-unused-parameter)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND HOSN_WARNINGS -Wthread-safety)
endif()

if(HOSN_SANITIZE)
  string(REPLACE "," ";" _hosn_sanitizers "${HOSN_SANITIZE}")
  foreach(_s IN LISTS _hosn_sanitizers)
    add_compile_options(-fsanitize=${_s})
    add_link_options(-fsanitize=${_s})
  endforeach()
  add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fno-sanitize-recover=all)
endif()

# Hardening for everything we build: stack protector, fortify, full RELRO.
add_compile_options(-fstack-protector-strong -D_FORTIFY_SOURCE=2)
add_link_options(-Wl,-z,relro,-z,now)

# hosn_target_defaults(target): our warning set, applied to our own code only
# (generated protobuf code is built without -Werror).
function(hosn_target_defaults target)
  target_compile_options(${target} PRIVATE ${HOSN_WARNINGS})
endfunction()

# hosn_add_subdirectories([EXCEPT dir...]): adds every immediate subfolder
# that has a CMakeLists.txt, so a new component needs no edit of its parent.
function(hosn_add_subdirectories)
  cmake_parse_arguments(A "" "" "EXCEPT" ${ARGN})
  file(GLOB _children RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
       ${CMAKE_CURRENT_SOURCE_DIR}/*/CMakeLists.txt)
  list(SORT _children)
  foreach(_child IN LISTS _children)
    get_filename_component(_dir ${_child} DIRECTORY)
    if(NOT _dir IN_LIST A_EXCEPT)
      add_subdirectory(${_dir})
    endif()
  endforeach()
endfunction()
