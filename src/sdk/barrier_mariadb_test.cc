// The barrier on a real MariaDB server. DTX_MARIADB_DSN names it (scripts/test.sh starts a private
// one with scripts/mariadb-test-server.sh); each test works in a fresh database that it drops
// afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <latch>
#include <random>
#include <thread>

#include "dtx/barrier.h"
#include "sdk/mariadb_internal.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

TEST(MariaDbOptionsTest, ParsesEveryKey) {
  auto o = MariaDbOptions::Parse(
      "  host=db.local port=3307 user=app password='p w\\'x' dbname=bank connect_timeout=3 "
      "read_timeout=7 write_timeout=9 ");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->host, "db.local");
  EXPECT_EQ(o->port, 3307);
  EXPECT_EQ(o->user, "app");
  EXPECT_EQ(o->password, "p w'x");
  EXPECT_EQ(o->database, "bank");
  EXPECT_EQ(o->connect_timeout_s, 3);
  EXPECT_EQ(o->read_timeout_s, 7);
  EXPECT_EQ(o->write_timeout_s, 9);
  o = MariaDbOptions::Parse("socket=/tmp/x.sock dbname=d");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->unix_socket, "/tmp/x.sock");
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 3306);
  EXPECT_EQ(o->user, "root");
}

TEST(MariaDbOptionsTest, RejectsBadInputNamingTheKey) {
  struct Case {
    const char* dsn;
    const char* expect;
  };
  for (const Case& c : {
           Case{"", "'dbname' is missing"},
           Case{"host=h", "'dbname' is missing"},
           Case{"dbname=", "'dbname' is missing"},
           Case{"dbname=d sslmode=on", "'sslmode' is not a known key"},
           Case{"dbname=d port=0", "'port' must be a whole number from 1 to 65535"},
           Case{"dbname=d port=70000", "'port' must be"},
           Case{"dbname=d port=33x", "'port' must be"},
           Case{"dbname=d port=", "'port' must be"},
           Case{"dbname=d connect_timeout=0", "'connect_timeout' must be"},
           Case{"dbname=d read_timeout=-1", "'read_timeout' must be"},
           Case{"dbname=d user", "'user' has no '=value'"},
           Case{"dbname=d password='abc", "'password' has an unterminated quoted value"},
           Case{"dbname=d user=", "'user' is empty"},
           Case{"dbname=d host=", "'host' is empty"},
       }) {
    auto o = MariaDbOptions::Parse(c.dsn);
    ASSERT_FALSE(o.ok()) << c.dsn;
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << c.dsn;
    EXPECT_NE(o.status().message().find(c.expect), std::string::npos)
        << c.dsn << ": " << o.status().ToString();
  }
}

TEST(MariaDbErrorTest, MapsErrorNumbersAndSqlStates) {
  EXPECT_EQ(mariadb::MapError(2013, "HY000", "lost", "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(mariadb::MapError(1927, "70100", "killed", "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(mariadb::MapError(1213, "40001", "deadlock", "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(mariadb::MapError(1205, "HY000", "lock wait", "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(mariadb::MapError(1062, "23000", "dup", "x").code(), StatusCode::kAborted);
  EXPECT_EQ(mariadb::MapError(4025, "23000", "check", "x").code(), StatusCode::kAborted);
  EXPECT_EQ(mariadb::MapError(1064, "42000", "syntax", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mariadb::MapError(1146, "42S02", "no table", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mariadb::MapError(1406, "22001", "too long", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mariadb::MapError(1045, "28000", "denied", "x").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(mariadb::MapError(1114, "HY000", "full", "x").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(mariadb::MapError(1105, "HY000", "unknown", "x").code(), StatusCode::kInternal);
  Status s = mariadb::MapError(1146, "42S02", "Table 't' doesn't exist", "exec");
  EXPECT_EQ(s.message(), "mariadb: exec: Table 't' doesn't exist (error 1146, SQLSTATE 42S02)");
}

class MariaDbBarrierTest : public ::testing::Test {
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
    db_ = testutil::UniqueName("dtx_t");
    AdminExec("CREATE DATABASE " + db_);
    options_ = *base;
    options_.database = db_;
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
    AdminExec("CREATE TABLE " + db_ +
              ".accounts(id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, "
              "CONSTRAINT nonnegative CHECK (balance >= 0)) ENGINE=InnoDB");
    AdminExec("INSERT INTO " + db_ + ".accounts VALUES (1, 100), (2, 100)");
  }

  void TearDown() override {
    store_.reset();
    if (admin_ != nullptr && !db_.empty()) AdminExec("DROP DATABASE " + db_);
  }

  void AdminExec(const std::string& sql) {
    auto r = mariadb::Exec(admin_.get(), sql, {}, "admin");
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  }

  int64_t AdminScalar(const std::string& sql) {
    auto rows = mariadb::Query(admin_.get(), sql, {}, "admin");
    EXPECT_TRUE(rows.ok() && rows->size() == 1) << sql << ": " << rows.status().ToString();
    if (!rows.ok() || rows->size() != 1) return -1;
    return std::get<int64_t>((*rows)[0][0]);
  }

  std::unique_ptr<MariaDbBarrierStore> OpenStore() {
    auto store = MariaDbBarrierStore::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  int64_t Scalar(const std::string& sql, const std::vector<SqlValue>& params) {
    auto tx = store_->Begin();
    EXPECT_TRUE(tx.ok()) << tx.status().ToString();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query(sql, params);
    EXPECT_TRUE(rows.ok() && rows->size() == 1) << rows.status().ToString();
    if (!rows.ok() || rows->size() != 1) return -1;
    EXPECT_TRUE((*tx)->Commit().ok());
    return std::get<int64_t>((*rows)[0][0]);
  }
  int64_t Balance(int64_t id) { return Scalar("SELECT balance FROM accounts WHERE id = ?", {id}); }
  int64_t BarrierRows(const std::string& gid) {
    return Scalar("SELECT COUNT(*) FROM dtx_barrier WHERE gid = ?", {gid});
  }

  // Waits (bounded) until the connection with this id is inside a statement. Used once that
  // statement can only wait for a row lock that the caller holds, so the wait is certain.
  Status WaitForStatementOf(unsigned long connection_id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto rows = mariadb::Query(admin_.get(),
                                 "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                 "WHERE ID = ? AND COMMAND = 'Query' AND INFO IS NOT NULL",
                                 {static_cast<int64_t>(connection_id)}, "processlist");
      if (!rows.ok()) return rows.status();
      if (std::get<int64_t>((*rows)[0][0]) > 0) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return DeadlineExceeded("connection " + std::to_string(connection_id) +
                            " did not start a statement within 30 s");
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

  static BranchCallInfo Info(std::string trans_type, std::string gid, std::string op) {
    return BranchCallInfo{std::move(trans_type), std::move(gid), "01", std::move(op)};
  }

  std::string db_;
  MariaDbOptions options_;
  mariadb::ConnPtr admin_;
  std::unique_ptr<MariaDbBarrierStore> store_;
};

TEST_F(MariaDbBarrierTest, SchemaIsIdempotentAndInnoDb) {
  ASSERT_TRUE(store_->EnsureSchema().ok());
  auto again = OpenStore();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(AdminScalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" +
                        db_ + "' AND TABLE_NAME = 'dtx_barrier' AND ENGINE = 'InnoDB'"),
            1);
  EXPECT_EQ(Scalar("SELECT @@tx_isolation = 'READ-COMMITTED'", {}), 1);
}

// The check-back arrives while the local transaction is still open on another connection: it
// waits for that transaction's row and answers by its outcome.
TEST_F(MariaDbBarrierTest, MsgQueryPreparedDuringOpenLocalTxWaitsForItsOutcome) {
  auto other = OpenStore();
  ASSERT_NE(other, nullptr);
  const unsigned long other_id = mysql_thread_id(other->handle());
  for (bool commit : {true, false}) {
    const std::string gid = commit ? "m3" : "m4";
    int runs = 0;
    Status query_status;
    std::latch inside(1);
    std::thread checker([&] {
      inside.wait();
      query_status = QueryPrepared(*other, gid);
    });
    Status local = CallMsgLocal(*store_, gid, [&](LocalTx& tx) -> Status {
      DTX_RETURN_IF_ERROR(Add(1, -5, &runs)(tx));
      inside.count_down();
      DTX_RETURN_IF_ERROR(WaitForStatementOf(other_id));
      return commit ? Status::Ok() : Aborted("refused");
    });
    checker.join();
    EXPECT_EQ(local.ok(), commit) << local.ToString();
    if (commit) {
      EXPECT_TRUE(query_status.ok()) << query_status.ToString();
    } else {
      EXPECT_EQ(query_status.code(), StatusCode::kAborted) << query_status.ToString();
    }
  }
  EXPECT_EQ(Balance(1), 95);
}

TEST_F(MariaDbBarrierTest, PurgeRemovesOnlyOldRowsByDatabaseClock) {
  int runs = 0;
  ASSERT_TRUE(Barrier(Info("saga", "old", "action")).Call(*store_, Add(1, -1, &runs)).ok());
  ASSERT_TRUE(Barrier(Info("saga", "new", "action")).Call(*store_, Add(1, -1, &runs)).ok());
  {
    auto tx = store_->Begin();
    ASSERT_TRUE(tx.ok());
    auto changed = (*tx)->Exec(
        "UPDATE dtx_barrier SET create_time = CURRENT_TIMESTAMP(6) - INTERVAL 2 HOUR "
        "WHERE gid = ?",
        {std::string("old")});
    ASSERT_TRUE(changed.ok()) << changed.status().ToString();
    ASSERT_EQ(*changed, 1);
    ASSERT_TRUE((*tx)->Commit().ok());
  }
  auto purged = PurgeBarriers(*store_, 3600);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(*purged, 1u);
  EXPECT_EQ(BarrierRows("old"), 0);
  EXPECT_EQ(BarrierRows("new"), 1);
  EXPECT_EQ(PurgeBarriers(*store_, -1).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(MariaDbBarrierTest, ValuesRoundTripAndPlaceholdersInLiteralsAreText) {
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  const std::string tricky("x'y\\z?\0\"", 8);
  auto rows = (*tx)->Query(
      "SELECT ?, ?, ?, ?, TRUE, 1.50, '?', `balance` /* ? */ FROM accounts -- ?\n"
      "WHERE id = ? # ?",
      {int64_t{-7}, 2.5, tricky, nullptr, int64_t{2}});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0], (SqlRow{int64_t{-7}, 2.5, tricky, nullptr, int64_t{1}, std::string("1.50"),
                                std::string("?"), int64_t{100}}));
  ASSERT_TRUE((*tx)->Commit().ok());
}

TEST_F(MariaDbBarrierTest, SqlErrorsAreValues) {
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  auto error = [&](std::string_view sql, const std::vector<SqlValue>& params) {
    return (*tx)->Exec(sql, params).status();
  };
  EXPECT_EQ(error("SELECT ?", {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error("SELECT 1", {int64_t{1}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error("SELECT ?", {std::numeric_limits<double>::infinity()}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(error("SELECT 1; SELECT 2", {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error("  ", {}).code(), StatusCode::kInvalidArgument);
  Status bad = error("UPDATE no_such_table SET x = 1", {});
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("no_such_table"), std::string::npos) << bad.ToString();
  EXPECT_NE(bad.message().find("error 1146"), std::string::npos) << bad.ToString();
  EXPECT_EQ(error("INSERT INTO accounts VALUES (1, 5)", {}).code(), StatusCode::kAborted);
  // MariaDB rolls back only the failed statement; the transaction goes on and commits.
  ASSERT_TRUE((*tx)->Exec("UPDATE accounts SET balance = 99 WHERE id = 2").ok());
  ASSERT_TRUE((*tx)->Commit().ok());
  EXPECT_EQ((*tx)->Exec("SELECT 1").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Balance(2), 99);
}

TEST_F(MariaDbBarrierTest, ImplicitCommitInsideTransactionIsRefused) {
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE((*tx)->Exec("UPDATE accounts SET balance = 1 WHERE id = 1").ok());
  Status s = (*tx)->Exec("CREATE TABLE side (x INT)").status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("implicitly"), std::string::npos) << s.ToString();
  EXPECT_EQ((*tx)->Exec("UPDATE accounts SET balance = 2 WHERE id = 2").status().code(),
            StatusCode::kAborted);
  EXPECT_EQ((*tx)->Commit().code(), StatusCode::kAborted);
  EXPECT_EQ(Balance(2), 100);  // nothing ran outside the transaction after the DDL
}

// A deadlock rolls the victim's whole transaction back; later statements of that LocalTx must not
// run in autocommit mode, and the error says "retry the call".
TEST_F(MariaDbBarrierTest, DeadlockVictimCannotContinueOrCommit) {
  auto other = OpenStore();
  ASSERT_NE(other, nullptr);
  auto a = store_->Begin();
  auto b = other->Begin();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1").ok());
  ASSERT_TRUE((*b)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 2").ok());
  const unsigned long a_id = mysql_thread_id(store_->handle());
  Status a_second;
  std::thread t([&] {
    a_second = (*a)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 2").status();
  });
  ASSERT_TRUE(WaitForStatementOf(a_id).ok());
  Status b_second = (*b)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1").status();
  t.join();
  ASSERT_NE(a_second.ok(), b_second.ok()) << a_second.ToString() << " / " << b_second.ToString();
  LocalTx& victim = a_second.ok() ? **b : **a;
  LocalTx& survivor = a_second.ok() ? **a : **b;
  // The victim may retry the whole call: kUnavailable, not a business failure.
  EXPECT_EQ((a_second.ok() ? b_second : a_second).code(), StatusCode::kUnavailable);
  EXPECT_EQ(victim.Exec("UPDATE accounts SET balance = 0 WHERE id = 1").status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(victim.Commit().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(survivor.Commit().ok());
  EXPECT_EQ(Balance(1) + Balance(2), 198);
}

TEST_F(MariaDbBarrierTest, OverlongBarrierKeyIsInvalidArgument) {
  int runs = 0;
  Status s = CallMsgLocal(*store_, std::string(200, 'g'), Add(1, -1, &runs));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(runs, 0);
}

TEST_F(MariaDbBarrierTest, ConnectErrorsAreValues) {
  MariaDbOptions o = options_;
  o.port = 1;
  o.unix_socket.clear();
  o.host = "127.0.0.1";
  auto store = MariaDbBarrierStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  o = options_;
  o.database = "dtx_no_such_database";
  store = MariaDbBarrierStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
  o = options_;
  o.password = "wrong";
  store = MariaDbBarrierStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
}

TEST_F(MariaDbBarrierTest, BeginReconnectsAfterTheConnectionIsKilled) {
  const int64_t id = Scalar("SELECT CONNECTION_ID()", {});
  ASSERT_GT(id, 0);
  AdminExec("KILL " + std::to_string(id));
  int runs = 0;
  Status s = Barrier(Info("saga", "k1", "action")).Call(*store_, Add(1, -5, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_NE(Scalar("SELECT CONNECTION_ID()", {}), id);
  EXPECT_EQ(Balance(1), 95);
}

TEST_F(MariaDbBarrierTest, KillDuringTransactionIsUnavailableAndNothingApplies) {
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  auto id = (*tx)->Query("SELECT CONNECTION_ID()");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*tx)->Exec("UPDATE accounts SET balance = 0 WHERE id = 1").ok());
  AdminExec("KILL " + std::to_string(std::get<int64_t>((*id)[0][0])));
  EXPECT_EQ((*tx)->Commit().code(), StatusCode::kUnavailable);
  tx->reset();
  EXPECT_EQ(Balance(1), 100);
}

// A try holds its row lock while a cancel of the same branch arrives on another connection: the
// cancel must wait, see the committed try and run the real compensation (not an empty one).
TEST_F(MariaDbBarrierTest, CancelRacingAnOpenTryWaitsAndCompensates) {
  auto other = OpenStore();
  ASSERT_NE(other, nullptr);
  const unsigned long other_id = mysql_thread_id(other->handle());
  int try_runs = 0, cancel_runs = 0;
  Status cancel_status;
  std::latch try_inside(1);
  std::thread canceller([&] {
    try_inside.wait();
    cancel_status = Barrier(Info("tcc", "race", "cancel")).Call(*other, Add(1, 30, &cancel_runs));
  });
  BusinessFn try_business = [&](LocalTx& tx) -> Status {
    DTX_RETURN_IF_ERROR(Add(1, -30, &try_runs)(tx));
    try_inside.count_down();
    return WaitForStatementOf(other_id);
  };
  Status try_status = Barrier(Info("tcc", "race", "try")).Call(*store_, try_business);
  canceller.join();
  ASSERT_TRUE(try_status.ok()) << try_status.ToString();
  ASSERT_TRUE(cancel_status.ok()) << cancel_status.ToString();
  EXPECT_EQ(try_runs, 1);
  EXPECT_EQ(cancel_runs, 1);
  EXPECT_EQ(Balance(1), 100);
}

}  // namespace
}  // namespace dtx::sdk
