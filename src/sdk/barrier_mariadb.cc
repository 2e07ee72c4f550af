#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "dtx/barrier.h"
#include "sdk/mariadb_internal.h"

namespace dtx::sdk {
namespace mariadb {
namespace {

// Column sizes of dtx_barrier, in characters (checked in bytes, which is stricter).
constexpr size_t kGidColumn = 128;
constexpr size_t kBranchIdColumn = 128;
constexpr size_t kShortColumn = 45;

struct ResultDeleter {
  void operator()(MYSQL_RES* r) const { mysql_free_result(r); }
};
using ResPtr = std::unique_ptr<MYSQL_RES, ResultDeleter>;

Result<ResPtr> Run(MYSQL* conn, std::string_view sql, const std::vector<SqlValue>& params,
                   std::string_view what) {
  auto text = BindParams(conn, sql, params);
  if (!text.ok()) return text.status();
  if (text->find_first_not_of(" \t\r\n") == std::string::npos) {
    return InvalidArgument("mariadb: " + std::string(what) + ": empty statement");
  }
  if (mysql_real_query(conn, text->data(), text->size()) != 0) return LastError(conn, what);
  ResPtr res(mysql_store_result(conn));
  if (res == nullptr && mysql_field_count(conn) != 0) return LastError(conn, what);
  return res;
}

Result<SqlValue> ToValue(const MYSQL_FIELD& field, const char* text, unsigned long len, int col) {
  if (text == nullptr) return SqlValue(nullptr);
  switch (field.type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(text, text + len, v);
      if (ec != std::errc() || p != text + len) {
        return DataLoss("mariadb: integer column " + std::to_string(col) + " is '" +
                        std::string(text, len) + "', which does not fit a signed 64-bit integer");
      }
      return SqlValue(v);
    }
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
      return SqlValue(std::strtod(std::string(text, len).c_str(), nullptr));
    default:
      return SqlValue(std::string(text, len));
  }
}

}  // namespace

bool IsConnectionError(unsigned error) {
  switch (error) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_UNKNOWN_HOST:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
      return true;
    default:
      return false;
  }
}

Status MapError(unsigned error, std::string_view sqlstate, std::string_view message,
                std::string_view what) {
  std::string msg = "mariadb: " + std::string(what) + ": " + std::string(message) + " (error " +
                    std::to_string(error);
  if (!sqlstate.empty()) msg += ", SQLSTATE " + std::string(sqlstate);
  msg += ")";
  if (IsConnectionError(error) || error == ER_CON_COUNT_ERROR) return Unavailable(std::move(msg));
  switch (error) {
    // A conflict or a timeout rolled the work back: the same call may succeed when retried, so
    // it is not a business failure (which kAborted would tell a participant).
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
    case ER_LOCK_ABORTED:
    case ER_QUERY_INTERRUPTED:
    case ER_STATEMENT_TIMEOUT:
    case ER_XA_RBROLLBACK:
    case ER_XA_RBTIMEOUT:
    case ER_XA_RBDEADLOCK:
      return Unavailable(std::move(msg) + "; a transient conflict, retry");
    case ER_ACCESS_DENIED_ERROR:
    case ER_BAD_DB_ERROR:
    case ER_OPTION_PREVENTS_STATEMENT:
      return FailedPrecondition(std::move(msg));
    case ER_OUT_OF_RESOURCES:
    case ER_RECORD_FILE_FULL:
      return ResourceExhausted(std::move(msg));
    case ER_EMPTY_QUERY:
      return InvalidArgument(std::move(msg));
    default:
      break;
  }
  if (error >= CR_MIN_ERROR && error <= CR_MAX_ERROR) return Internal(std::move(msg));
  std::string_view cls = sqlstate.substr(0, std::min<size_t>(2, sqlstate.size()));
  if (sqlstate == "40001") return Unavailable(std::move(msg) + "; a transient conflict, retry");
  if (cls == "23") return Aborted(std::move(msg));
  if (cls == "42" || cls == "22" || cls == "21" || cls == "3D") {
    return InvalidArgument(std::move(msg));
  }
  if (cls == "08") return Unavailable(std::move(msg));
  if (cls == "28") return FailedPrecondition(std::move(msg));
  // Data that the server cannot read back (e.g. a corrupt page) is not a retryable condition.
  if (cls == "XX") return DataLoss(std::move(msg));
  return Internal(std::move(msg));
}

Status LastError(MYSQL* conn, std::string_view what) {
  return MapError(mysql_errno(conn), mysql_sqlstate(conn), mysql_error(conn), what);
}

Result<ConnPtr> Connect(const MariaDbOptions& o) {
  ConnPtr conn(mysql_init(nullptr));
  if (conn == nullptr) return ResourceExhausted("mariadb: mysql_init: out of memory");
  unsigned connect_timeout = static_cast<unsigned>(std::max(1, o.connect_timeout_s));
  unsigned read_timeout = static_cast<unsigned>(std::max(1, o.read_timeout_s));
  unsigned write_timeout = static_cast<unsigned>(std::max(1, o.write_timeout_s));
  my_bool no_reconnect = 0;
  mysql_options(conn.get(), MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
  mysql_options(conn.get(), MYSQL_OPT_READ_TIMEOUT, &read_timeout);
  mysql_options(conn.get(), MYSQL_OPT_WRITE_TIMEOUT, &write_timeout);
  mysql_options(conn.get(), MYSQL_OPT_RECONNECT, &no_reconnect);
  mysql_options(conn.get(), MYSQL_SET_CHARSET_NAME, "utf8mb4");
  const bool socket = !o.unix_socket.empty();
  if (socket) {
    unsigned protocol = MYSQL_PROTOCOL_SOCKET;
    mysql_options(conn.get(), MYSQL_OPT_PROTOCOL, &protocol);
  }
  if (mysql_real_connect(conn.get(), socket ? nullptr : o.host.c_str(), o.user.c_str(),
                         o.password.c_str(), o.database.c_str(), socket ? 0 : o.port,
                         socket ? o.unix_socket.c_str() : nullptr, 0) == nullptr) {
    std::string where = socket ? o.unix_socket : o.host + ":" + std::to_string(o.port);
    return LastError(conn.get(), "connect to " + where);
  }
  // Below the read timeout (so a wait ends as an error, not a dropped connection) and at most
  // 10 s: a worker must not wait long on a row that a prepared XA branch holds while the call
  // that would finish that branch waits for a free worker.
  const int lock_wait = std::clamp(std::max(1, o.read_timeout_s) * 2 / 3, 1, 10);
  for (const std::string& sql :
       {std::string("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"),
        "SET SESSION innodb_lock_wait_timeout = " + std::to_string(lock_wait)}) {
    if (mysql_real_query(conn.get(), sql.data(), sql.size()) != 0) {
      return LastError(conn.get(), "session setup");
    }
  }
  return conn;
}

std::string Quote(MYSQL* conn, std::string_view value) {
  std::string out(value.size() * 2 + 3, '\0');
  out[0] = '\'';
  unsigned long n = mysql_real_escape_string(conn, out.data() + 1, value.data(), value.size());
  out.resize(n + 1);
  out.push_back('\'');
  return out;
}

Result<std::string> BindParams(MYSQL* conn, std::string_view sql,
                               const std::vector<SqlValue>& params) {
  const bool backslash_escapes = (conn->server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES) == 0;
  std::string out;
  out.reserve(sql.size() + 16 * params.size());
  size_t used = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'' || c == '"' || c == '`') {
      // Copy the quoted part whole: a '?' inside it is text, not a placeholder.
      size_t j = i + 1;
      while (j < sql.size() && sql[j] != c) {
        j += (backslash_escapes && c != '`' && sql[j] == '\\') ? 2 : 1;
      }
      size_t end = std::min(j + 1, sql.size());
      out.append(sql.substr(i, end - i));
      i = end - 1;
      continue;
    }
    if (c == '#' ||
        (c == '-' && sql.substr(i, 2) == "--" &&
         (i + 2 == sql.size() || std::isspace(static_cast<unsigned char>(sql[i + 2]))))) {
      size_t end = sql.find('\n', i);
      end = end == std::string_view::npos ? sql.size() : end;
      out.append(sql.substr(i, end - i));
      i = end - 1;
      continue;
    }
    if (c == '/' && sql.substr(i, 2) == "/*") {
      size_t end = sql.find("*/", i + 2);
      end = end == std::string_view::npos ? sql.size() : end + 2;
      out.append(sql.substr(i, end - i));
      i = end - 1;
      continue;
    }
    if (c != '?') {
      out.push_back(c);
      continue;
    }
    if (used == params.size()) {
      return InvalidArgument("mariadb: the statement has more '?' placeholders than the " +
                             std::to_string(params.size()) + " values given");
    }
    const SqlValue& v = params[used++];
    if (std::holds_alternative<std::nullptr_t>(v)) {
      out += "NULL";
    } else if (auto* n = std::get_if<int64_t>(&v)) {
      out += std::to_string(*n);
    } else if (auto* d = std::get_if<double>(&v)) {
      if (!std::isfinite(*d)) {
        return InvalidArgument("mariadb: value " + std::to_string(used) + " is not finite");
      }
      // Exponent notation makes the server read a DOUBLE, not a DECIMAL.
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17e", *d);
      out += buf;
    } else {
      out += Quote(conn, std::get<std::string>(v));
    }
  }
  if (used != params.size()) {
    return InvalidArgument("mariadb: the statement has " + std::to_string(used) +
                           " '?' placeholders but " + std::to_string(params.size()) +
                           " values were given");
  }
  return out;
}

Result<int64_t> Exec(MYSQL* conn, std::string_view sql, const std::vector<SqlValue>& params,
                     std::string_view what) {
  auto res = Run(conn, sql, params, what);
  if (!res.ok()) return res.status();
  if (*res != nullptr) return int64_t{0};
  my_ulonglong n = mysql_affected_rows(conn);
  return n == static_cast<my_ulonglong>(-1) ? int64_t{0} : static_cast<int64_t>(n);
}

Result<std::vector<SqlRow>> Query(MYSQL* conn, std::string_view sql,
                                  const std::vector<SqlValue>& params, std::string_view what) {
  auto res = Run(conn, sql, params, what);
  if (!res.ok()) return res.status();
  std::vector<SqlRow> rows;
  if (*res == nullptr) return rows;
  MYSQL_RES* r = res->get();
  unsigned cols = mysql_num_fields(r);
  MYSQL_FIELD* fields = mysql_fetch_fields(r);
  rows.reserve(mysql_num_rows(r));
  while (MYSQL_ROW row = mysql_fetch_row(r)) {
    unsigned long* lengths = mysql_fetch_lengths(r);
    SqlRow out;
    out.reserve(cols);
    for (unsigned c = 0; c < cols; ++c) {
      auto v = ToValue(fields[c], row[c], lengths[c], static_cast<int>(c));
      if (!v.ok()) return v.status();
      out.push_back(std::move(*v));
    }
    rows.push_back(std::move(out));
  }
  return rows;
}

Status EnsureBarrierSchema(MYSQL* conn) {
  // TIMESTAMP is stored in UTC, so purging by age does not depend on session time zones.
  auto r = Exec(conn,
                "CREATE TABLE IF NOT EXISTS dtx_barrier ("
                " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                " trans_type VARCHAR(45) NOT NULL DEFAULT '',"
                " gid VARCHAR(128) NOT NULL DEFAULT '',"
                " branch_id VARCHAR(128) NOT NULL DEFAULT '',"
                " op VARCHAR(45) NOT NULL DEFAULT '',"
                " barrier_id VARCHAR(45) NOT NULL DEFAULT '',"
                " reason VARCHAR(45) NOT NULL DEFAULT '',"
                " create_time TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
                " UNIQUE KEY dtx_barrier_key (gid, branch_id, op, barrier_id),"
                " KEY dtx_barrier_create_time (create_time)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                {}, "create barrier schema");
  return r.status();
}

Result<bool> InsertBarrierIgnore(MYSQL* conn, const BarrierRow& row) {
  struct Field {
    const char* name;
    const std::string& value;
    size_t limit;
  };
  for (const Field& f :
       {Field{"gid", row.gid, kGidColumn}, Field{"branch_id", row.branch_id, kBranchIdColumn},
        Field{"trans_type", row.trans_type, kShortColumn}, Field{"op", row.op, kShortColumn},
        Field{"barrier_id", row.barrier_id, kShortColumn},
        Field{"reason", row.reason, kShortColumn}}) {
    if (f.value.size() > f.limit) {
      return InvalidArgument("mariadb: barrier " + std::string(f.name) + " is longer than " +
                             std::to_string(f.limit) + " bytes");
    }
  }
  auto n = Exec(conn,
                "INSERT INTO dtx_barrier(trans_type, gid, branch_id, op, barrier_id, reason) "
                "VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id",
                {row.trans_type, row.gid, row.branch_id, row.op, row.barrier_id, row.reason},
                "insert barrier");
  if (!n.ok()) return n.status();
  // 1 = inserted; 0 = the key existed (the no-op update changes nothing).
  return *n == 1;
}

Result<std::optional<std::string>> BarrierReason(MYSQL* conn, std::string_view gid,
                                                 std::string_view branch_id, std::string_view op,
                                                 std::string_view barrier_id) {
  auto rows =
      Query(conn,
            "SELECT reason FROM dtx_barrier WHERE gid = ? AND branch_id = ? AND op = ? "
            "AND barrier_id = ?",
            {std::string(gid), std::string(branch_id), std::string(op), std::string(barrier_id)},
            "barrier reason");
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<std::string>();
  const auto* reason = std::get_if<std::string>(&(*rows)[0][0]);
  if (reason == nullptr) return DataLoss("mariadb: barrier reason is not a string");
  return std::optional<std::string>(*reason);
}

namespace {

// After a deadlock the whole call can be retried (kUnavailable); after an implicit commit (DDL
// inside the transaction) it cannot, and the transaction is reported aborted.
StatusCode EarlyEndCode(const Status& failure) {
  return failure.code() == StatusCode::kUnavailable ? StatusCode::kUnavailable
                                                    : StatusCode::kAborted;
}

}  // namespace

MariaDbLocalTx::~MariaDbLocalTx() {
  if (open_ && mode_ == Mode::kPlain) (void)Rollback();
}

Status MariaDbLocalTx::CheckUsable() const {
  if (!open_) return FailedPrecondition("mariadb: local transaction already finished");
  if (failure_) {
    return Status(
        EarlyEndCode(*failure_),
        "mariadb: the transaction ended early and was not committed: " + failure_->message());
  }
  return Status::Ok();
}

Status MariaDbLocalTx::AfterStatement(Status s) {
  if (!s.ok()) {
    // These roll back the whole transaction, yet the session stays in its explicit transaction:
    // later statements would run in a fresh one that COMMIT would then apply on its own.
    switch (mysql_errno(conn_)) {
      case ER_LOCK_DEADLOCK:
      case ER_XA_RBDEADLOCK:
      case ER_XA_RBTIMEOUT:
      case ER_XA_RBROLLBACK:
        failure_ = s;
        return s;
      default:
        break;
    }
  }
  if ((conn_->server_status & SERVER_STATUS_IN_TRANS) != 0) return s;
  if (!s.ok()) {
    failure_ = s;
    return s;
  }
  failure_ = FailedPrecondition(
      "mariadb: a statement committed the transaction implicitly (DDL and similar statements "
      "are not allowed inside a local transaction)");
  return *failure_;
}

Result<int64_t> MariaDbLocalTx::Exec(std::string_view sql, const std::vector<SqlValue>& params) {
  DTX_RETURN_IF_ERROR(CheckUsable());
  auto r = mariadb::Exec(conn_, sql, params, "exec");
  DTX_RETURN_IF_ERROR(AfterStatement(r.status()));
  return r;
}

Result<std::vector<SqlRow>> MariaDbLocalTx::Query(std::string_view sql,
                                                  const std::vector<SqlValue>& params) {
  DTX_RETURN_IF_ERROR(CheckUsable());
  auto r = mariadb::Query(conn_, sql, params, "query");
  DTX_RETURN_IF_ERROR(AfterStatement(r.status()));
  return r;
}

Result<bool> MariaDbLocalTx::InsertBarrierIgnore(const BarrierRow& row) {
  DTX_RETURN_IF_ERROR(CheckUsable());
  auto r = mariadb::InsertBarrierIgnore(conn_, row);
  DTX_RETURN_IF_ERROR(AfterStatement(r.status()));
  return r;
}

Result<std::optional<std::string>> MariaDbLocalTx::BarrierReason(std::string_view gid,
                                                                 std::string_view branch_id,
                                                                 std::string_view op,
                                                                 std::string_view barrier_id) {
  DTX_RETURN_IF_ERROR(CheckUsable());
  auto r = mariadb::BarrierReason(conn_, gid, branch_id, op, barrier_id);
  DTX_RETURN_IF_ERROR(AfterStatement(r.status()));
  return r;
}

Status MariaDbLocalTx::Commit() {
  if (mode_ == Mode::kXaBranch) {
    return FailedPrecondition("mariadb: commit inside an XA branch (RunAndPrepare ends it)");
  }
  if (!open_) return FailedPrecondition("mariadb: local transaction already finished");
  open_ = false;
  if (failure_) {
    // A statement that failed without ending the transaction server-side must not be followed
    // by a commit of what came before it; roll back whatever is still open.
    if ((conn_->server_status & SERVER_STATUS_IN_TRANS) != 0) {
      (void)mariadb::Exec(conn_, "ROLLBACK", {}, "rollback");
    }
    return Status(EarlyEndCode(*failure_),
                  "mariadb: commit: the transaction had ended early and was not committed: " +
                      failure_->message());
  }
  return mariadb::Exec(conn_, "COMMIT", {}, "commit").status();
}

Status MariaDbLocalTx::Rollback() {
  if (mode_ == Mode::kXaBranch) {
    return FailedPrecondition("mariadb: rollback inside an XA branch (return an error instead)");
  }
  if (!open_) return FailedPrecondition("mariadb: local transaction already finished");
  open_ = false;
  if ((conn_->server_status & SERVER_STATUS_IN_TRANS) == 0) return Status::Ok();
  return mariadb::Exec(conn_, "ROLLBACK", {}, "rollback").status();
}

}  // namespace mariadb

namespace {

Status BadKey(std::string_view key, std::string_view why) {
  return InvalidArgument("mariadb dsn: '" + std::string(key) + "' " + std::string(why));
}

Result<int> ParseInt(std::string_view key, std::string_view value, int lo, int hi) {
  int v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || p != value.data() + value.size() || v < lo || v > hi) {
    return BadKey(key, "must be a whole number from " + std::to_string(lo) + " to " +
                           std::to_string(hi) + ", not '" + std::string(value) + "'");
  }
  return v;
}

}  // namespace

Result<MariaDbOptions> MariaDbOptions::Parse(std::string_view dsn) {
  MariaDbOptions o;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
  };
  while (true) {
    skip_space();
    if (i == dsn.size()) break;
    size_t key_start = i;
    while (i < dsn.size() && dsn[i] != '=' && !std::isspace(static_cast<unsigned char>(dsn[i]))) {
      ++i;
    }
    std::string_view key = dsn.substr(key_start, i - key_start);
    skip_space();
    if (i == dsn.size() || dsn[i] != '=') return BadKey(key, "has no '=value'");
    ++i;
    skip_space();
    std::string value;
    if (i < dsn.size() && dsn[i] == '\'') {
      // libpq-style quoting: '...' with \' and \\ inside.
      ++i;
      bool closed = false;
      while (i < dsn.size()) {
        char c = dsn[i++];
        if (c == '\'') {
          closed = true;
          break;
        }
        if (c == '\\' && i < dsn.size()) c = dsn[i++];
        value.push_back(c);
      }
      if (!closed) return BadKey(key, "has an unterminated quoted value");
    } else {
      while (i < dsn.size() && !std::isspace(static_cast<unsigned char>(dsn[i]))) {
        value.push_back(dsn[i++]);
      }
    }
    if (key == "host") {
      o.host = value;
    } else if (key == "port") {
      auto v = ParseInt(key, value, 1, 65535);
      if (!v.ok()) return v.status();
      o.port = static_cast<uint16_t>(*v);
    } else if (key == "socket") {
      o.unix_socket = value;
    } else if (key == "user") {
      o.user = value;
    } else if (key == "password") {
      o.password = value;
    } else if (key == "dbname") {
      o.database = value;
    } else if (key == "connect_timeout" || key == "read_timeout" || key == "write_timeout") {
      auto v = ParseInt(key, value, 1, 86400);
      if (!v.ok()) return v.status();
      (key == "connect_timeout" ? o.connect_timeout_s
       : key == "read_timeout"  ? o.read_timeout_s
                                : o.write_timeout_s) = *v;
    } else {
      return BadKey(key,
                    "is not a known key (host, port, socket, user, password, dbname, "
                    "connect_timeout, read_timeout, write_timeout)");
    }
  }
  if (o.database.empty()) return BadKey("dbname", "is missing or empty");
  if (o.host.empty() && o.unix_socket.empty())
    return BadKey("host", "is empty and no socket given");
  if (o.user.empty()) return BadKey("user", "is empty");
  return o;
}

Result<std::unique_ptr<MariaDbBarrierStore>> MariaDbBarrierStore::Open(
    const MariaDbOptions& options) {
  auto conn = mariadb::Connect(options);
  if (!conn.ok()) return conn.status();
  std::unique_ptr<MariaDbBarrierStore> store(new MariaDbBarrierStore(conn->release(), options));
  DTX_RETURN_IF_ERROR(store->EnsureSchema());
  return store;
}

MariaDbBarrierStore::~MariaDbBarrierStore() { mysql_close(conn_); }

Status MariaDbBarrierStore::EnsureSchema() { return mariadb::EnsureBarrierSchema(conn_); }

Result<std::unique_ptr<LocalTx>> MariaDbBarrierStore::Begin() {
  // A connection error on the last call means the connection is gone (server restart, KILL, idle
  // timeout) and whatever was open on it was rolled back by the server: reconnecting once is safe.
  bool broken = mariadb::IsConnectionError(mysql_errno(conn_));
  if (!broken && (conn_->server_status & SERVER_STATUS_IN_TRANS) != 0) {
    return FailedPrecondition("mariadb: begin: the connection is already inside a transaction");
  }
  Result<int64_t> started = int64_t{0};
  if (!broken) {
    started = mariadb::Exec(conn_, "START TRANSACTION", {}, "begin");
    broken = !started.ok() && mariadb::IsConnectionError(mysql_errno(conn_));
  }
  if (broken) {
    auto fresh = mariadb::Connect(options_);
    if (!fresh.ok()) return fresh.status();
    mysql_close(conn_);
    conn_ = fresh->release();
    started = mariadb::Exec(conn_, "START TRANSACTION", {}, "begin");
  }
  if (!started.ok()) return started.status();
  return std::unique_ptr<LocalTx>(
      new mariadb::MariaDbLocalTx(conn_, mariadb::MariaDbLocalTx::Mode::kPlain));
}

Result<size_t> MariaDbBarrierStore::PurgeOlderThan(int64_t older_than_seconds) {
  if (older_than_seconds < 0) return InvalidArgument("mariadb: purge age must be >= 0");
  auto n = mariadb::Exec(conn_,
                         "DELETE FROM dtx_barrier WHERE create_time < "
                         "CURRENT_TIMESTAMP(6) - INTERVAL ? SECOND",
                         {older_than_seconds}, "purge");
  if (!n.ok()) return n.status();
  return static_cast<size_t>(*n);
}

}  // namespace dtx::sdk
