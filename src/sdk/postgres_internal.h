// libpq helpers shared by the SDK's PostgreSQL parts (the barrier store in barrier_postgres.cc
// and the XA resource in xa_postgres.cc): connecting, running statements with text parameters,
// mapping errors to Status by SQLSTATE, converting result rows, and the barrier table's SQL.
// Internal to dtx_sdk; not installed.
//
// Error mapping (PgError): connection failures and class 08/57 kUnavailable (08P01 excepted: the
// server reports a placeholder/value count mismatch with it, so kInvalidArgument), serialization
// failures, deadlocks and lock timeouts kUnavailable (retry), integrity-constraint violations
// (class 23) kAborted, classes 42 and 22 kInvalidArgument, class 53 kResourceExhausted, class XX
// kDataLoss, anything else kInternal. The message carries `what`, the server's message and the
// SQLSTATE.
//
// Thread-safety: the functions hold no state; each PGconn is used by one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dtx/barrier.h"
#include "dtx/status.h"

namespace dtx::sdk::pg_internal {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, ConnDeleter>;

// kUnavailable with libpq's connection error message.
Status ConnectionError(PGconn* conn, std::string_view what);

// Maps a failed result (or a missing one) to a Status by SQLSTATE (see the file comment).
Status PgError(PGconn* conn, const PGresult* res, std::string_view what);

// The SQLSTATE of a result, or "" if it has none.
std::string SqlState(const PGresult* res);

// Runs one statement with `params` as text parameters ($1, $2, ...). On failure the Status is
// PgError's; if `sqlstate` is not null it receives the failure's SQLSTATE ("" otherwise).
// NUL bytes in the statement or a parameter, more than 65535 parameters, an empty statement and
// COPY are kInvalidArgument.
Result<PgResult> Run(PGconn* conn, std::string_view sql, const std::vector<SqlValue>& params,
                     std::string_view what, std::string* sqlstate = nullptr);

// The row count of an INSERT/UPDATE/DELETE result (0 for other commands).
int64_t AffectedRows(const PGresult* res);

// Every row of a query result, converted by column type: integer and bool columns int64_t,
// float columns double, NULL nullptr, anything else its text. kDataLoss if an integer column does
// not parse.
Result<std::vector<SqlRow>> Rows(const PGresult* res);

// Runs a parameterless (possibly multi-statement) string; on failure rolls back a transaction it
// left in the failed state.
Status ExecSimple(PGconn* conn, const char* sql, std::string_view what);

// Connects with the libpq connection string and silences notices (CREATE ... IF NOT EXISTS and
// friends would print them on stderr). kUnavailable if the server cannot be reached or refuses.
// The lock_timeout a connection gets when neither its connection string nor its role sets one.
inline constexpr int64_t kDefaultLockTimeoutMs = 10'000;

// Connects and sets lock_timeout to kDefaultLockTimeoutMs unless one is configured already.
Result<PgConn> Connect(const std::string& conninfo);

// Resets a connection that libpq reports as broken (and applies the session defaults again);
// kUnavailable if that fails. OK if it is fine.
Status ReconnectIfBroken(PGconn* conn);

// Creates the barrier table `dtx_barrier` and its index if they do not exist, serialised across
// connections by an advisory lock. REQUIRES: conn is not inside a transaction.
Status EnsureBarrierSchema(PGconn* conn);

// INSERT ... ON CONFLICT (the barrier's unique key) DO NOTHING; true if the row was inserted.
Result<bool> InsertBarrierIgnore(PGconn* conn, const BarrierRow& row);

// The reason of the barrier row with that key, or nullopt.
Result<std::optional<std::string>> BarrierReason(PGconn* conn, std::string_view gid,
                                                 std::string_view branch_id, std::string_view op,
                                                 std::string_view barrier_id);

}  // namespace dtx::sdk::pg_internal
