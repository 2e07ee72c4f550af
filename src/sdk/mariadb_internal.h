// Connection, statement and error helpers shared by the MariaDB barrier store
// (barrier_mariadb.cc) and the MariaDB XA resource (xa_mariadb.cc). Not part of the public API.
//
// Statements are sent over the text protocol: `?` placeholders are replaced by literals built
// with mysql_real_escape_string on the connection (so the escaping follows the connection's
// character set and the server's NO_BACKSLASH_ESCAPES mode), which works for every statement,
// including the XA ones that the prepared-statement protocol refuses. Multi-statement strings are
// not enabled, so "a; b" is a syntax error.
//
// Thread-safety: every function uses its MYSQL* from one thread at a time (the caller's).
#pragma once

#include <mysql.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dtx/barrier.h"

namespace dtx::sdk::mariadb {

struct ConnDeleter {
  void operator()(MYSQL* m) const { mysql_close(m); }
};
using ConnPtr = std::unique_ptr<MYSQL, ConnDeleter>;

// Opens a connection with the options' timeouts, character set utf8mb4, no automatic reconnect,
// READ COMMITTED as the session's isolation level and innodb_lock_wait_timeout set to two thirds
// of read_timeout_s (1..10 s), so that a lock wait ends with kUnavailable before the read
// timeout would drop the connection. Errors: kUnavailable if the server cannot be reached or
// refuses connections (too many, shutting down), kFailedPrecondition for access denied or an
// unknown database, other mapped errors.
Result<ConnPtr> Connect(const MariaDbOptions& options);

// Maps a server or client error number (with the SQLSTATE, may be empty) to a Status whose
// message is "mariadb: <what>: <message> (error N, SQLSTATE S)".
Status MapError(unsigned error, std::string_view sqlstate, std::string_view message,
                std::string_view what);

// The mapped error of the last call on `conn`.
Status LastError(MYSQL* conn, std::string_view what);

// True for errors after which the connection is unusable (lost, gone, killed).
bool IsConnectionError(unsigned error);

// Replaces each `?` outside string literals, quoted identifiers and comments with the literal of
// the matching value. kInvalidArgument if the counts differ or a double is not finite.
Result<std::string> BindParams(MYSQL* conn, std::string_view sql,
                               const std::vector<SqlValue>& params);

// A single-quoted, escaped string literal for `value`.
std::string Quote(MYSQL* conn, std::string_view value);

// Runs one statement; returns the number of rows it changed (a result set is read and dropped).
Result<int64_t> Exec(MYSQL* conn, std::string_view sql, const std::vector<SqlValue>& params,
                     std::string_view what);

// Runs one statement and returns its rows (integers as int64_t, floating point as double,
// everything else, DECIMAL included, as its text).
Result<std::vector<SqlRow>> Query(MYSQL* conn, std::string_view sql,
                                  const std::vector<SqlValue>& params, std::string_view what);

// Creates dtx_barrier (InnoDB) if it does not exist.
Status EnsureBarrierSchema(MYSQL* conn);

// Inserts `row` unless its key exists; true if inserted. Only a conflict on the barrier key is
// ignored (INSERT ... ON DUPLICATE KEY UPDATE with a no-op update): unlike INSERT IGNORE, a
// value that does not fit stays an error instead of a warning and a truncated row.
// kInvalidArgument if a field is longer than its column.
Result<bool> InsertBarrierIgnore(MYSQL* conn, const BarrierRow& row);

// The reason of the barrier row with that key, or nullopt.
Result<std::optional<std::string>> BarrierReason(MYSQL* conn, std::string_view gid,
                                                 std::string_view branch_id, std::string_view op,
                                                 std::string_view barrier_id);

// A LocalTx on a connection whose transaction the owner started.
// kPlain: the owner ran START TRANSACTION; Commit/Rollback end it, destruction rolls it back.
// kXaBranch: the owner ran XA START and ends the branch itself; Commit/Rollback are refused
// (kFailedPrecondition) and destruction does nothing.
// Either way, a statement that ends the transaction early marks it failed: a deadlock (the server
// rolled the whole transaction back, though the session stays in an explicit transaction), or a
// statement that committed implicitly (DDL and the like) or left no transaction open. That
// statement and every later call return an error, and Commit rolls back what is open and returns
// kUnavailable after a deadlock (retry the call) or kAborted otherwise, so no later statement is
// applied on its own. Other failed statements are rolled back
// alone by the server (MariaDB's rule) and the transaction goes on.
class MariaDbLocalTx : public LocalTx {
 public:
  enum class Mode { kPlain, kXaBranch };

  MariaDbLocalTx(MYSQL* conn, Mode mode) : conn_(conn), mode_(mode) {}
  ~MariaDbLocalTx() override;

  Result<int64_t> Exec(std::string_view sql, const std::vector<SqlValue>& params) override;
  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    const std::vector<SqlValue>& params) override;
  Result<bool> InsertBarrierIgnore(const BarrierRow& row) override;
  Result<std::optional<std::string>> BarrierReason(std::string_view gid, std::string_view branch_id,
                                                   std::string_view op,
                                                   std::string_view barrier_id) override;
  Status Commit() override;
  Status Rollback() override;

  // The error that ended the transaction behind our back, if any.
  const std::optional<Status>& failure() const { return failure_; }

 private:
  Status CheckUsable() const;
  // Records a lost transaction after a statement; returns the status the caller should see.
  Status AfterStatement(Status s);

  MYSQL* conn_;
  Mode mode_;
  bool open_ = true;
  std::optional<Status> failure_;
};

}  // namespace dtx::sdk::mariadb
