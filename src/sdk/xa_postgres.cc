#include <libpq-fe.h>

#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "dtx/xa.h"
#include "sdk/postgres_internal.h"

namespace dtx::sdk {
namespace {

using pg_internal::PgResult;

// PostgreSQL's GIDSIZE is 200 bytes including the terminating NUL.
constexpr size_t kMaxPgXidLength = 199;
constexpr std::string_view kXidPrefix = "dtx:";

Status ValidateBranch(const XaBranch& b) {
  auto printable = [](std::string_view s) {
    for (char c : s) {
      if (c < 0x20 || c > 0x7e) return false;
    }
    return true;
  };
  if (b.gid.empty() || b.gid.size() > kMaxGidLength || !printable(b.gid)) {
    return InvalidArgument("postgres xa: gid must be 1.." + std::to_string(kMaxGidLength) +
                           " printable ASCII characters");
  }
  // ListPrepared splits the xid at its last ':', so only the gid may hold colons.
  if (b.branch_id.empty() || !printable(b.branch_id) ||
      b.branch_id.find(':') != std::string::npos) {
    return InvalidArgument("postgres xa: branch_id must be printable ASCII without ':'");
  }
  if (kXidPrefix.size() + b.gid.size() + 1 + b.branch_id.size() > kMaxPgXidLength) {
    return InvalidArgument("postgres xa: 'dtx:<gid>:<branch_id>' is longer than PostgreSQL's " +
                           std::to_string(kMaxPgXidLength) + "-byte transaction identifier limit");
  }
  return Status::Ok();
}

std::string Xid(const XaBranch& b) { return std::string(kXidPrefix) + b.gid + ":" + b.branch_id; }

// The business's view of the branch's transaction: statements run on the resource's connection,
// and only the resource ends the transaction (it must be prepared, not committed).
class PostgresXaTx : public LocalTx {
 public:
  explicit PostgresXaTx(PGconn* conn) : conn_(conn) {}

  Result<int64_t> Exec(std::string_view sql, const std::vector<SqlValue>& params) override {
    auto res = pg_internal::Run(conn_, sql, params, "exec");
    if (!res.ok()) return res.status();
    return pg_internal::AffectedRows(res->get());
  }

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    const std::vector<SqlValue>& params) override {
    auto res = pg_internal::Run(conn_, sql, params, "query");
    if (!res.ok()) return res.status();
    return pg_internal::Rows(res->get());
  }

  Result<bool> InsertBarrierIgnore(const BarrierRow& row) override {
    return pg_internal::InsertBarrierIgnore(conn_, row);
  }

  Result<std::optional<std::string>> BarrierReason(std::string_view gid, std::string_view branch_id,
                                                   std::string_view op,
                                                   std::string_view barrier_id) override {
    return pg_internal::BarrierReason(conn_, gid, branch_id, op, barrier_id);
  }

  Status Commit() override {
    return FailedPrecondition(
        "postgres xa: the branch's transaction is prepared by RunAndPrepare, not committed by the "
        "business; return OK from the business instead");
  }
  Status Rollback() override {
    return FailedPrecondition(
        "postgres xa: the branch's transaction is ended by RunAndPrepare; return an error from "
        "the business to roll it back");
  }

 private:
  PGconn* conn_;
};

class PostgresXaResource : public XaResource {
 public:
  explicit PostgresXaResource(pg_internal::PgConn conn) : conn_(std::move(conn)) {}

  Status EnsureSchema() override {
    DTX_RETURN_IF_ERROR(Ready("ensure schema"));
    return pg_internal::EnsureBarrierSchema(conn_.get());
  }

  Status RunAndPrepare(const XaBranch& branch, const BusinessFn& business) override {
    DTX_RETURN_IF_ERROR(ValidateBranch(branch));
    DTX_RETURN_IF_ERROR(Ready("prepare"));
    const std::string xid = Xid(branch);
    DTX_RETURN_IF_ERROR(
        pg_internal::ExecSimple(conn_.get(), "BEGIN ISOLATION LEVEL READ COMMITTED", "begin"));
    // Checking pg_prepared_xacts first refuses a duplicate of a prepared branch at once; the
    // insert alone would wait on the unique-key lock that the prepared transaction holds.
    auto inserted = pg_internal::Run(
        conn_.get(),
        "INSERT INTO dtx_barrier(trans_type, gid, branch_id, op, barrier_id, reason) "
        "SELECT $1, $2, $3, $4, $5, $6 "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $7) "
        "ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING",
        {std::string(kTransXa), branch.gid, branch.branch_id, std::string(kOpAction),
         std::string("01"), std::string(kOpAction), xid},
        "insert barrier");
    if (!inserted.ok()) return Abandon(inserted.status());
    if (pg_internal::AffectedRows(inserted->get()) != 1) {
      return Abandon(Aborted("postgres xa: branch " + xid +
                             " was already rolled back (a hanging branch), or is already "
                             "prepared or committed"));
    }
    Status s;
    try {
      PostgresXaTx view(conn_.get());
      s = business(view);
    } catch (const std::exception& e) {
      s = Internal(std::string("postgres xa: business threw: ") + e.what());
    } catch (...) {
      s = Internal("postgres xa: business threw a non-standard exception");
    }
    if (!s.ok()) return Abandon(s);
    if (PQtransactionStatus(conn_.get()) != PQTRANS_INTRANS) {
      return Abandon(
          Aborted("postgres xa: a statement of the business failed (its error was "
                  "not returned); branch " +
                  xid + " rolled back"));
    }
    return Prepare(xid);
  }

  Status Commit(const XaBranch& branch) override {
    return Finish(branch, "COMMIT PREPARED ", "commit prepared");
  }

  Status Rollback(const XaBranch& branch) override {
    DTX_RETURN_IF_ERROR(Finish(branch, "ROLLBACK PREPARED ", "rollback prepared"));
    // A RunAndPrepare of this branch still running elsewhere holds the barrier key and would keep
    // holding it once prepared; the lock timeout turns that wait into kUnavailable, and the
    // caller's retry then finds the branch prepared and rolls it back.
    DTX_RETURN_IF_ERROR(pg_internal::ExecSimple(conn_.get(), "BEGIN; SET LOCAL lock_timeout = '5s'",
                                                "begin rollback barrier"));
    std::string state;
    auto inserted = pg_internal::Run(
        conn_.get(),
        "INSERT INTO dtx_barrier(trans_type, gid, branch_id, op, barrier_id, reason) "
        "VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING",
        {std::string(kTransXa), branch.gid, branch.branch_id, std::string(kOpAction),
         std::string("01"), std::string(kOpRollback)},
        "insert rollback barrier", &state);
    if (!inserted.ok()) {
      Status s = inserted.status();
      if (state == "55P03") s = Unavailable(s.message());  // lock_not_available: retry
      return Abandon(s);
    }
    PgResult res(PQexec(conn_.get(), "COMMIT"));
    if (res == nullptr) return pg_internal::ConnectionError(conn_.get(), "commit rollback barrier");
    if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      return Abandon(pg_internal::PgError(conn_.get(), res.get(), "commit rollback barrier"));
    }
    return Status::Ok();
  }

  Result<std::vector<XaBranch>> ListPrepared() override {
    DTX_RETURN_IF_ERROR(Ready("list prepared"));
    auto res = pg_internal::Run(conn_.get(),
                                "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'dtx:%' AND "
                                "database = current_database() ORDER BY prepared, gid",
                                {}, "list prepared");
    if (!res.ok()) return res.status();
    std::vector<XaBranch> out;
    for (int i = 0; i < PQntuples(res->get()); ++i) {
      std::string_view xid = PQgetvalue(res->get(), i, 0);
      xid.remove_prefix(kXidPrefix.size());
      size_t colon = xid.rfind(':');
      // Not of our making (someone else's "dtx:..." identifier): leave it alone.
      if (colon == std::string_view::npos || colon == 0 || colon + 1 == xid.size()) continue;
      out.push_back(
          XaBranch{std::string(xid.substr(0, colon)), std::string(xid.substr(colon + 1))});
    }
    return out;
  }

 private:
  // A usable connection outside any transaction.
  Status Ready(std::string_view what) {
    DTX_RETURN_IF_ERROR(pg_internal::ReconnectIfBroken(conn_.get()));
    if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      return FailedPrecondition("postgres xa: " + std::string(what) +
                                ": the connection is inside a transaction");
    }
    return Status::Ok();
  }

  // Rolls the open transaction back and returns `why`.
  Status Abandon(Status why) {
    if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      (void)pg_internal::ExecSimple(conn_.get(), "ROLLBACK", "rollback");
    }
    return why;
  }

  // `prefix` followed by the xid as a safely quoted literal (the commands take no parameters).
  Result<std::string> WithXid(std::string_view prefix, const std::string& xid) {
    char* quoted = PQescapeLiteral(conn_.get(), xid.data(), xid.size());
    if (quoted == nullptr) return pg_internal::ConnectionError(conn_.get(), "quote xid");
    std::string sql = std::string(prefix) + quoted;
    PQfreemem(quoted);
    return sql;
  }

  Status Prepare(const std::string& xid) {
    auto sql = WithXid("PREPARE TRANSACTION ", xid);
    if (!sql.ok()) return Abandon(sql.status());
    PgResult res(PQexec(conn_.get(), sql->c_str()));
    if (res == nullptr) return Abandon(pg_internal::ConnectionError(conn_.get(), "prepare"));
    if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      std::string state = pg_internal::SqlState(res.get());
      Status s = pg_internal::PgError(conn_.get(), res.get(), "prepare " + xid);
      if (state == "55000") {
        s = FailedPrecondition(
            "postgres xa: prepared transactions are disabled on the server: set "
            "max_prepared_transactions > 0 (e.g. to max_connections) and restart it (" +
            s.message() + ")");
      } else if (state == "42710") {
        s = Aborted(s.message());  // the xid is in use: a duplicate prepare
      }
      return Abandon(s);
    }
    // A transaction that had failed is rolled back by PREPARE with no error.
    if (std::string_view(PQcmdStatus(res.get())) != "PREPARE TRANSACTION") {
      return Abandon(Aborted("postgres xa: prepare " + xid +
                             ": the transaction had failed and was rolled back"));
    }
    return Status::Ok();
  }

  // COMMIT PREPARED / ROLLBACK PREPARED; an xid that is not prepared (42704) counts as done.
  Status Finish(const XaBranch& branch, std::string_view command, std::string_view what) {
    DTX_RETURN_IF_ERROR(ValidateBranch(branch));
    DTX_RETURN_IF_ERROR(Ready(what));
    const std::string xid = Xid(branch);
    auto sql = WithXid(command, xid);
    if (!sql.ok()) return sql.status();
    PgResult res(PQexec(conn_.get(), sql->c_str()));
    if (res == nullptr) return pg_internal::ConnectionError(conn_.get(), what);
    if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      if (pg_internal::SqlState(res.get()) == "42704") return Status::Ok();
      return pg_internal::PgError(conn_.get(), res.get(), std::string(what) + " " + xid);
    }
    return Status::Ok();
  }

  pg_internal::PgConn conn_;
};

}  // namespace

Result<std::unique_ptr<XaResource>> OpenPostgresXa(const std::string& conninfo) {
  auto conn = pg_internal::Connect(conninfo);
  if (!conn.ok()) return conn.status();
  auto resource = std::make_unique<PostgresXaResource>(std::move(*conn));
  DTX_RETURN_IF_ERROR(resource->EnsureSchema());
  return std::unique_ptr<XaResource>(std::move(resource));
}

}  // namespace dtx::sdk
