# The client side of the SDK: Saga, Msg, Tcc and Xa builders over dtxd's HTTP protocol.
target_sources(dtx_sdk PRIVATE ${CMAKE_CURRENT_LIST_DIR}/client.cc)
target_link_libraries(dtx_sdk PUBLIC dtx_runtime nlohmann_json::nlohmann_json)

# Unit tests against an in-process fake dtxd, and end-to-end tests against the real dtxd and
# dtx-participant binaries (through the integration tests' process harness).
dtx_test(sdk_client_test client_test.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/harness.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/process.cc)
target_include_directories(sdk_client_test PRIVATE ${CMAKE_SOURCE_DIR}/tests/integration)
target_link_libraries(sdk_client_test PRIVATE dtx_sdk dtx_runtime Boost::boost Threads::Threads)
target_compile_definitions(sdk_client_test PRIVATE
  DTXD_BIN="$<TARGET_FILE:dtxd>"
  PARTICIPANT_BIN="$<TARGET_FILE:dtx-participant>")
add_dependencies(sdk_client_test dtxd dtx-participant)
