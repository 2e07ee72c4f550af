# XA resources: PostgreSQL (PREPARE TRANSACTION).
# Needs postgres.cmake (libpq, the shared PostgreSQL helpers).
target_sources(dtx_sdk PRIVATE ${CMAKE_CURRENT_LIST_DIR}/xa_postgres.cc)

# Against a real server named by DTX_PG_DSN (scripts/test.sh starts one).
dtx_test(sdk_xa_postgres_test ${CMAKE_CURRENT_LIST_DIR}/xa_postgres_test.cc)
target_link_libraries(sdk_xa_postgres_test PRIVATE dtx_sdk)
