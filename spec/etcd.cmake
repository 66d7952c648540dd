# spec/etcd.cmake: a real etcd for test_registry_etcd (and its _asan twin),
# started once by a ctest fixture on loopback ports in ${CMAKE_BINARY_DIR}/etcd
# and stopped by PID afterwards. The test also pauses and resumes it through
# the fixture script ($MOONRPC_ETCD_FIXTURE) to check the watch's reconnect.
# Included from spec/tests.cmake after the C test targets exist.
set(MRPC_ETCD_DIR ${CMAKE_BINARY_DIR}/etcd)
add_test(NAME etcd_start COMMAND ${CMAKE_SOURCE_DIR}/spec/fixtures/etcd.sh start ${MRPC_ETCD_DIR})
add_test(NAME etcd_stop COMMAND ${CMAKE_SOURCE_DIR}/spec/fixtures/etcd.sh stop ${MRPC_ETCD_DIR})
set_tests_properties(etcd_start PROPERTIES FIXTURES_SETUP etcd TIMEOUT 30)
set_tests_properties(etcd_stop PROPERTIES FIXTURES_CLEANUP etcd TIMEOUT 30)
foreach(t test_registry_etcd test_registry_etcd_asan)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED etcd RESOURCE_LOCK etcd)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "MOONRPC_ETCD_DIR=${MRPC_ETCD_DIR}"
      "MOONRPC_ETCD_FIXTURE=${CMAKE_SOURCE_DIR}/spec/fixtures/etcd.sh")
  endif()
endforeach()
