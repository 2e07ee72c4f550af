# XA resources: PostgreSQL (PREPARE TRANSACTION) and in-doubt recovery through dtxd's query API.
# Needs postgres.cmake (libpq, the shared PostgreSQL helpers) and client.cmake (DtxClient).
target_sources(dtx_sdk PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/xa_postgres.cc
  ${CMAKE_CURRENT_LIST_DIR}/xa_recovery.cc)

# Against a real server named by DTX_PG_DSN (scripts/test.sh starts one).
dtx_test(sdk_xa_postgres_test ${CMAKE_CURRENT_LIST_DIR}/xa_postgres_test.cc)
target_link_libraries(sdk_xa_postgres_test PRIVATE dtx_sdk)

# A fake resource and an in-process fake dtxd; one end-to-end case with the PostgreSQL resource.
dtx_test(sdk_xa_recovery_test ${CMAKE_CURRENT_LIST_DIR}/xa_recovery_test.cc)
target_link_libraries(sdk_xa_recovery_test PRIVATE dtx_sdk dtx_runtime Boost::boost
  Threads::Threads)
