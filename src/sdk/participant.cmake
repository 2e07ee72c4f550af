# The participant side of the SDK: BranchServer (an embeddable HTTP server for branch calls) and
# BarrierPurger. dtx_sdk already links dtx_runtime and nlohmann_json through client.cmake.
target_sources(dtx_sdk PRIVATE ${CMAKE_CURRENT_LIST_DIR}/participant.cc)

# Unit tests on SQLite stores in a temporary directory, and one end-to-end saga through the real
# dtxd (started through the integration tests' process harness).
dtx_test(sdk_participant_test participant_test.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/harness.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/process.cc)
target_include_directories(sdk_participant_test PRIVATE ${CMAKE_SOURCE_DIR}/tests/integration)
target_link_libraries(sdk_participant_test PRIVATE dtx_sdk dtx_runtime Boost::boost
  Threads::Threads)
target_compile_definitions(sdk_participant_test PRIVATE
  DTXD_BIN="$<TARGET_FILE:dtxd>"
  PARTICIPANT_BIN="$<TARGET_FILE:dtx-participant>")
add_dependencies(sdk_participant_test dtxd)
