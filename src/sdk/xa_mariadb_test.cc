// The MariaDB XA resource on a real server named by DTX_MARIADB_DSN (scripts/test.sh starts a
// private one). Each test works in a fresh database and uses gids unique to it, since prepared
// XA branches are server-wide.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>

#include "dtx/xa.h"
#include "sdk/mariadb_internal.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

class MariaDbXaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dsn;
    testutil::RequireDsn("DTX_MARIADB_DSN", "scripts/mariadb-test-server.sh", &dsn);
    if (dsn.empty() || IsSkipped()) return;
    auto base = MariaDbOptions::Parse(dsn);
    ASSERT_TRUE(base.ok()) << base.status().ToString();
    auto admin = mariadb::Connect(*base);
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    admin_ = std::move(*admin);
    db_ = testutil::UniqueName("dtx_x");
    AdminExec("CREATE DATABASE " + db_);
    AdminExec("CREATE TABLE " + db_ +
              ".accounts(id BIGINT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB");
    AdminExec("INSERT INTO " + db_ + ".accounts VALUES (1, 100), (2, 100)");
    options_ = *base;
    options_.database = db_;
    xa_ = OpenXa();
    ASSERT_NE(xa_, nullptr);
  }

  void TearDown() override {
    if (xa_ != nullptr) {
      // Leave nothing prepared behind, whatever the test did.
      auto listed = xa_->ListPrepared();
      if (listed.ok()) {
        for (const XaBranch& b : *listed) {
          if (b.gid.rfind(db_, 0) == 0) {
            EXPECT_TRUE(xa_->Rollback(b).ok()) << b.gid;
          }
        }
      }
      xa_.reset();
    }
    if (admin_ != nullptr && !db_.empty()) AdminExec("DROP DATABASE " + db_);
  }

  void AdminExec(const std::string& sql) {
    auto r = mariadb::Exec(admin_.get(), sql, {}, "admin");
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  }

  std::unique_ptr<XaResource> OpenXa() {
    auto xa = OpenMariaDbXa(options_);
    EXPECT_TRUE(xa.ok()) << xa.status().ToString();
    return xa.ok() ? std::move(*xa) : nullptr;
  }

  int64_t AdminScalar(const std::string& sql, const std::vector<SqlValue>& params = {}) {
    auto rows = mariadb::Query(admin_.get(), sql, params, "admin");
    EXPECT_TRUE(rows.ok() && rows->size() == 1) << sql << ": " << rows.status().ToString();
    if (!rows.ok() || rows->size() != 1) return -1;
    return std::get<int64_t>((*rows)[0][0]);
  }
  int64_t Balance(int64_t id) {
    return AdminScalar("SELECT balance FROM " + db_ + ".accounts WHERE id = ?", {id});
  }
  std::string BarrierReason(const XaBranch& b) {
    auto rows = mariadb::Query(admin_.get(),
                               "SELECT reason FROM " + db_ +
                                   ".dtx_barrier WHERE gid = ? AND branch_id = ? AND "
                                   "op = 'action' AND barrier_id = '01'",
                               {b.gid, b.branch_id}, "admin");
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok() || rows->empty()) return "";
    return std::get<std::string>((*rows)[0][0]);
  }

  bool IsPrepared(XaResource& xa, const XaBranch& b) {
    auto listed = xa.ListPrepared();
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    return listed.ok() && std::find(listed->begin(), listed->end(), b) != listed->end();
  }

  XaBranch Branch(const std::string& suffix, std::string branch_id = "01") {
    return XaBranch{db_ + "-" + suffix, std::move(branch_id)};
  }

  static BusinessFn Add(int64_t id, int64_t delta, int* runs) {
    return [id, delta, runs](LocalTx& tx) -> Status {
      ++*runs;
      auto changed = tx.Exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", {delta, id});
      if (!changed.ok()) return changed.status();
      if (*changed != 1) return NotFound("no account " + std::to_string(id));
      return Status::Ok();
    };
  }

  std::string db_;
  MariaDbOptions options_;
  mariadb::ConnPtr admin_;
  std::unique_ptr<XaResource> xa_;
};

TEST_F(MariaDbXaTest, PrepareThenCommitAppliesAndCommitIsIdempotent) {
  const XaBranch b = Branch("c");
  int runs = 0;
  Status s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Balance(1), 100);  // prepared, not yet visible
  EXPECT_TRUE(IsPrepared(*xa_, b));
  s = xa_->Commit(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(BarrierReason(b), "action");
  EXPECT_FALSE(IsPrepared(*xa_, b));
  s = xa_->Commit(b);
  EXPECT_TRUE(s.ok()) << s.ToString();
  // A duplicate of a committed branch is refused by its barrier row.
  s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("duplicate"), std::string::npos) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Balance(1), 70);
}

TEST_F(MariaDbXaTest, PrepareThenRollbackDoesNotApplyAndRollbackIsIdempotent) {
  const XaBranch b = Branch("r");
  int runs = 0;
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -30, &runs)).ok());
  Status s = xa_->Rollback(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 100);
  EXPECT_FALSE(IsPrepared(*xa_, b));
  EXPECT_EQ(BarrierReason(b), "rollback");
  s = xa_->Rollback(b);
  EXPECT_TRUE(s.ok()) << s.ToString();
  s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(IsPrepared(*xa_, b));
  EXPECT_EQ(Balance(1), 100);
}

TEST_F(MariaDbXaTest, RollbackBeforeRunMakesTheLateBranchHangingAndPreparesNothing) {
  const XaBranch b = Branch("h");
  ASSERT_TRUE(xa_->Rollback(b).ok());
  int runs = 0;
  Status s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("hanging"), std::string::npos) << s.ToString();
  EXPECT_EQ(runs, 0);
  EXPECT_FALSE(IsPrepared(*xa_, b));
  EXPECT_EQ(Balance(1), 100);
  // The resource stays usable for other branches.
  ASSERT_TRUE(xa_->RunAndPrepare(Branch("h2"), Add(1, -1, &runs)).ok());
  ASSERT_TRUE(xa_->Commit(Branch("h2")).ok());
  EXPECT_EQ(Balance(1), 99);
}

TEST_F(MariaDbXaTest, BusinessErrorPreparesNothingAndARetryRuns) {
  const XaBranch b = Branch("e");
  int runs = 0;
  BusinessFn failing = [&](LocalTx& tx) -> Status {
    DTX_RETURN_IF_ERROR(Add(1, -30, &runs)(tx));
    return Aborted("insufficient funds");
  };
  EXPECT_EQ(xa_->RunAndPrepare(b, failing), Aborted("insufficient funds"));
  EXPECT_FALSE(IsPrepared(*xa_, b));
  EXPECT_EQ(BarrierReason(b), "");
  BusinessFn throwing = [&](LocalTx& tx) -> Status {
    DTX_RETURN_IF_ERROR(Add(1, -30, &runs)(tx));
    throw std::runtime_error("bug");
  };
  EXPECT_EQ(xa_->RunAndPrepare(b, throwing).code(), StatusCode::kInternal);
  EXPECT_FALSE(IsPrepared(*xa_, b));
  BusinessFn sql_error = [&](LocalTx& tx) -> Status {
    return tx.Exec("UPDATE no_such_table SET x = 1").status();
  };
  EXPECT_EQ(xa_->RunAndPrepare(b, sql_error).code(), StatusCode::kInvalidArgument);
  BusinessFn ends_itself = [&](LocalTx& tx) -> Status { return tx.Commit(); };
  EXPECT_EQ(xa_->RunAndPrepare(b, ends_itself).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(IsPrepared(*xa_, b));
  EXPECT_EQ(Balance(1), 100);
  Status s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(xa_->Commit(b).ok());
  EXPECT_EQ(Balance(1), 70);
}

TEST_F(MariaDbXaTest, DuplicateRunWhilePreparedIsAborted) {
  const XaBranch b = Branch("d");
  int runs = 0;
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -30, &runs)).ok());
  Status s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(IsPrepared(*xa_, b));
  ASSERT_TRUE(xa_->Commit(b).ok());
  EXPECT_EQ(Balance(1), 70);
}

TEST_F(MariaDbXaTest, PreparedBranchSurvivesItsResourceAndIsCommittedFromAnother) {
  const XaBranch b1 = Branch("s", "01"), b2 = Branch("s", "02");
  int runs = 0;
  ASSERT_TRUE(xa_->RunAndPrepare(b1, Add(1, -10, &runs)).ok());
  ASSERT_TRUE(xa_->RunAndPrepare(b2, Add(2, 10, &runs)).ok());
  xa_.reset();
  auto other = OpenXa();
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(IsPrepared(*other, b1));
  EXPECT_TRUE(IsPrepared(*other, b2));
  ASSERT_TRUE(other->Commit(b1).ok());
  ASSERT_TRUE(other->Rollback(b2).ok());
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 100);
  EXPECT_FALSE(IsPrepared(*other, b1));
  EXPECT_FALSE(IsPrepared(*other, b2));
  xa_ = std::move(other);
}

// A branch prepared by a session that is still alive cannot be finished from elsewhere (MariaDB
// answers XAER_NOTA); Commit must not take that for "already committed".
TEST_F(MariaDbXaTest, BranchHeldByALiveSessionIsUnavailableNotOk) {
  const XaBranch b = Branch("held");
  auto holder = mariadb::Connect(options_);
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  const std::string xid =
      "'" + b.gid + "','" + b.branch_id + "@" + db_ + "'," + std::to_string(0x647478);
  for (const std::string& sql :
       {"XA START " + xid, std::string("UPDATE accounts SET balance = 1 WHERE id = 2"),
        "XA END " + xid, "XA PREPARE " + xid}) {
    auto r = mariadb::Exec(holder->get(), sql, {}, "holder");
    ASSERT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  }
  EXPECT_TRUE(IsPrepared(*xa_, b));
  Status s = xa_->Commit(b);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  holder->reset();  // the session ends; the branch stays prepared and becomes reachable
  s = xa_->Commit(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(2), 1);
}

TEST_F(MariaDbXaTest, ListPreparedIgnoresOtherXids) {
  const std::string foreign = "'" + db_ + "-foreign','b',1";
  {
    auto other = mariadb::Connect(options_);
    ASSERT_TRUE(other.ok());
    for (const std::string& sql :
         {"XA START " + foreign, std::string("UPDATE accounts SET balance = 0 WHERE id = 2"),
          "XA END " + foreign, "XA PREPARE " + foreign}) {
      ASSERT_TRUE(mariadb::Exec(other->get(), sql, {}, "foreign").ok()) << sql;
    }
  }
  const XaBranch b = Branch("mine");
  int runs = 0;
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -1, &runs)).ok());
  auto listed = xa_->ListPrepared();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  for (const XaBranch& x : *listed) EXPECT_EQ(x.gid.find("foreign"), std::string::npos) << x.gid;
  EXPECT_NE(std::find(listed->begin(), listed->end(), b), listed->end());
  ASSERT_TRUE(xa_->Commit(b).ok());
  // The foreign branch's session is closed now, but the server may still be ending it.
  Status cleanup;
  for (int i = 0; i < 100; ++i) {
    auto r = mariadb::Exec(admin_.get(), "XA ROLLBACK " + foreign, {}, "cleanup");
    cleanup = r.status();
    if (r.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(cleanup.ok()) << cleanup.ToString();
  EXPECT_EQ(Balance(2), 100);
}

// XA RECOVER is server-wide: a resource on another database must neither list nor finish this
// database's branches (two applications' recovery loops would roll back each other's work).
TEST_F(MariaDbXaTest, ResourcesOfOtherDatabasesDoNotSeeOurBranches) {
  const std::string other_db = db_ + "_o";
  AdminExec("CREATE DATABASE " + other_db);
  MariaDbOptions other_options = options_;
  other_options.database = other_db;
  auto other = OpenMariaDbXa(other_options);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  const XaBranch b = Branch("scoped");
  int runs = 0;
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -5, &runs)).ok());
  EXPECT_TRUE(IsPrepared(*xa_, b));
  EXPECT_FALSE(IsPrepared(**other, b));
  // The same (gid, branch_id) of the other database is another xid: rolling it back there
  // leaves ours prepared, and ours commits.
  EXPECT_TRUE((*other)->Rollback(b).ok());
  EXPECT_TRUE(IsPrepared(*xa_, b));
  ASSERT_TRUE(xa_->Commit(b).ok());
  EXPECT_EQ(Balance(1), 95);
  other->reset();
  AdminExec("DROP DATABASE " + other_db);
}

TEST_F(MariaDbXaTest, InvalidBranchIdsAreRejectedBeforeTheServer) {
  int runs = 0;
  const std::vector<XaBranch> bad = {
      {std::string(65, 'g'), "01"}, {"g", std::string(65, 'b')}, {"", "01"}, {"g", ""}};
  for (const XaBranch& b : bad) {
    EXPECT_EQ(xa_->RunAndPrepare(b, Add(1, -1, &runs)).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(xa_->Commit(b).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(xa_->Rollback(b).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(runs, 0);
  // The bqual is "<branch_id>@<database>": the branch id gets what the database name leaves.
  EXPECT_EQ(xa_->RunAndPrepare({"g", std::string(64 - db_.size(), 'b')}, Add(1, -1, &runs)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(runs, 0);
  // The limits are inclusive: 64-byte ids work, and any bytes are fine.
  const XaBranch longest{db_ + std::string(64 - db_.size() - 2, 'x') + "'\x01",
                         std::string(64 - 1 - db_.size(), 'b')};
  ASSERT_EQ(longest.gid.size(), 64u);
  Status s = xa_->RunAndPrepare(longest, Add(1, -1, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(IsPrepared(*xa_, longest));
  ASSERT_TRUE(xa_->Commit(longest).ok());
  EXPECT_EQ(Balance(1), 99);
}

TEST_F(MariaDbXaTest, ReconnectsAfterItsConnectionIsKilled) {
  ASSERT_TRUE(xa_->ListPrepared().ok());  // the resource holds an open connection now
  auto ids = mariadb::Query(admin_.get(),
                            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND "
                            "ID <> CONNECTION_ID()",
                            {db_}, "admin");
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_FALSE(ids->empty());
  for (const SqlRow& row : *ids) AdminExec("KILL " + std::to_string(std::get<int64_t>(row[0])));
  const XaBranch b = Branch("k");
  int runs = 0;
  Status s = xa_->RunAndPrepare(b, Add(1, -5, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(xa_->Commit(b).ok());
  EXPECT_EQ(Balance(1), 95);
}

TEST_F(MariaDbXaTest, UnreachableServerIsUnavailable) {
  MariaDbOptions o = options_;
  o.host = "127.0.0.1";
  o.unix_socket.clear();
  o.port = 1;
  auto xa = OpenMariaDbXa(o);
  ASSERT_FALSE(xa.ok());
  EXPECT_EQ(xa.status().code(), StatusCode::kUnavailable) << xa.status().ToString();
}

}  // namespace
}  // namespace dtx::sdk
