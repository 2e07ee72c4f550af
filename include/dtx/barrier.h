// The sub-transaction barrier of the dtx C++ SDK (DTM-compatible).
//
// A participant service wraps each branch call (saga action/compensate, tcc try/confirm/cancel, xa
// or workflow rollback) in Barrier::Call. Inside ONE local database transaction the barrier
// inserts-ignore rows into the table `dtx_barrier` (unique key gid, branch_id, op, barrier_id) and
// then runs the business code in that same transaction, which makes the three classic anomalies
// harmless:
//   - empty compensation: cancel/compensate/rollback arrives and its try/action never ran. The
//     barrier records it and answers OK without running the business.
//   - duplicate delivery: a second call of the same op answers OK without running the business.
//   - hanging: a try/action arriving after its cancel/compensate ran is refused (kAborted) without
//     running the business.
//
// Two-phase messages: the application runs its local transaction through CallMsgLocal, and the
// coordinator's check-back (`query_prepared`) is answered by QueryPrepared. Both insert the same
// row (gid, "00", "msg", "01"), so exactly one of them wins: a FAILURE answer guarantees that a
// later local commit of that gid is refused.
//
// Backends implement BarrierStore/LocalTx; SQLite ships here (SqliteBarrierStore), PostgreSQL and
// MariaDB implement the same interface.
//
// Errors are Status values; no exception escapes this API (an exception thrown by business code is
// caught, the local transaction rolled back, and kInternal returned).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dtx/status.h"

struct sqlite3;

namespace dtx::sdk {

// Operation and transaction-type names as DTM sends them.
inline constexpr std::string_view kOpAction = "action";
inline constexpr std::string_view kOpCompensate = "compensate";
inline constexpr std::string_view kOpTry = "try";
inline constexpr std::string_view kOpConfirm = "confirm";
inline constexpr std::string_view kOpCancel = "cancel";
inline constexpr std::string_view kOpCommit = "commit";
inline constexpr std::string_view kOpRollback = "rollback";
inline constexpr std::string_view kOpMsg = "msg";

inline constexpr std::string_view kTransSaga = "saga";
inline constexpr std::string_view kTransTcc = "tcc";
inline constexpr std::string_view kTransMsg = "msg";
inline constexpr std::string_view kTransXa = "xa";
inline constexpr std::string_view kTransWorkflow = "workflow";

// The row key of the barrier for a two-phase message's local transaction.
inline constexpr std::string_view kMsgBranchId = "00";
inline constexpr std::string_view kMsgBarrierId = "01";

// Limits applied by FromQuery (DTM's gid limit is 128 bytes).
inline constexpr size_t kMaxGidLength = 128;
inline constexpr size_t kMaxBranchIdLength = 128;

// The identity of one incoming branch call.
struct BranchCallInfo {
  std::string trans_type;
  std::string gid;
  std::string branch_id;
  std::string op;

  // Parses DTM's query parameters `trans_type`, `gid`, `branch_id`, `op` (other keys, such as
  // `dtm`, are ignored). Errors (kInvalidArgument, naming the parameter): a missing or empty
  // value, a parameter given twice, a value longer than its limit or holding control characters,
  // an unknown trans_type or op, or an op that the trans_type never sends (e.g. saga + try).
  static Result<BranchCallInfo> FromQuery(
      const std::vector<std::pair<std::string, std::string>>& query);

  bool operator==(const BranchCallInfo&) const = default;
};

// The op whose row a compensation inserts first: cancel -> try, compensate/rollback -> action.
// Empty for every other op (they have no origin).
std::string_view OriginOp(std::string_view op);

// One SQL parameter or result value.
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;
using SqlRow = std::vector<SqlValue>;

// The key and payload of one barrier row.
struct BarrierRow {
  std::string trans_type;
  std::string gid;
  std::string branch_id;
  std::string op;
  std::string barrier_id;
  std::string reason;
};

// One open local database transaction.
// Created by BarrierStore::Begin. Destroying it while still open rolls it back.
// REQUIRES: it does not outlive the store that began it.
// Thread-safety: not thread-safe; use from one thread at a time.
class LocalTx {
 public:
  virtual ~LocalTx() = default;

  // Runs one statement with `params` bound to its placeholders (the backend's placeholder syntax:
  // `?` for SQLite and MariaDB, `$1` for PostgreSQL). Returns the number of rows changed.
  virtual Result<int64_t> Exec(std::string_view sql, const std::vector<SqlValue>& params = {}) = 0;

  // Runs one query and returns all rows (bounded by what the caller selects).
  virtual Result<std::vector<SqlRow>> Query(std::string_view sql,
                                            const std::vector<SqlValue>& params = {}) = 0;

  // Inserts `row` unless a row with the same (gid, branch_id, op, barrier_id) exists.
  // Returns true if the row was inserted. Used by Barrier; applications need not call it.
  virtual Result<bool> InsertBarrierIgnore(const BarrierRow& row) = 0;

  // The `reason` of the row with that key, or nullopt if there is none.
  virtual Result<std::optional<std::string>> BarrierReason(std::string_view gid,
                                                           std::string_view branch_id,
                                                           std::string_view op,
                                                           std::string_view barrier_id) = 0;

  // Ends the transaction. After either call (whatever its result) the transaction is closed and
  // no further call but the destructor is allowed. A failed Commit leaves nothing applied.
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;
};

// A database that holds the barrier table next to the business tables.
// Thread-safety: defined by the implementation (SqliteBarrierStore: one thread at a time).
class BarrierStore {
 public:
  virtual ~BarrierStore() = default;

  // Creates the barrier table and its indexes if they do not exist. Idempotent.
  virtual Status EnsureSchema() = 0;

  // Starts a local transaction that takes the write lock it needs (SQLite: BEGIN IMMEDIATE).
  // kUnavailable if the database is busy past its timeout; retrying may succeed.
  virtual Result<std::unique_ptr<LocalTx>> Begin() = 0;

  // Deletes barrier rows whose create_time (written by the database's own clock) is older than
  // `older_than_seconds` by that same clock. Returns the number of rows deleted.
  // REQUIRES: older_than_seconds >= 0 (checked by PurgeBarriers).
  virtual Result<size_t> PurgeOlderThan(int64_t older_than_seconds) = 0;
};

// Business code run inside the barrier's local transaction. Return OK to commit.
using BusinessFn = std::function<Status(LocalTx&)>;

// The barrier of one incoming branch call. Create one per call (DTM's semantics: the barrier_id
// counter restarts at 1 for each call and advances with each Call on this object, so a handler
// that makes two barrier-protected steps in one branch call gets rows "01" and "02").
// Thread-safety: not thread-safe.
class Barrier {
 public:
  explicit Barrier(BranchCallInfo info) : info_(std::move(info)) {}

  const BranchCallInfo& info() const { return info_; }

  // Runs `business` at most once per (gid, branch_id, op, barrier_id) inside one local
  // transaction of `store`:
  //   1. for cancel/compensate/rollback, insert-ignore the origin op's row with reason = op;
  //   2. insert-ignore the current op's row with reason = op;
  //   3. if 1 took effect: empty compensation -> commit, return OK, business not run;
  //      if 2 did not take effect: a hanging try/action (its row was written by a compensation)
  //      -> kAborted, business not run; otherwise a duplicate -> OK, business not run;
  //   4. otherwise run business; commit if it returns OK, else roll back (the barrier rows go
  //      too, so a retry runs the business again) and return its status.
  // Errors from the store are returned as is (kUnavailable when busy: retry the call).
  Status Call(BarrierStore& store, const BusinessFn& business);

 private:
  std::string NextBarrierId();

  BranchCallInfo info_;
  int barrier_counter_ = 0;
};

// Runs the local transaction of the two-phase message `gid` (the "Do" of DoAndSubmit): inserts
// the row (gid, "00", "msg", "01") first, then runs `business` in the same transaction, and commits
// if it returns OK. Errors: kAborted if QueryPrepared already answered FAILURE for gid (the
// message is rolled back; nothing is applied), kAlreadyExists if the local transaction of gid
// already committed; business errors are returned as is after a rollback.
Status CallMsgLocal(BarrierStore& store, std::string_view gid, const BusinessFn& business);

// Answers the coordinator's `query_prepared` check-back for the two-phase message `gid`.
// OK: the local transaction committed (answer SUCCESS). kAborted: it never committed, and from
// now on it never will (answer FAILURE). Any other error: the answer is unknown (answer ONGOING
// or let the coordinator retry).
Status QueryPrepared(BarrierStore& store, std::string_view gid);

// Removes barrier rows older than `older_than_seconds` by the database's clock. Run it
// periodically with an age well above the longest global transaction (e.g. 7 days).
// kInvalidArgument if older_than_seconds < 0.
Result<size_t> PurgeBarriers(BarrierStore& store, int64_t older_than_seconds);

// SQLite backend.
struct SqliteOptions {
  // How long a writer waits for another connection's lock before kUnavailable.
  int busy_timeout_ms = 5000;
  // Switches a file database to WAL journaling (readers do not block the writer).
  bool wal = true;
};

// A BarrierStore over one SQLite connection.
// Thread-safety: one thread at a time per object; open one object per thread for concurrency
// (SQLite serialises writers; BEGIN IMMEDIATE makes the wait happen at Begin).
class SqliteBarrierStore : public BarrierStore {
 public:
  // Opens (creating if needed) the database at `path` (":memory:" for a private in-memory one)
  // and ensures the barrier schema. Errors: kUnavailable/kFailedPrecondition if it cannot be
  // opened, other mapped SQLite errors.
  static Result<std::unique_ptr<SqliteBarrierStore>> Open(const std::string& path,
                                                          const SqliteOptions& options = {});

  // Uses an existing connection that the caller keeps open for this object's lifetime; does not
  // create the schema (call EnsureSchema). REQUIRES: db != nullptr.
  static std::unique_ptr<SqliteBarrierStore> Borrow(sqlite3* db);

  ~SqliteBarrierStore() override;
  SqliteBarrierStore(const SqliteBarrierStore&) = delete;
  SqliteBarrierStore& operator=(const SqliteBarrierStore&) = delete;

  Status EnsureSchema() override;
  Result<std::unique_ptr<LocalTx>> Begin() override;
  Result<size_t> PurgeOlderThan(int64_t older_than_seconds) override;

  // The underlying connection (for business code that needs the raw API).
  sqlite3* handle() const { return db_; }

 private:
  SqliteBarrierStore(sqlite3* db, bool owned) : db_(db), owned_(owned) {}

  sqlite3* db_;
  bool owned_;
};

}  // namespace dtx::sdk

// PostgreSQL backend (libpq, synchronous).
struct pg_conn;  // libpq's PGconn.

namespace dtx::sdk {

// A BarrierStore over one PostgreSQL connection. Unless the connection string or the role sets
// a lock_timeout, the session gets 10 s, so a lock wait ends with kUnavailable (retry) rather than
// blocking forever on a row a prepared XA branch holds. Local transactions run at READ COMMITTED
// (whatever the server default), which the barrier needs: an INSERT ... ON CONFLICT DO NOTHING
// that meets a concurrent uncommitted row waits for it, and the following SELECT sees it.
// SQL uses $1, $2, ... placeholders; values are sent as text and typed by the server. Errors:
// connection failures kUnavailable (Begin reconnects a broken connection once), serialization
// failures, deadlocks and lock timeouts kUnavailable (a transient conflict: retrying the call may
// succeed; a participant answers "retry", not FAILURE), integrity-constraint violations kAborted
// (as SQLite), syntax
// errors, unknown names, bad values and placeholder/value count mismatches kInvalidArgument,
// anything else kInternal; the message carries the server's message and SQLSTATE. A COMMIT that
// the server turns into a rollback (the transaction had failed) is kAborted.
// Thread-safety: one thread at a time per object; open one object per thread for concurrency.
class PostgresBarrierStore : public BarrierStore {
 public:
  // Connects with the libpq connection string `conninfo` (key=value or URI; put
  // connect_timeout in it to bound the connect) and ensures the barrier schema in the first
  // schema of the connection's search_path. Errors: kUnavailable if the server cannot be
  // reached or refuses the connection, other mapped errors from EnsureSchema.
  static Result<std::unique_ptr<PostgresBarrierStore>> Open(const std::string& conninfo);

  // Uses an existing connection that the caller keeps open (and does not use concurrently) for
  // this object's lifetime; does not create the schema (call EnsureSchema).
  // REQUIRES: conn != nullptr and not inside a transaction.
  static std::unique_ptr<PostgresBarrierStore> Borrow(pg_conn* conn);

  ~PostgresBarrierStore() override;
  PostgresBarrierStore(const PostgresBarrierStore&) = delete;
  PostgresBarrierStore& operator=(const PostgresBarrierStore&) = delete;

  // Serialised across connections by an advisory lock, so concurrent first starts do not race.
  Status EnsureSchema() override;
  // BEGIN ISOLATION LEVEL READ COMMITTED. kUnavailable if the connection is down and a reconnect
  // fails.
  Result<std::unique_ptr<LocalTx>> Begin() override;
  // The cutoff is now() - interval on the server.
  Result<size_t> PurgeOlderThan(int64_t older_than_seconds) override;

  // The underlying connection (for business code that needs the raw API).
  pg_conn* handle() const { return conn_; }

 private:
  PostgresBarrierStore(pg_conn* conn, bool owned) : conn_(conn), owned_(owned) {}

  pg_conn* conn_;
  bool owned_;
};

}  // namespace dtx::sdk

// MariaDB / MySQL backend (libmariadb, synchronous).
struct st_mysql;  // libmariadb's MYSQL.

namespace dtx::sdk {

// Where and how to connect to MariaDB.
struct MariaDbOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 3306;
  std::string unix_socket;  // used instead of host/port when not empty
  std::string user = "root";
  std::string password;
  std::string database;  // required
  int connect_timeout_s = 5;
  int read_timeout_s = 30;  // bounds every statement's wait for an answer
  int write_timeout_s = 30;

  // Parses a libpq-style "key=value key=value" string with the keys host, port, socket, user,
  // password, dbname, connect_timeout, read_timeout, write_timeout (seconds, 1..86400). A value
  // may be quoted as in libpq ('a b', with \' and \\ inside); a key given twice takes its last
  // value; keys not given keep the defaults above. Errors (kInvalidArgument naming the key): an
  // unknown key, a key without '=', an unterminated quote, a bad number, a missing or empty
  // dbname, an empty user, an empty host without a socket. Example:
  //   "host=127.0.0.1 port=3306 user=root dbname=dtx_test"
  static Result<MariaDbOptions> Parse(std::string_view dsn);
};

// A BarrierStore over one MariaDB connection (InnoDB tables; MySQL works the same way). The
// session runs at READ COMMITTED so that the barrier's SELECT after its insert-ignore sees a row
// committed by a concurrent call, and its innodb_lock_wait_timeout is two thirds of
// read_timeout_s, at most 10 s, so a lock wait ends with kUnavailable before the read timeout
// drops the connection (and a worker never waits long on a row a prepared XA branch holds).
// SQL uses `?` placeholders (values are sent as escaped literals; a `?` inside a quoted literal or
// a comment is text). The barrier table stores create_time as TIMESTAMP(6) (UTC, so purging does
// not depend on session time zones). Errors: connection lost, refused or too many connections
// kUnavailable (Begin reconnects a broken connection once), access denied and unknown database
// kFailedPrecondition, deadlock and lock-wait timeout kUnavailable (retry the call), integrity-
// constraint violations
// (duplicate key, CHECK) kAborted, syntax errors, unknown names, bad values and placeholder/value
// count mismatches kInvalidArgument, anything else kInternal; messages carry the server's message,
// error number and SQLSTATE.
// Unlike PostgreSQL, a failed statement is rolled back alone and the transaction goes on. A
// deadlock rolls back the whole transaction, and a statement that commits implicitly (DDL) ends
// it: after either, every further call of that LocalTx fails and Commit returns kUnavailable
// (deadlock: retry the call) or kAborted (implicit commit).
// Thread-safety: one thread at a time per object; open one object per thread for concurrency.
class MariaDbBarrierStore : public BarrierStore {
 public:
  // Connects and ensures the barrier schema. kUnavailable if the server cannot be reached,
  // kFailedPrecondition if it refuses the user or does not have the database.
  static Result<std::unique_ptr<MariaDbBarrierStore>> Open(const MariaDbOptions& options);

  ~MariaDbBarrierStore() override;
  MariaDbBarrierStore(const MariaDbBarrierStore&) = delete;
  MariaDbBarrierStore& operator=(const MariaDbBarrierStore&) = delete;

  // CREATE TABLE IF NOT EXISTS (safe when several processes start at once).
  Status EnsureSchema() override;
  // START TRANSACTION. If the connection broke since its last use (server restart, KILL, idle
  // timeout), reconnects once first; kUnavailable if that fails.
  // REQUIRES: no LocalTx of this store is alive (a reconnect replaces the connection).
  Result<std::unique_ptr<LocalTx>> Begin() override;
  // The cutoff is CURRENT_TIMESTAMP(6) - INTERVAL on the server.
  Result<size_t> PurgeOlderThan(int64_t older_than_seconds) override;

  // The underlying connection (for business code that needs the raw API). Begin may replace it
  // after a reconnect.
  st_mysql* handle() const { return conn_; }

 private:
  MariaDbBarrierStore(st_mysql* conn, MariaDbOptions options)
      : conn_(conn), options_(std::move(options)) {}

  st_mysql* conn_;
  MariaDbOptions options_;
};

}  // namespace dtx::sdk
