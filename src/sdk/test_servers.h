// Test-only helpers for the SDK's tests against real database servers (DTX_PG_DSN,
// DTX_MARIADB_DSN; scripts/test.sh starts private servers and exports both).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>

namespace dtx::sdk::testutil {

// Reads the DSN in environment variable `var` into *dsn. Unset or empty: a fatal failure that
// says how to get a server (`script` starts one); "skip": the test is skipped. Call it from SetUp
// and return when `*dsn` is empty or the test is skipped (IsSkipped()).
inline void RequireDsn(const char* var, const char* script, std::string* dsn) {
  dsn->clear();
  const char* env = std::getenv(var);
  if (env == nullptr || *env == '\0') {
    [&] {
      FAIL() << var << " is not set. Run the tests through scripts/test.sh BUILD_DIR (it starts "
             << "private servers), or start one with `" << script << " start DIR` and export "
             << var << "=<the DSN it prints>; " << var << "=skip skips these tests.";
    }();
    return;
  }
  if (std::string(env) == "skip") {
    [&] { GTEST_SKIP() << var << "=skip"; }();
    return;
  }
  *dsn = env;
}

// A name no other test process uses at the same time: prefix_<pid>_<random>.
inline std::string UniqueName(const std::string& prefix) {
  std::random_device rd;
  return prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(rd() % 1000000);
}

// The libpq connection string (key=value or URI form) whose sessions use `schema`.
inline std::string InSchema(const std::string& dsn, const std::string& schema) {
  if (dsn.find("://") != std::string::npos) {
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") +
           "connect_timeout=10&options=-csearch_path%3D" + schema;
  }
  return dsn + " connect_timeout=10 options='-csearch_path=" + schema + "'";
}

// The libpq connection string (key=value or URI form) for database `db` on the same server.
inline std::string InDatabase(const std::string& dsn, const std::string& db) {
  // In a key=value string the last dbname wins.
  return dsn.find("://") == std::string::npos
             ? dsn + " dbname=" + db + " connect_timeout=10"
             : dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + "dbname=" + db;
}

}  // namespace dtx::sdk::testutil
