# PostgreSQL backend of the barrier (libpq) and its test against a real server (DTX_PG_DSN).
find_package(PostgreSQL REQUIRED)

target_sources(dtx_sdk PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/barrier_postgres.cc)
target_link_libraries(dtx_sdk PUBLIC PostgreSQL::PostgreSQL)

dtx_test(sdk_barrier_postgres_test barrier_postgres_test.cc)
target_link_libraries(sdk_barrier_postgres_test PRIVATE dtx_sdk)
