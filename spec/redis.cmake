# spec/redis.cmake: a real redis-server for test_registry_redis (and its
# _asan twin), started once by a ctest fixture on a free loopback port with
# its files in ${CMAKE_BINARY_DIR}/redis, and stopped by PID afterwards.
# Included from spec/tests.cmake after the C test targets exist. The test
# restarts the server itself (same port) through the same script.
set(MRPC_REDIS_DIR ${CMAKE_BINARY_DIR}/redis)
set(MRPC_REDIS_SH ${CMAKE_SOURCE_DIR}/spec/fixtures/redis.sh)
add_test(NAME redis_start COMMAND ${MRPC_REDIS_SH} start ${MRPC_REDIS_DIR})
add_test(NAME redis_stop COMMAND ${MRPC_REDIS_SH} stop ${MRPC_REDIS_DIR})
set_tests_properties(redis_start PROPERTIES FIXTURES_SETUP redis TIMEOUT 30)
set_tests_properties(redis_stop PROPERTIES FIXTURES_CLEANUP redis TIMEOUT 30)
foreach(t test_registry_redis test_registry_redis_asan)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED redis RESOURCE_LOCK redis)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
      "MOONRPC_REDIS_DIR=${MRPC_REDIS_DIR}" "MOONRPC_REDIS_SH=${MRPC_REDIS_SH}")
  endif()
endforeach()
