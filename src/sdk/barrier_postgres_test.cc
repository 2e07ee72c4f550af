// The barrier on a real PostgreSQL server. DTX_PG_DSN names it (scripts/test.sh starts a private
// one with scripts/pg-test-server.sh); each test works in a fresh schema that it drops afterwards.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <latch>
#include <random>
#include <thread>

#include "dtx/barrier.h"
#include "sdk/postgres_internal.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

class PostgresBarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::RequireDsn("DTX_PG_DSN", "scripts/pg-test-server.sh", &dsn_);
    if (dsn_.empty() || IsSkipped()) return;
    admin_ = PQconnectdb(dsn_.c_str());
    ASSERT_EQ(PQstatus(admin_), CONNECTION_OK) << PQerrorMessage(admin_);
    PQsetNoticeProcessor(
        admin_, [](void*, const char*) {}, nullptr);
    schema_ = testutil::UniqueName("dtx_t");
    AdminExec("CREATE SCHEMA " + schema_);
    conninfo_ = testutil::InSchema(dsn_, schema_);
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
    auto tx = store_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE((*tx)
                    ->Exec("CREATE TABLE accounts(id bigint PRIMARY KEY, balance bigint "
                           "NOT NULL CHECK (balance >= 0))")
                    .ok());
    ASSERT_TRUE((*tx)->Exec("INSERT INTO accounts VALUES (1, 100), (2, 100)").ok());
    ASSERT_TRUE((*tx)->Commit().ok());
  }

  void TearDown() override {
    store_.reset();
    if (admin_ != nullptr) {
      if (!schema_.empty()) AdminExec("DROP SCHEMA " + schema_ + " CASCADE");
      PQfinish(admin_);
    }
  }

  void AdminExec(const std::string& sql) {
    PGresult* r = PQexec(admin_, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(admin_);
    PQclear(r);
  }

  std::unique_ptr<PostgresBarrierStore> OpenStore() {
    auto store = PostgresBarrierStore::Open(conninfo_);
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
  int64_t Balance(int64_t id) { return Scalar("SELECT balance FROM accounts WHERE id = $1", {id}); }
  int64_t BarrierRows(const std::string& gid) {
    return Scalar("SELECT count(*) FROM dtx_barrier WHERE gid = $1", {gid});
  }

  static BusinessFn Add(int64_t id, int64_t delta, int* runs) {
    return [id, delta, runs](LocalTx& tx) -> Status {
      ++*runs;
      auto changed =
          tx.Exec("UPDATE accounts SET balance = balance + $1 WHERE id = $2", {delta, id});
      if (!changed.ok()) return changed.status();
      if (*changed != 1) return NotFound("no account " + std::to_string(id));
      return Status::Ok();
    };
  }

  static BranchCallInfo Info(std::string trans_type, std::string gid, std::string op) {
    return BranchCallInfo{std::move(trans_type), std::move(gid), "01", std::move(op)};
  }

  std::string dsn_;
  std::string schema_;
  std::string conninfo_;
  PGconn* admin_ = nullptr;
  std::unique_ptr<PostgresBarrierStore> store_;
};

TEST_F(PostgresBarrierTest, PurgeRemovesOnlyOldRowsByDatabaseClock) {
  int runs = 0;
  ASSERT_TRUE(Barrier(Info("saga", "old", "action")).Call(*store_, Add(1, -1, &runs)).ok());
  ASSERT_TRUE(Barrier(Info("saga", "new", "action")).Call(*store_, Add(1, -1, &runs)).ok());
  {
    auto tx = store_->Begin();
    ASSERT_TRUE(tx.ok());
    auto changed = (*tx)->Exec(
        "UPDATE dtx_barrier SET create_time = now() - interval '2 hours' WHERE gid = $1",
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

TEST_F(PostgresBarrierTest, SqlErrorsAreValuesAndValuesRoundTrip) {
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  auto rows = (*tx)->Query("SELECT $1::bigint, $2::float8, $3::text, $4::text, true",
                           {int64_t{-7}, 2.5, std::string("x'y"), nullptr});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0], (SqlRow{int64_t{-7}, 2.5, std::string("x'y"), nullptr, int64_t{1}}));
  ASSERT_TRUE((*tx)->Commit().ok());
  // Each error aborts its server transaction, so each is checked in a fresh one.
  auto first_error = [&](std::string_view sql, const std::vector<SqlValue>& params) {
    auto t = store_->Begin();
    EXPECT_TRUE(t.ok());
    if (!t.ok()) return t.status();
    return (*t)->Exec(sql, params).status();
  };
  EXPECT_EQ(first_error("SELECT $1", {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(first_error("SELECT 1; SELECT 2", {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(first_error("SELECT $1::text", {std::string("a\0b", 3)}).code(),
            StatusCode::kInvalidArgument);
  tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  auto bad = (*tx)->Exec("UPDATE no_such_table SET x = 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("no_such_table"), std::string::npos)
      << bad.status().ToString();
  // The transaction failed: the server turns COMMIT into a rollback, which must not look like OK.
  EXPECT_EQ((*tx)->Commit().code(), StatusCode::kAborted);
  EXPECT_EQ((*tx)->Exec("SELECT 1").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Balance(1), 100);  // The connection is usable again.
}

TEST_F(PostgresBarrierTest, UnreachableServerIsUnavailable) {
  auto store = PostgresBarrierStore::Open("host=127.0.0.1 port=1 dbname=x connect_timeout=5");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
}

// A try holds its row lock while a cancel of the same branch arrives on another connection: the
// cancel must wait, see the committed try and run the real compensation (not an empty one).
// A deadlock victim may retry the whole call: kUnavailable, never the kAborted that a participant
// would answer as FAILURE (a transient conflict must not fail a global transaction).
TEST_F(PostgresBarrierTest, DeadlockVictimIsUnavailable) {
  auto other = OpenStore();
  ASSERT_NE(other, nullptr);
  auto a = store_->Begin();
  auto b = other->Begin();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1").ok());
  ASSERT_TRUE((*b)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 2").ok());
  // Both second statements block on each other's row; the server's deadlock detector (after
  // deadlock_timeout) rolls one of them back and the other goes on.
  Status a_second;
  std::thread t([&] {
    a_second = (*a)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 2").status();
  });
  Status b_second = (*b)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1").status();
  t.join();
  ASSERT_NE(a_second.ok(), b_second.ok()) << a_second.ToString() << " / " << b_second.ToString();
  const Status& victim_error = a_second.ok() ? b_second : a_second;
  EXPECT_EQ(victim_error.code(), StatusCode::kUnavailable) << victim_error.ToString();
  EXPECT_NE(victim_error.message().find("40P01"), std::string::npos) << victim_error.ToString();
  LocalTx& victim = a_second.ok() ? **b : **a;
  LocalTx& survivor = a_second.ok() ? **a : **b;
  EXPECT_FALSE(victim.Commit().ok());
  ASSERT_TRUE(survivor.Commit().ok());
  EXPECT_EQ(Balance(1) + Balance(2), 198);
}

// Lock waits are bounded by default (a worker must not wait forever on a row that a prepared XA
// branch holds), a configured lock_timeout is kept, and a lock wait that runs out is kUnavailable.
TEST_F(PostgresBarrierTest, LockWaitsAreBoundedAndTimeOutAsUnavailable) {
  auto setting = [](BarrierStore& store) {
    auto tx = store.Begin();
    if (!tx.ok()) return std::string("begin failed");
    auto rows = (*tx)->Query("SELECT current_setting('lock_timeout')");
    if (!rows.ok() || rows->empty()) return std::string("query failed");
    return std::get<std::string>((*rows)[0][0]);
  };
  EXPECT_EQ(setting(*store_), "10s");
  auto configured = PostgresBarrierStore::Open(testutil::InSchema(dsn_, schema_) +
                                               (dsn_.find("://") == std::string::npos
                                                    ? " options='-c lock_timeout=3s'"
                                                    : "&options=-c%20lock_timeout%3D3s"));
  ASSERT_TRUE(configured.ok()) << configured.status().ToString();
  EXPECT_EQ(setting(**configured), "3s");

  auto holder = OpenStore();
  ASSERT_NE(holder, nullptr);
  auto held = holder->Begin();
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE((*held)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1").ok());
  auto waiter = store_->Begin();
  ASSERT_TRUE(waiter.ok());
  ASSERT_TRUE((*waiter)->Exec("SET LOCAL lock_timeout = '200ms'").ok());
  Status s = (*waiter)->Exec("UPDATE accounts SET balance = balance - 1 WHERE id = 1").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("55P03"), std::string::npos) << s.ToString();
  (void)(*waiter)->Rollback();
  ASSERT_TRUE((*held)->Commit().ok());
  EXPECT_EQ(Balance(1), 99);
}

// Two connections open a store on a schema without the barrier table at once. The one that wins
// the advisory lock creates the table, and a prepared XA branch then holds rows of it before the
// loser gets the lock. The loser must not run CREATE INDEX IF NOT EXISTS: it would wait for that
// prepared branch (which waits for it in turn, through the participant that prepared it).
TEST_F(PostgresBarrierTest, OpeningWhileAnotherConnectionCreatedTheSchemaSkipsTheDdl) {
  const std::string fresh = testutil::UniqueName("dtx_t");
  AdminExec("CREATE SCHEMA " + fresh);
  const std::string fresh_conninfo = testutil::InSchema(dsn_, fresh);
  auto winner = pg_internal::Connect(fresh_conninfo);
  ASSERT_TRUE(winner.ok()) << winner.status().ToString();
  PGconn* w = winner->get();
  ASSERT_TRUE(pg_internal::ExecSimple(w, "SELECT pg_advisory_lock(7424616839)", "lock").ok());

  Result<std::unique_ptr<PostgresBarrierStore>> loser = Unavailable("not opened");
  std::thread opener([&] { loser = PostgresBarrierStore::Open(fresh_conninfo); });
  // The loser found no table and queued for the advisory lock.
  bool queued = false;
  for (int i = 0; i < 2'000 && !queued; ++i) {
    PGresult* r = PQexec(admin_,
                         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT "
                         "granted AND objid::bigint = 7424616839::bigint % 4294967296");
    queued = PQresultStatus(r) == PGRES_TUPLES_OK && std::string(PQgetvalue(r, 0, 0)) != "0";
    PQclear(r);
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(queued) << "the second Open never waited for the schema lock";

  // A session holding an advisory lock may take it again: the winner creates the schema itself.
  ASSERT_TRUE(pg_internal::EnsureBarrierSchema(w).ok());
  const std::string prepared = testutil::UniqueName("schema_race");
  ASSERT_TRUE(pg_internal::ExecSimple(w,
                                      ("BEGIN; INSERT INTO dtx_barrier(gid, branch_id, op, "
                                       "barrier_id) VALUES ('g', '01', 'action', '01'); "
                                       "PREPARE TRANSACTION '" +
                                       prepared + "'")
                                          .c_str(),
                                      "prepare")
                  .ok());
  ASSERT_TRUE(pg_internal::ExecSimple(w, "SELECT pg_advisory_unlock(7424616839)", "unlock").ok());
  opener.join();
  EXPECT_TRUE(loser.ok()) << loser.status().ToString();
  ASSERT_TRUE(
      pg_internal::ExecSimple(w, ("ROLLBACK PREPARED '" + prepared + "'").c_str(), "rollback")
          .ok());
  AdminExec("DROP SCHEMA " + fresh + " CASCADE");
}

TEST_F(PostgresBarrierTest, CancelRacingAnOpenTryWaitsAndCompensates) {
  auto other = OpenStore();
  ASSERT_NE(other, nullptr);
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
    // Bounded wait until the cancel's backend is blocked on our row lock.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      PGresult* r = PQexec(admin_,
                           "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()");
      bool blocked =
          PQresultStatus(r) == PGRES_TUPLES_OK && std::string(PQgetvalue(r, 0, 0)) != "0";
      PQclear(r);
      if (blocked) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return DeadlineExceeded("the cancel never blocked on the try's row");
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
