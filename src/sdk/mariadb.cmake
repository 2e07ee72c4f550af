# MariaDB backend of the barrier and the MariaDB XA resource (libmariadb), with their tests
# against a real server (DTX_MARIADB_DSN, started by scripts/test.sh).
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBMARIADB REQUIRED IMPORTED_TARGET libmariadb)

target_sources(dtx_sdk PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/barrier_mariadb.cc)
target_link_libraries(dtx_sdk PUBLIC PkgConfig::LIBMARIADB)

dtx_test(sdk_barrier_mariadb_test barrier_mariadb_test.cc)
target_link_libraries(sdk_barrier_mariadb_test PRIVATE dtx_sdk)

# The MariaDB XA resource (OpenMariaDbXa, declared in include/dtx/xa.h).
target_sources(dtx_sdk PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/xa_mariadb.cc)
dtx_test(sdk_xa_mariadb_test xa_mariadb_test.cc)
target_link_libraries(sdk_xa_mariadb_test PRIVATE dtx_sdk)
