# The libFuzzer harnesses (spec/fuzz/fuzz_*.c), included from
# spec/tests.cmake when clang with libFuzzer is there. The main build stays
# gcc: spec/fuzz/build.sh compiles the core and the Lua binding once more
# with clang (-fsanitize=fuzzer,address,undefined) into build/fuzz, as the
# fixture test fuzz_build. Each harness then runs as fuzz_<name> for
# MRPC_FUZZ_SECONDS (20) over its seeds and a temporary corpus;
# ./scripts/fuzz runs them longer.
set(MRPC_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz_<name> test runs its harness")
find_program(MRPC_CLANG clang)
if(MRPC_CLANG)
  set(_probe ${CMAKE_BINARY_DIR}/CMakeFiles/fuzz_probe)
  file(WRITE ${_probe}.c "int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n")
  execute_process(COMMAND ${MRPC_CLANG} -fsanitize=fuzzer,address,undefined ${_probe}.c -o ${_probe}
    RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
  if(_rc EQUAL 0)
    set(MRPC_HAVE_LIBFUZZER ON)
  endif()
endif()

if(MRPC_HAVE_LIBFUZZER)
  add_test(NAME fuzz_build COMMAND ${CMAKE_SOURCE_DIR}/spec/fuzz/build.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(fuzz_build PROPERTIES FIXTURES_SETUP fuzz TIMEOUT 600
    ENVIRONMENT "FUZZ_CC=${MRPC_CLANG}")
  file(GLOB MRPC_FUZZERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/fuzz/fuzz_*.c)
  foreach(src ${MRPC_FUZZERS})
    get_filename_component(name ${src} NAME_WE)
    string(REGEX REPLACE "^fuzz_" "" short ${name})
    add_test(NAME ${name}
      COMMAND ${CMAKE_SOURCE_DIR}/spec/fuzz/run.sh ${short} ${MRPC_FUZZ_SECONDS} ${CMAKE_BINARY_DIR})
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED fuzz TIMEOUT 120)
  endforeach()
else()
  message(STATUS "clang with libFuzzer not found: no fuzz_* tests")
endif()
