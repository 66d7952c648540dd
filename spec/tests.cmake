# C tests and busted specs, all run by ctest.
#
# Every C test is built twice: plainly, and against a copy of the core built
# with AddressSanitizer and UndefinedBehaviorSanitizer (name suffix _asan).
# The vectors live in ../shared/rpcx-vectors; tests receive the path and
# report themselves skipped (exit 77) when it is absent.

get_filename_component(MRPC_VECTORS ${CMAKE_SOURCE_DIR}/../shared/rpcx-vectors ABSOLUTE)
set(MRPC_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)

if(MRPC_SANITIZE_TESTS)
  add_library(moonrpc_obj_asan OBJECT ${MRPC_CORE_SOURCES})
  target_include_directories(moonrpc_obj_asan PUBLIC ${MRPC_CORE_INCLUDE}
    PRIVATE ${CMAKE_SOURCE_DIR}/core/src)
  target_compile_options(moonrpc_obj_asan PRIVATE ${MRPC_SAN_FLAGS})
  target_link_libraries(moonrpc_obj_asan PUBLIC ${MRPC_CORE_DEPS})
endif()

function(mrpc_c_test name)
  set(srcs ${ARGN})
  add_executable(${name} ${srcs})
  # core/src too: a pure internal piece (a parser) may be unit-tested alone.
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/spec/core ${CMAKE_SOURCE_DIR}/core/src)
  target_link_libraries(${name} PRIVATE moonrpc_static PkgConfig::CJSON m)
  add_test(NAME ${name} COMMAND ${name} ${MRPC_VECTORS})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
  if(MRPC_SANITIZE_TESTS)
    add_executable(${name}_asan ${srcs} $<TARGET_OBJECTS:moonrpc_obj_asan>)
    target_include_directories(${name}_asan PRIVATE ${MRPC_CORE_INCLUDE} ${CMAKE_SOURCE_DIR}/spec/core
      ${CMAKE_SOURCE_DIR}/core/src)
    target_compile_options(${name}_asan PRIVATE ${MRPC_SAN_FLAGS})
    target_link_options(${name}_asan PRIVATE ${MRPC_SAN_FLAGS})
    target_link_libraries(${name}_asan PRIVATE ${MRPC_CORE_DEPS})
    add_test(NAME ${name}_asan COMMAND ${name}_asan ${MRPC_VECTORS})
    set_tests_properties(${name}_asan PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
endfunction()

# spec/core mirrors core/src: each test sits in the folder of the subsystem
# it tests; check.h and the loop/transport harnesses are in spec/core.
file(GLOB_RECURSE MRPC_C_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/core/test_*.c)
foreach(src ${MRPC_C_TESTS})
  get_filename_component(name ${src} NAME_WE)
  mrpc_c_test(${name} ${src})
endforeach()

# The C examples: the client calls the server, both on loops they own.
add_test(NAME example_c_arith
  COMMAND ${CMAKE_SOURCE_DIR}/spec/tools/run_examples.sh
          $<TARGET_FILE:example-arith-server> $<TARGET_FILE:example-arith-client>)
set_tests_properties(example_c_arith PROPERTIES TIMEOUT 60)

# busted specs: one ctest entry per spec file, against the build tree. With
# MRPC_SANITIZE_TESTS each also runs against a copy of the Lua module built
# with ASan/UBSan (lua_*_asan; the interpreter is not instrumented, so the
# runtimes are preloaded; LeakSanitizer checks every run).
if(MRPC_BUILD_LUA)
  find_program(BUSTED busted REQUIRED)
  set(MRPC_LUA_ENV
    "MOONRPC_BUILD=${CMAKE_BINARY_DIR}"
    "MOONRPC_VECTORS=${MRPC_VECTORS}"
    "LUA_PATH=${CMAKE_SOURCE_DIR}/lua/?.lua\\;${CMAKE_SOURCE_DIR}/lua/?/init.lua\\;${CMAKE_SOURCE_DIR}/spec/?.lua\\;\\;")
  if(MRPC_SANITIZE_TESTS)
    add_library(moonrpc_lua_asan MODULE ${MRPC_LUA_C_SOURCES} $<TARGET_OBJECTS:moonrpc_obj_asan>)
    target_include_directories(moonrpc_lua_asan PRIVATE ${MRPC_CORE_INCLUDE})
    target_compile_options(moonrpc_lua_asan PRIVATE ${MRPC_SAN_FLAGS})
    target_link_options(moonrpc_lua_asan PRIVATE ${MRPC_SAN_FLAGS})
    target_link_libraries(moonrpc_lua_asan PRIVATE PkgConfig::LUA PkgConfig::MSGPACK
      ${MRPC_CORE_DEPS})
    set_target_properties(moonrpc_lua_asan PROPERTIES PREFIX "" OUTPUT_NAME core
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib-asan/moonrpc)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
      OUTPUT_VARIABLE MRPC_LIBASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
      OUTPUT_VARIABLE MRPC_LIBUBSAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  file(GLOB MRPC_SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/*_spec.lua)
  foreach(spec ${MRPC_SPECS})
    get_filename_component(name ${spec} NAME_WE)
    add_test(NAME lua_${name}
      COMMAND ${BUSTED} --lua=lua5.4 -o utfTerminal ${spec}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(lua_${name} PROPERTIES TIMEOUT 300
      ENVIRONMENT "${MRPC_LUA_ENV};LUA_CPATH=${CMAKE_BINARY_DIR}/lib/?.so\\;\\;")
    if(MRPC_SANITIZE_TESTS)
      add_test(NAME lua_${name}_asan
        COMMAND ${CMAKE_SOURCE_DIR}/spec/run_asan.sh ${BUSTED} --lua=lua5.4 -o utfTerminal ${spec}
        WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
      set_tests_properties(lua_${name}_asan PROPERTIES TIMEOUT 300
        ENVIRONMENT "${MRPC_LUA_ENV};LUA_CPATH=${CMAKE_BINARY_DIR}/lib-asan/?.so\\;\\;;LD_PRELOAD=${MRPC_LIBASAN} ${MRPC_LIBUBSAN};ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
    endif()
  endforeach()
endif()

# moonrpc bench against the C and Lua echo services (correctness only).
if(MRPC_BUILD_LUA)
  add_test(NAME bench_smoke COMMAND ${CMAKE_SOURCE_DIR}/spec/bench_smoke.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(bench_smoke PROPERTIES TIMEOUT 120)
endif()

# Real etcd and Redis servers for the registry tests (spec/etcd.cmake,
# spec/redis.cmake): ctest fixtures start them on loopback with temporary
# data directories and stop them by PID.
foreach(part etcd redis)
  if(EXISTS ${CMAKE_SOURCE_DIR}/spec/${part}.cmake)
    include(${CMAKE_SOURCE_DIR}/spec/${part}.cmake)
  endif()
endforeach()

# The tests that need both servers. Those that stop and restart them (the
# outage spec, through the fixture scripts) or count on them (the rest) hold
# the resource lock, so they never overlap. The gateway's C tests run every
# scenario over Redis and a shorter set over etcd.
if(TEST etcd_start AND TEST redis_start)
  foreach(t lua_registry_spec lua_registrar_spec lua_registry_outage_spec lua_gateway_spec
            test_gateway test_gateway_http)
    foreach(v ${t} ${t}_asan)
      if(TEST ${v})
        set_tests_properties(${v} PROPERTIES FIXTURES_REQUIRED "etcd;redis" RESOURCE_LOCK "etcd;redis")
        set_property(TEST ${v} APPEND PROPERTY ENVIRONMENT
          "MOONRPC_ETCD_DIR=${CMAKE_BINARY_DIR}/etcd" "MOONRPC_REDIS_DIR=${CMAKE_BINARY_DIR}/redis")
      endif()
    endforeach()
  endforeach()
endif()

# Dependencies point one way (ARCHITECTURE.md): no two files of the core or
# of the Lua binding call each other, directly or round a circle; the core's
# subsystems depend on each other one way; a folder includes only another's
# one internal header; no Lua header under core/. Reads the objects' symbols.
find_program(LUA_INTERP NAMES lua5.4 lua REQUIRED)
set(MRPC_LAYERS_ARGS ${CMAKE_SOURCE_DIR}/core/src
  ${CMAKE_BINARY_DIR}/CMakeFiles/moonrpc_obj.dir/core/src)
if(MRPC_BUILD_LUA)
  list(APPEND MRPC_LAYERS_ARGS ${CMAKE_SOURCE_DIR}/lua/src
    ${CMAKE_BINARY_DIR}/CMakeFiles/moonrpc_lua.dir/lua/src)
endif()
add_test(NAME layers COMMAND ${LUA_INTERP} ${CMAKE_SOURCE_DIR}/spec/tools/layers.lua ${MRPC_LAYERS_ARGS})
set_tests_properties(layers PROPERTIES TIMEOUT 60)

# What a C host does with an installed libmoonrpc: find_package(moonrpc)
# (shared and static targets) and pkg-config, plain and --static.
if(MRPC_INSTALL_CORE)
  add_test(NAME install_check COMMAND ${CMAKE_SOURCE_DIR}/spec/tools/install_check.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(install_check PROPERTIES TIMEOUT 120)
endif()

# The README's shell blocks that start servers in the background, run as
# written (spec/tools/readme_blocks.lua): each must exit 0 and print what
# the README shows. They use the README's fixed ports (8972, 8973, 9000,
# 9981), so the lock keeps them from overlapping anything else that would.
if(MRPC_BUILD_LUA)
  add_test(NAME readme_blocks COMMAND ${LUA_INTERP} ${CMAKE_SOURCE_DIR}/spec/tools/readme_blocks.lua
           ${CMAKE_SOURCE_DIR}/README.md WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(readme_blocks PROPERTIES TIMEOUT 600 RESOURCE_LOCK readme_ports
    ENVIRONMENT "MOONRPC_BUILD=${CMAKE_BINARY_DIR}")
endif()

# libFuzzer harnesses, built with clang apart from this build (spec/fuzz/).
include(${CMAKE_SOURCE_DIR}/spec/fuzz/fuzz.cmake)
