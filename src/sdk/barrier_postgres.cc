#include <libpq-fe.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "dtx/barrier.h"
#include "sdk/postgres_internal.h"

namespace dtx::sdk::pg_internal {
namespace {

// Type OIDs from the server catalog (stable across versions).
constexpr Oid kBoolOid = 16;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;

std::string TrimmedMessage(const char* m) {
  std::string s = m != nullptr ? m : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<SqlValue> ToValue(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col)) return SqlValue(nullptr);
  const char* text = PQgetvalue(res, row, col);
  int len = PQgetlength(res, row, col);
  Oid type = PQftype(res, col);
  switch (type) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(text, text + len, v);
      if (ec != std::errc() || p != text + len) {
        return DataLoss("postgres: integer column " + std::to_string(col) + " is '" +
                        std::string(text, len) + "'");
      }
      return SqlValue(v);
    }
    case kBoolOid:
      return SqlValue(static_cast<int64_t>(len == 1 && text[0] == 't'));
    case kFloat4Oid:
    case kFloat8Oid:
      return SqlValue(std::strtod(std::string(text, len).c_str(), nullptr));
    default:
      return SqlValue(std::string(text, len));
  }
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

Status ConnectionError(PGconn* conn, std::string_view what) {
  return Unavailable("postgres: " + std::string(what) + ": " +
                     TrimmedMessage(conn != nullptr ? PQerrorMessage(conn) : "out of memory"));
}

std::string SqlState(const PGresult* res) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr ? state : "";
}

Status PgError(PGconn* conn, const PGresult* res, std::string_view what) {
  if (PQstatus(conn) == CONNECTION_BAD) return ConnectionError(conn, what);
  std::string code = SqlState(res);
  std::string msg =
      "postgres: " + std::string(what) + ": " +
      TrimmedMessage(res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn));
  if (!code.empty()) msg += " (SQLSTATE " + code + ")";
  std::string_view cls = std::string_view(code).substr(0, std::min<size_t>(2, code.size()));
  // 08P01 is also how the server reports a placeholder/value count mismatch: a caller error.
  if (code == "08P01") return InvalidArgument(std::move(msg));
  if (cls == "08" || cls == "57") return Unavailable(std::move(msg));
  // A conflict with another transaction rolled this one back: the same call may succeed when
  // retried, so it is not a business failure (which kAborted would tell a participant).
  if (code == "40001" || code == "40P01" || code == "55P03") {
    return Unavailable(std::move(msg) + "; a transient conflict, retry");
  }
  if (cls == "23") return Aborted(std::move(msg));
  if (cls == "42" || cls == "22") return InvalidArgument(std::move(msg));
  if (cls == "53") return ResourceExhausted(std::move(msg));
  if (cls == "XX") return DataLoss(std::move(msg));
  return Internal(std::move(msg));
}

Result<PgResult> Run(PGconn* conn, std::string_view sql, const std::vector<SqlValue>& params,
                     std::string_view what, std::string* sqlstate) {
  if (sqlstate != nullptr) sqlstate->clear();
  if (params.size() > 65535) return InvalidArgument("postgres: more than 65535 parameters");
  std::string query(sql);
  if (query.find('\0') != std::string::npos) {
    return InvalidArgument("postgres: statement contains a NUL byte");
  }
  std::vector<std::string> texts(params.size());
  std::vector<const char*> values(params.size(), nullptr);
  for (size_t i = 0; i < params.size(); ++i) {
    const SqlValue& v = params[i];
    if (std::holds_alternative<std::nullptr_t>(v)) continue;
    if (auto* n = std::get_if<int64_t>(&v)) {
      texts[i] = std::to_string(*n);
    } else if (auto* d = std::get_if<double>(&v)) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", *d);
      texts[i] = buf;
    } else {
      texts[i] = std::get<std::string>(v);
      // Text-format parameters are NUL-terminated; an embedded NUL would silently truncate.
      if (texts[i].find('\0') != std::string::npos) {
        return InvalidArgument("postgres: parameter $" + std::to_string(i + 1) +
                               " contains a NUL byte");
      }
    }
    values[i] = texts[i].c_str();
  }
  PgResult res(PQexecParams(conn, query.c_str(), static_cast<int>(params.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
  if (res == nullptr) return ConnectionError(conn, what);
  ExecStatusType st = PQresultStatus(res.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (st == PGRES_EMPTY_QUERY) return InvalidArgument("postgres: empty statement");
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      return InvalidArgument("postgres: COPY is not supported through LocalTx");
    }
    if (sqlstate != nullptr) *sqlstate = SqlState(res.get());
    return PgError(conn, res.get(), what);
  }
  return res;
}

int64_t AffectedRows(const PGresult* res) {
  const char* n = PQcmdTuples(const_cast<PGresult*>(res));
  int64_t v = 0;
  if (n == nullptr || *n == '\0') return 0;
  std::from_chars(n, n + std::strlen(n), v);
  return v;
}

Result<std::vector<SqlRow>> Rows(const PGresult* r) {
  std::vector<SqlRow> rows;
  int n = PQntuples(r), cols = PQnfields(r);
  rows.reserve(n);
  for (int i = 0; i < n; ++i) {
    SqlRow row;
    row.reserve(cols);
    for (int c = 0; c < cols; ++c) {
      auto v = ToValue(r, i, c);
      if (!v.ok()) return v.status();
      row.push_back(std::move(*v));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Status ExecSimple(PGconn* conn, const char* sql, std::string_view what) {
  PgResult res(PQexec(conn, sql));
  if (res == nullptr) return ConnectionError(conn, what);
  if (PQresultStatus(res.get()) != PGRES_COMMAND_OK &&
      PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
    Status s = PgError(conn, res.get(), what);
    // A failed multi-statement string leaves its transaction open and aborted; close it.
    if (PQtransactionStatus(conn) == PQTRANS_INERROR) PgResult(PQexec(conn, "ROLLBACK"));
    return s;
  }
  return Status::Ok();
}

namespace {

// Bounds every lock wait of the session unless the connection string or the role already set a
// lock_timeout. Without it a worker waits forever on a row that a prepared XA branch holds, while
// the call that would finish that branch waits for a free worker.
Status ApplySessionDefaults(PGconn* conn) {
  auto current = Run(conn, "SELECT current_setting('lock_timeout')", {}, "session setup");
  if (!current.ok()) return current.status();
  if (std::string_view(PQgetvalue(current->get(), 0, 0)) != "0") return Status::Ok();
  const std::string sql = "SET lock_timeout = '" + std::to_string(kDefaultLockTimeoutMs) + "ms'";
  return ExecSimple(conn, sql.c_str(), "session setup");
}

}  // namespace

Result<PgConn> Connect(const std::string& conninfo) {
  PgConn conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return ConnectionError(conn.get(), "connect");
  }
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
  DTX_RETURN_IF_ERROR(ApplySessionDefaults(conn.get()));
  return conn;
}

Status ReconnectIfBroken(PGconn* conn) {
  if (PQstatus(conn) == CONNECTION_BAD) {
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) return ConnectionError(conn, "reconnect");
    DTX_RETURN_IF_ERROR(ApplySessionDefaults(conn));
  }
  return Status::Ok();
}

namespace {

Result<bool> BarrierSchemaExists(PGconn* conn) {
  auto exists = Run(conn,
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname = current_schema() AND c.relname IN "
                    "('dtx_barrier', 'dtx_barrier_create_time')",
                    {}, "check barrier schema");
  if (!exists.ok()) return exists.status();
  return std::string_view(PQgetvalue(exists->get(), 0, 0)) == "2";
}

}  // namespace

Status EnsureBarrierSchema(PGconn* conn) {
  // CREATE INDEX IF NOT EXISTS locks the table before it finds the index, and would wait for
  // every prepared XA branch holding barrier rows: a participant restarting to recover its
  // in-doubt branches would hang, and every insert queued behind that lock with it. A catalog
  // read takes no such lock, so the DDL runs only while the table does not exist.
  auto exists = BarrierSchemaExists(conn);
  if (!exists.ok()) return exists.status();
  if (*exists) return Status::Ok();
  // Two first starts at once would race inside CREATE TABLE IF NOT EXISTS (a unique violation
  // on the catalog); the advisory lock serialises them. The check is repeated under the lock:
  // the connection that lost the race must not run the DDL against the winner's table, which
  // may already hold a prepared branch's rows.
  DTX_RETURN_IF_ERROR(
      ExecSimple(conn, "BEGIN; SELECT pg_advisory_xact_lock(7424616839)", "lock barrier schema"));
  exists = BarrierSchemaExists(conn);
  if (!exists.ok() || *exists) {
    (void)ExecSimple(conn, "ROLLBACK", "unlock barrier schema");
    return exists.ok() ? Status::Ok() : exists.status();
  }
  Status created = ExecSimple(conn,
                              "CREATE TABLE IF NOT EXISTS dtx_barrier ("
                              " id bigserial PRIMARY KEY,"
                              " trans_type text NOT NULL DEFAULT '',"
                              " gid text NOT NULL DEFAULT '',"
                              " branch_id text NOT NULL DEFAULT '',"
                              " op text NOT NULL DEFAULT '',"
                              " barrier_id text NOT NULL DEFAULT '',"
                              " reason text NOT NULL DEFAULT '',"
                              " create_time timestamptz NOT NULL DEFAULT now(),"
                              " UNIQUE (gid, branch_id, op, barrier_id));"
                              "CREATE INDEX IF NOT EXISTS dtx_barrier_create_time"
                              " ON dtx_barrier(create_time);"
                              "COMMIT;",
                              "create barrier schema");
  if (!created.ok()) (void)ExecSimple(conn, "ROLLBACK", "abandon barrier schema");
  return created;
}

Result<bool> InsertBarrierIgnore(PGconn* conn, const BarrierRow& row) {
  // ON CONFLICT on the unique key only: any other constraint failure stays an error.
  auto res = Run(conn,
                 "INSERT INTO dtx_barrier(trans_type, gid, branch_id, op, barrier_id, reason) "
                 "VALUES ($1, $2, $3, $4, $5, $6) "
                 "ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING",
                 {row.trans_type, row.gid, row.branch_id, row.op, row.barrier_id, row.reason},
                 "insert barrier");
  if (!res.ok()) return res.status();
  return AffectedRows(res->get()) == 1;
}

Result<std::optional<std::string>> BarrierReason(PGconn* conn, std::string_view gid,
                                                 std::string_view branch_id, std::string_view op,
                                                 std::string_view barrier_id) {
  auto res =
      Run(conn,
          "SELECT reason FROM dtx_barrier WHERE gid = $1 AND branch_id = $2 AND "
          "op = $3 AND barrier_id = $4",
          {std::string(gid), std::string(branch_id), std::string(op), std::string(barrier_id)},
          "barrier reason");
  if (!res.ok()) return res.status();
  if (PQntuples(res->get()) == 0) return std::optional<std::string>();
  return std::optional<std::string>(PQgetvalue(res->get(), 0, 0));
}

}  // namespace dtx::sdk::pg_internal

namespace dtx::sdk {
namespace {

using pg_internal::AffectedRows;
using pg_internal::ExecSimple;
using pg_internal::PgError;
using pg_internal::PgResult;
using pg_internal::Run;

class PostgresLocalTx : public LocalTx {
 public:
  explicit PostgresLocalTx(PGconn* conn) : conn_(conn) {}
  ~PostgresLocalTx() override {
    if (open_) (void)Rollback();
  }

  Result<int64_t> Exec(std::string_view sql, const std::vector<SqlValue>& params) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    auto res = Run(conn_, sql, params, "exec");
    if (!res.ok()) return res.status();
    return AffectedRows(res->get());
  }

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    const std::vector<SqlValue>& params) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    auto res = Run(conn_, sql, params, "query");
    if (!res.ok()) return res.status();
    return pg_internal::Rows(res->get());
  }

  Result<bool> InsertBarrierIgnore(const BarrierRow& row) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    return pg_internal::InsertBarrierIgnore(conn_, row);
  }

  Result<std::optional<std::string>> BarrierReason(std::string_view gid, std::string_view branch_id,
                                                   std::string_view op,
                                                   std::string_view barrier_id) override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    return pg_internal::BarrierReason(conn_, gid, branch_id, op, barrier_id);
  }

  Status Commit() override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    open_ = false;
    PgResult res(PQexec(conn_, "COMMIT"));
    if (res == nullptr) return pg_internal::ConnectionError(conn_, "commit");
    if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) return PgError(conn_, res.get(), "commit");
    // The server answers COMMIT of a failed transaction with ROLLBACK and no error.
    if (std::string_view(PQcmdStatus(res.get())) != "COMMIT") {
      return Aborted("postgres: commit: the transaction had failed and was rolled back");
    }
    return Status::Ok();
  }

  Status Rollback() override {
    DTX_RETURN_IF_ERROR(CheckOpen());
    open_ = false;
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return Status::Ok();
    return ExecSimple(conn_, "ROLLBACK", "rollback");
  }

 private:
  Status CheckOpen() const {
    if (!open_) return FailedPrecondition("postgres: local transaction already finished");
    return Status::Ok();
  }

  PGconn* conn_;
  bool open_ = true;
};

}  // namespace

Result<std::unique_ptr<PostgresBarrierStore>> PostgresBarrierStore::Open(
    const std::string& conninfo) {
  auto conn = pg_internal::Connect(conninfo);
  if (!conn.ok()) return conn.status();
  std::unique_ptr<PostgresBarrierStore> store(
      new PostgresBarrierStore(conn->release(), /*owned=*/true));
  DTX_RETURN_IF_ERROR(store->EnsureSchema());
  return store;
}

std::unique_ptr<PostgresBarrierStore> PostgresBarrierStore::Borrow(pg_conn* conn) {
  return std::unique_ptr<PostgresBarrierStore>(new PostgresBarrierStore(conn, /*owned=*/false));
}

PostgresBarrierStore::~PostgresBarrierStore() {
  if (owned_) PQfinish(conn_);
}

Status PostgresBarrierStore::EnsureSchema() { return pg_internal::EnsureBarrierSchema(conn_); }

Result<std::unique_ptr<LocalTx>> PostgresBarrierStore::Begin() {
  DTX_RETURN_IF_ERROR(pg_internal::ReconnectIfBroken(conn_));
  if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    return FailedPrecondition("postgres: begin: the connection is already inside a transaction");
  }
  DTX_RETURN_IF_ERROR(ExecSimple(conn_, "BEGIN ISOLATION LEVEL READ COMMITTED", "begin"));
  return std::unique_ptr<LocalTx>(new PostgresLocalTx(conn_));
}

Result<size_t> PostgresBarrierStore::PurgeOlderThan(int64_t older_than_seconds) {
  if (older_than_seconds < 0) return InvalidArgument("postgres: purge age must be >= 0");
  auto res = Run(conn_,
                 "DELETE FROM dtx_barrier WHERE create_time < now() - $1::bigint * "
                 "interval '1 second'",
                 {older_than_seconds}, "purge");
  if (!res.ok()) return res.status();
  return static_cast<size_t>(AffectedRows(res->get()));
}

}  // namespace dtx::sdk
