#include <sqlite3.h>

#include <limits>

#include "dtx/barrier.h"

namespace dtx::sdk {
namespace {

Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string msg = "sqlite: " + std::string(what) + ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  msg += " (" + std::to_string(rc) + ")";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(std::move(msg));
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return FailedPrecondition(std::move(msg));
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return ResourceExhausted(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLoss(std::move(msg));
    case SQLITE_CONSTRAINT:
      return Aborted(std::move(msg));
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return InvalidArgument(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status Prepare(sqlite3* db, std::string_view sql, const std::vector<SqlValue>& params) {
    if (sql.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
      return InvalidArgument("sqlite: statement too long");
    }
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, &tail);
    if (rc != SQLITE_OK) return SqliteError(db, rc, "prepare");
    if (stmt_ == nullptr) return InvalidArgument("sqlite: empty statement");
    if (tail != nullptr && tail != sql.data() + sql.size() &&
        std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos) {
      return InvalidArgument("sqlite: more than one statement in one call");
    }
    if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(stmt_)) {
      return InvalidArgument("sqlite: statement has " +
                             std::to_string(sqlite3_bind_parameter_count(stmt_)) +
                             " placeholders, got " + std::to_string(params.size()) + " values");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i) + 1;
      const SqlValue& v = params[i];
      if (std::holds_alternative<std::nullptr_t>(v)) {
        rc = sqlite3_bind_null(stmt_, idx);
      } else if (auto* n = std::get_if<int64_t>(&v)) {
        rc = sqlite3_bind_int64(stmt_, idx, *n);
      } else if (auto* d = std::get_if<double>(&v)) {
        rc = sqlite3_bind_double(stmt_, idx, *d);
      } else {
        const auto& s = std::get<std::string>(v);
        rc = sqlite3_bind_text64(stmt_, idx, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      }
      if (rc != SQLITE_OK) return SqliteError(db, rc, "bind");
    }
    return Status::Ok();
  }

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

Result<int64_t> ExecOn(sqlite3* db, std::string_view sql, const std::vector<SqlValue>& params) {
  Stmt stmt;
  DTX_RETURN_IF_ERROR(stmt.Prepare(db, sql, params));
  // Bounded: a statement that yields rows is run to completion, one step per row it returns.
  for (;;) {
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "exec");
  }
  return static_cast<int64_t>(sqlite3_changes64(db));
}

Result<std::vector<SqlRow>> QueryOn(sqlite3* db, std::string_view sql,
                                    const std::vector<SqlValue>& params) {
  Stmt stmt;
  DTX_RETURN_IF_ERROR(stmt.Prepare(db, sql, params));
  std::vector<SqlRow> rows;
  for (;;) {
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "query");
    int n = sqlite3_column_count(stmt.get());
    SqlRow row;
    row.reserve(n);
    for (int i = 0; i < n; ++i) {
      switch (sqlite3_column_type(stmt.get(), i)) {
        case SQLITE_NULL:
          row.emplace_back(nullptr);
          break;
        case SQLITE_INTEGER:
          row.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt.get(), i)));
          break;
        case SQLITE_FLOAT:
          row.emplace_back(sqlite3_column_double(stmt.get(), i));
          break;
        default: {
          const auto* text = sqlite3_column_text(stmt.get(), i);
          int len = sqlite3_column_bytes(stmt.get(), i);
          row.emplace_back(text == nullptr ? std::string()
                                           : std::string(reinterpret_cast<const char*>(text), len));
        }
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Status ExecPlain(sqlite3* db, const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return Status::Ok();
}

class SqliteLocalTx : public LocalTx {
 public:
  explicit SqliteLocalTx(sqlite3* db) : db_(db) {}
  ~SqliteLocalTx() override {
    if (open_) (void)Rollback();
  }

  Result<int64_t> Exec(std::string_view sql, const std::vector<SqlValue>& params) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    return ExecOn(db_, sql, params);
  }

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    const std::vector<SqlValue>& params) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    return QueryOn(db_, sql, params);
  }

  Result<bool> InsertBarrierIgnore(const BarrierRow& row) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    // ON CONFLICT on the unique key only: any other constraint failure stays an error.
    auto changed =
        ExecOn(db_,
               "INSERT INTO dtx_barrier(trans_type, gid, branch_id, op, barrier_id, "
               "reason) VALUES (?, ?, ?, ?, ?, ?) "
               "ON CONFLICT(gid, branch_id, op, barrier_id) DO NOTHING",
               {row.trans_type, row.gid, row.branch_id, row.op, row.barrier_id, row.reason});
    if (!changed.ok()) return changed.status();
    return *changed == 1;
  }

  Result<std::optional<std::string>> BarrierReason(std::string_view gid, std::string_view branch_id,
                                                   std::string_view op,
                                                   std::string_view barrier_id) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    auto rows = QueryOn(
        db_,
        "SELECT reason FROM dtx_barrier WHERE gid = ? AND branch_id = ? AND "
        "op = ? AND barrier_id = ?",
        {std::string(gid), std::string(branch_id), std::string(op), std::string(barrier_id)});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return std::optional<std::string>();
    const auto* reason = std::get_if<std::string>(&(*rows)[0][0]);
    if (reason == nullptr) return DataLoss("sqlite: dtx_barrier.reason is not text");
    return std::optional<std::string>(*reason);
  }

  Status Commit() override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    open_ = false;
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return Status::Ok();
    Status s = SqliteError(db_, rc, "commit");
    // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); close it so nothing
    // of it is applied later by accident.
    if (sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    return s;
  }

  Status Rollback() override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    open_ = false;
    // SQLite may already have rolled back on some errors; then there is nothing to do.
    if (sqlite3_get_autocommit(db_) != 0) return Status::Ok();
    return ExecPlain(db_, "ROLLBACK", "rollback");
  }

 private:
  Status CheckOpen() const {
    if (!open_) return FailedPrecondition("sqlite: local transaction already finished");
    return Status::Ok();
  }

  sqlite3* db_;
  bool open_ = true;
};

}  // namespace

Result<std::unique_ptr<SqliteBarrierStore>> SqliteBarrierStore::Open(const std::string& path,
                                                                     const SqliteOptions& options) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteError(db, rc, "open '" + path + "'");
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<SqliteBarrierStore> store(new SqliteBarrierStore(db, /*owned=*/true));
  rc = sqlite3_busy_timeout(db, options.busy_timeout_ms);
  if (rc != SQLITE_OK) return SqliteError(db, rc, "busy_timeout");
  if (options.wal && path != ":memory:" && !path.empty()) {
    DTX_RETURN_IF_ERROR(ExecPlain(db, "PRAGMA journal_mode=WAL", "journal_mode"));
  }
  DTX_RETURN_IF_ERROR(store->EnsureSchema());
  return store;
}

std::unique_ptr<SqliteBarrierStore> SqliteBarrierStore::Borrow(sqlite3* db) {
  return std::unique_ptr<SqliteBarrierStore>(new SqliteBarrierStore(db, /*owned=*/false));
}

SqliteBarrierStore::~SqliteBarrierStore() {
  if (owned_) sqlite3_close(db_);
}

Status SqliteBarrierStore::EnsureSchema() {
  return ExecPlain(db_,
                   "CREATE TABLE IF NOT EXISTS dtx_barrier ("
                   " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " trans_type TEXT NOT NULL DEFAULT '',"
                   " gid TEXT NOT NULL DEFAULT '',"
                   " branch_id TEXT NOT NULL DEFAULT '',"
                   " op TEXT NOT NULL DEFAULT '',"
                   " barrier_id TEXT NOT NULL DEFAULT '',"
                   " reason TEXT NOT NULL DEFAULT '',"
                   " create_time TEXT NOT NULL DEFAULT (datetime('now')),"
                   " UNIQUE (gid, branch_id, op, barrier_id));"
                   "CREATE INDEX IF NOT EXISTS dtx_barrier_create_time"
                   " ON dtx_barrier(create_time);",
                   "create barrier schema");
}

Result<std::unique_ptr<LocalTx>> SqliteBarrierStore::Begin() {
  // IMMEDIATE takes the write lock now, so a busy database fails here (kUnavailable) rather than
  // in the middle of the barrier inserts.
  DTX_RETURN_IF_ERROR(ExecPlain(db_, "BEGIN IMMEDIATE", "begin"));
  return std::unique_ptr<LocalTx>(new SqliteLocalTx(db_));
}

Result<size_t> SqliteBarrierStore::PurgeOlderThan(int64_t older_than_seconds) {
  if (older_than_seconds < 0) return InvalidArgument("sqlite: purge age must be >= 0");
  // The cutoff is computed by SQLite's clock, the same clock that wrote create_time.
  auto changed = ExecOn(db_,
                        "DELETE FROM dtx_barrier WHERE create_time < datetime('now', "
                        "'-' || ? || ' seconds')",
                        {older_than_seconds});
  if (!changed.ok()) return changed.status();
  return static_cast<size_t>(*changed);
}

}  // namespace dtx::sdk
