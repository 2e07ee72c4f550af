#include <mysqld_error.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>

#include "dtx/xa.h"
#include "sdk/mariadb_internal.h"

namespace dtx::sdk {
namespace {

// The formatID of dtx's xids ("dtx" in ASCII); XA RECOVER rows with any other are not ours.
constexpr int64_t kFormatId = 0x647478;
// MariaDB's limit for the gtrid and for the bqual of an xid.
constexpr size_t kMaxXidPart = 64;

// How long Commit/Rollback wait for a prepared branch that is still attached to a closing session.
constexpr int kAttachedRetries = 50;
constexpr auto kAttachedPause = std::chrono::milliseconds(20);

// XA RECOVER lists the prepared branches of every database on the server, so the bqual carries
// the database too ("<branch_id>@<database>"): a resource lists and recovers only its own
// database's branches, never another application's.
std::string BqualSuffix(const std::string& database) { return "@" + database; }

Status ValidateBranch(const XaBranch& b, const std::string& database) {
  if (b.gid.empty() || b.branch_id.empty()) {
    return InvalidArgument("mariadb xa: gid and branch_id must not be empty");
  }
  if (b.gid.size() > kMaxXidPart) {
    return InvalidArgument("mariadb xa: gid is longer than " + std::to_string(kMaxXidPart) +
                           " bytes (a MariaDB xid limit)");
  }
  const size_t suffix = BqualSuffix(database).size();
  if (b.branch_id.size() + suffix > kMaxXidPart) {
    return InvalidArgument("mariadb xa: branch_id is longer than " +
                           std::to_string(kMaxXidPart > suffix ? kMaxXidPart - suffix : 0) +
                           " bytes (the xid's bqual, branch_id@database, is limited to " +
                           std::to_string(kMaxXidPart) + " bytes by MariaDB)");
  }
  return Status::Ok();
}

std::string HexLiteral(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "X'";
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  out.push_back('\'');
  return out;
}

// The xid as XA statements take it; hex literals carry any byte without escaping.
std::string Xid(const XaBranch& b, const std::string& database) {
  return HexLiteral(b.gid) + "," + HexLiteral(b.branch_id + BqualSuffix(database)) + "," +
         std::to_string(kFormatId);
}

BarrierRow ActionRow(const XaBranch& b, std::string_view reason) {
  return BarrierRow{std::string(kTransXa),  b.gid, b.branch_id,
                    std::string(kOpAction), "01",  std::string(reason)};
}

class MariaDbXa : public XaResource {
 public:
  explicit MariaDbXa(MariaDbOptions options) : options_(std::move(options)) {}

  Status EnsureSchema() override {
    DTX_RETURN_IF_ERROR(Ready());
    Status s = mariadb::EnsureBarrierSchema(conn_.get());
    if (!s.ok() && Broken()) {
      DTX_RETURN_IF_ERROR(Reconnect());
      s = mariadb::EnsureBarrierSchema(conn_.get());
    }
    return s;
  }

  Status RunAndPrepare(const XaBranch& branch, const BusinessFn& business) override {
    DTX_RETURN_IF_ERROR(ValidateBranch(branch, options_.database));
    const std::string xid = Xid(branch, options_.database);
    auto started = ExecFirst("XA START " + xid, "xa start");
    if (!started.ok()) {
      if (conn_ != nullptr && mysql_errno(conn_.get()) == ER_XAER_DUPID) {
        return Aborted("mariadb xa: branch " + branch.gid + "/" + branch.branch_id +
                       " is already prepared (duplicate)");
      }
      return started.status();
    }
    Status s = RunBranch(branch, business);
    if (!s.ok()) {
      AbandonActive(xid);
      return s;
    }
    auto ended = mariadb::Exec(conn_.get(), "XA END " + xid, {}, "xa end");
    if (!ended.ok()) {
      AbandonActive(xid);
      return ended.status();
    }
    auto prepared = mariadb::Exec(conn_.get(), "XA PREPARE " + xid, {}, "xa prepare");
    if (!prepared.ok()) {
      if (!Broken()) {
        AbandonActive(xid);
        return prepared.status();
      }
      // The answer was lost, so the branch may be prepared: roll it back from a new connection
      // to keep the promise that an error leaves nothing prepared.
      conn_.reset();
      Status undo = RollbackXid(branch);
      if (!undo.ok()) {
        return Unavailable(prepared.status().message() +
                           "; the branch may be left prepared (rolling it back failed: " +
                           undo.message() + "); RecoverInDoubt finishes it");
      }
      return prepared.status();
    }
    // A session that holds a prepared branch can start nothing else, and other sessions cannot
    // commit the branch until that session ends: closing it detaches the branch (it stays
    // prepared on the server); the next call opens a fresh connection.
    conn_.reset();
    return Status::Ok();
  }

  Status Commit(const XaBranch& branch) override {
    DTX_RETURN_IF_ERROR(ValidateBranch(branch, options_.database));
    return FinishXid(branch, "XA COMMIT ", "xa commit");
  }

  Status Rollback(const XaBranch& branch) override {
    DTX_RETURN_IF_ERROR(ValidateBranch(branch, options_.database));
    DTX_RETURN_IF_ERROR(RollbackXid(branch));
    DTX_RETURN_IF_ERROR(Ready());
    auto begun = mariadb::Exec(conn_.get(), "START TRANSACTION", {}, "begin");
    if (!begun.ok()) return begun.status();
    mariadb::MariaDbLocalTx tx(conn_.get(), mariadb::MariaDbLocalTx::Mode::kPlain);
    auto inserted = tx.InsertBarrierIgnore(ActionRow(branch, kOpRollback));
    if (!inserted.ok()) return inserted.status();
    return tx.Commit();
  }

  Result<std::vector<XaBranch>> ListPrepared() override {
    auto rows = QueryFirst("XA RECOVER", "xa recover");
    if (!rows.ok()) return rows.status();
    std::vector<XaBranch> out;
    for (const SqlRow& row : *rows) {
      const auto* format = row.size() == 4 ? std::get_if<int64_t>(&row[0]) : nullptr;
      if (format == nullptr || *format != kFormatId) continue;
      const auto* gtrid_len = std::get_if<int64_t>(&row[1]);
      const auto* bqual_len = std::get_if<int64_t>(&row[2]);
      const auto* data = std::get_if<std::string>(&row[3]);
      if (gtrid_len == nullptr || bqual_len == nullptr || data == nullptr || *gtrid_len < 0 ||
          *bqual_len < 0 || static_cast<size_t>(*gtrid_len + *bqual_len) != data->size()) {
        return DataLoss("mariadb xa: XA RECOVER returned a malformed row");
      }
      std::string bqual = data->substr(static_cast<size_t>(*gtrid_len));
      const std::string suffix = BqualSuffix(options_.database);
      if (bqual.size() <= suffix.size() ||
          bqual.compare(bqual.size() - suffix.size(), suffix.size(), suffix) != 0) {
        continue;  // another database's branch
      }
      bqual.resize(bqual.size() - suffix.size());
      out.push_back(XaBranch{data->substr(0, static_cast<size_t>(*gtrid_len)), std::move(bqual)});
    }
    return out;
  }

 private:
  bool Broken() const {
    return conn_ == nullptr || mariadb::IsConnectionError(mysql_errno(conn_.get()));
  }

  Status Reconnect() {
    conn_.reset();
    auto fresh = mariadb::Connect(options_);
    if (!fresh.ok()) return fresh.status();
    conn_ = std::move(*fresh);
    return Status::Ok();
  }

  Status Ready() { return Broken() ? Reconnect() : Status::Ok(); }

  // Runs the first statement of an operation. A connection that broke while idle (KILL, server
  // restart, idle timeout) held nothing of ours, so one reconnect and retry is safe; the
  // statements used here are all safe to repeat.
  Result<int64_t> ExecFirst(const std::string& sql, std::string_view what) {
    const bool fresh = Broken();
    DTX_RETURN_IF_ERROR(Ready());
    auto r = mariadb::Exec(conn_.get(), sql, {}, what);
    if (r.ok() || fresh || !Broken()) return r;
    DTX_RETURN_IF_ERROR(Reconnect());
    return mariadb::Exec(conn_.get(), sql, {}, what);
  }

  Result<std::vector<SqlRow>> QueryFirst(const std::string& sql, std::string_view what) {
    const bool fresh = Broken();
    DTX_RETURN_IF_ERROR(Ready());
    auto r = mariadb::Query(conn_.get(), sql, {}, what);
    if (r.ok() || fresh || !Broken()) return r;
    DTX_RETURN_IF_ERROR(Reconnect());
    return mariadb::Query(conn_.get(), sql, {}, what);
  }

  // The barrier row and the business inside the active XA branch.
  Status RunBranch(const XaBranch& branch, const BusinessFn& business) {
    mariadb::MariaDbLocalTx tx(conn_.get(), mariadb::MariaDbLocalTx::Mode::kXaBranch);
    auto inserted = tx.InsertBarrierIgnore(ActionRow(branch, kOpAction));
    if (!inserted.ok()) return inserted.status();
    if (!*inserted) {
      auto reason = tx.BarrierReason(branch.gid, branch.branch_id, kOpAction, "01");
      if (!reason.ok()) return reason.status();
      if (reason->has_value() && **reason == kOpRollback) {
        return Aborted("mariadb xa: branch " + branch.gid + "/" + branch.branch_id +
                       " was rolled back before it ran (hanging); not running it");
      }
      return Aborted("mariadb xa: branch " + branch.gid + "/" + branch.branch_id +
                     " already ran (duplicate)");
    }
    Status s;
    try {
      s = business(tx);
    } catch (const std::exception& e) {
      s = Internal(std::string("mariadb xa: business code threw: ") + e.what());
    } catch (...) {
      s = Internal("mariadb xa: business code threw a non-standard exception");
    }
    if (s.ok() && tx.failure()) s = *tx.failure();
    return s;
  }

  // Ends and rolls back the active (not prepared) branch; if that does not work, drops the
  // connection, which makes the server roll it back.
  void AbandonActive(const std::string& xid) {
    if (Broken()) {
      conn_.reset();
      return;
    }
    (void)mariadb::Exec(conn_.get(), "XA END " + xid, {}, "xa end");
    auto r = mariadb::Exec(conn_.get(), "XA ROLLBACK " + xid, {}, "xa rollback");
    if (!r.ok() && mysql_errno(conn_.get()) != ER_XAER_NOTA) conn_.reset();
  }

  Status RollbackXid(const XaBranch& branch) {
    return FinishXid(branch, "XA ROLLBACK ", "xa rollback");
  }

  // XA COMMIT or XA ROLLBACK of a prepared branch. XAER_NOTA means done, unless XA RECOVER still
  // lists the xid: then a session that prepared it is still attached to it (closing, or alive
  // elsewhere), and the statement is retried for a bounded time before kUnavailable.
  Status FinishXid(const XaBranch& branch, std::string_view verb, std::string_view what) {
    const std::string sql = std::string(verb) + Xid(branch, options_.database);
    for (int attempt = 0; attempt < kAttachedRetries; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(kAttachedPause);
      auto r = ExecFirst(sql, what);
      if (r.ok()) return Status::Ok();
      if (conn_ == nullptr || mysql_errno(conn_.get()) != ER_XAER_NOTA) return r.status();
      auto listed = ListPrepared();
      if (!listed.ok()) return listed.status();
      if (std::find(listed->begin(), listed->end(), branch) == listed->end()) {
        return Status::Ok();
      }
    }
    return Unavailable("mariadb xa: " + std::string(what) + ": branch " + branch.gid + "/" +
                       branch.branch_id +
                       " is prepared but still attached to another live session; retry later");
  }

  MariaDbOptions options_;
  mariadb::ConnPtr conn_;
};

}  // namespace

Result<std::unique_ptr<XaResource>> OpenMariaDbXa(const MariaDbOptions& options) {
  auto xa = std::make_unique<MariaDbXa>(options);
  DTX_RETURN_IF_ERROR(xa->EnsureSchema());
  return std::unique_ptr<XaResource>(std::move(xa));
}

}  // namespace dtx::sdk
