// The barrier's contract, once, against every backend: SQLite (a file and :memory:), PostgreSQL
// and MariaDB (real servers: DTX_PG_DSN, DTX_MARIADB_DSN, which scripts/test.sh provides).
// Backend-specific behaviour (error mapping, reconnects, deadlocks, purge SQL) stays in
// barrier_test.cc, barrier_postgres_test.cc and barrier_mariadb_test.cc.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <filesystem>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>

#include "dtx/barrier.h"
#include "sdk/mariadb_internal.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

enum class Backend { kSqliteFile, kSqliteMemory, kPostgres, kMariaDb };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kSqliteFile:
      return "SqliteFile";
    case Backend::kSqliteMemory:
      return "SqliteMemory";
    case Backend::kPostgres:
      return "Postgres";
    case Backend::kMariaDb:
      return "MariaDb";
  }
  return "Unknown";
}

class BarrierConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::kSqliteFile: {
        std::string tmpl =
            (std::filesystem::path(::testing::TempDir()) / "dtx-conf-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
        sqlite_path_ = (std::filesystem::path(dir_) / "bank.db").string();
        break;
      }
      case Backend::kSqliteMemory:
        sqlite_path_ = ":memory:";
        break;
      case Backend::kPostgres: {
        std::string dsn;
        testutil::RequireDsn("DTX_PG_DSN", "scripts/pg-test-server.sh", &dsn);
        if (dsn.empty() || IsSkipped()) return;
        pg_admin_ = PQconnectdb(dsn.c_str());
        ASSERT_EQ(PQstatus(pg_admin_), CONNECTION_OK) << PQerrorMessage(pg_admin_);
        PQsetNoticeProcessor(
            pg_admin_, [](void*, const char*) {}, nullptr);
        scope_ = testutil::UniqueName("dtx_conf");
        PgAdmin("CREATE SCHEMA " + scope_);
        pg_conninfo_ = testutil::InSchema(dsn, scope_);
        break;
      }
      case Backend::kMariaDb: {
        std::string dsn;
        testutil::RequireDsn("DTX_MARIADB_DSN", "scripts/mariadb-test-server.sh", &dsn);
        if (dsn.empty() || IsSkipped()) return;
        auto base = MariaDbOptions::Parse(dsn);
        ASSERT_TRUE(base.ok()) << base.status().ToString();
        auto admin = mariadb::Connect(*base);
        ASSERT_TRUE(admin.ok()) << admin.status().ToString();
        maria_admin_ = std::move(*admin);
        scope_ = testutil::UniqueName("dtx_conf");
        MariaAdmin("CREATE DATABASE " + scope_);
        maria_options_ = *base;
        maria_options_.database = scope_;
        break;
      }
    }
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
    CreateAccounts();
  }

  void TearDown() override {
    store_.reset();
    if (pg_admin_ != nullptr) {
      if (!scope_.empty()) PgAdmin("DROP SCHEMA " + scope_ + " CASCADE");
      PQfinish(pg_admin_);
    }
    if (maria_admin_ != nullptr && !scope_.empty()) MariaAdmin("DROP DATABASE " + scope_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  void PgAdmin(const std::string& sql) {
    PGresult* r = PQexec(pg_admin_, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(pg_admin_);
    PQclear(r);
  }
  void MariaAdmin(const std::string& sql) {
    auto r = mariadb::Exec(maria_admin_.get(), sql, {}, "admin");
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  }

  // A new connection to the same database (not possible for a private :memory: database).
  std::unique_ptr<BarrierStore> OpenStore() {
    Result<std::unique_ptr<BarrierStore>> store = Internal("unopened");
    switch (GetParam()) {
      case Backend::kSqliteFile:
      case Backend::kSqliteMemory:
        store = Upcast(SqliteBarrierStore::Open(sqlite_path_));
        break;
      case Backend::kPostgres:
        store = Upcast(PostgresBarrierStore::Open(pg_conninfo_));
        break;
      case Backend::kMariaDb:
        store = Upcast(MariaDbBarrierStore::Open(maria_options_));
        break;
    }
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }
  template <typename T>
  static Result<std::unique_ptr<BarrierStore>> Upcast(Result<std::unique_ptr<T>> r) {
    if (!r.ok()) return r.status();
    return std::unique_ptr<BarrierStore>(std::move(*r));
  }

  // accounts(id, balance >= 0) with accounts 1 and 2 holding 100 each.
  void CreateAccounts() {
    if (GetParam() == Backend::kMariaDb) {
      // MariaDB commits DDL implicitly: it runs outside the store's transactions.
      MariaAdmin("CREATE TABLE " + scope_ +
                 ".accounts(id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, "
                 "CONSTRAINT nonnegative CHECK (balance >= 0)) ENGINE=InnoDB");
      MariaAdmin("INSERT INTO " + scope_ + ".accounts VALUES (1, 100), (2, 100)");
      return;
    }
    auto tx = store_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE((*tx)
                    ->Exec("CREATE TABLE accounts(id BIGINT PRIMARY KEY, balance BIGINT "
                           "NOT NULL CHECK (balance >= 0))")
                    .ok());
    ASSERT_TRUE((*tx)->Exec("INSERT INTO accounts VALUES (1, 100), (2, 100)").ok());
    ASSERT_TRUE((*tx)->Commit().ok());
  }

  // `?` placeholders in the backend's syntax ($1, $2, ... for PostgreSQL).
  std::string Sql(std::string_view q) const {
    if (GetParam() != Backend::kPostgres) return std::string(q);
    std::string out;
    int n = 0;
    for (char c : q) out += c == '?' ? "$" + std::to_string(++n) : std::string(1, c);
    return out;
  }

  int64_t Scalar(const std::string& sql, const std::vector<SqlValue>& params) {
    auto tx = store_->Begin();
    EXPECT_TRUE(tx.ok()) << tx.status().ToString();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query(Sql(sql), params);
    EXPECT_TRUE(rows.ok() && rows->size() == 1) << rows.status().ToString();
    if (!rows.ok() || rows->size() != 1) return -1;
    EXPECT_TRUE((*tx)->Commit().ok());
    return std::get<int64_t>((*rows)[0][0]);
  }
  int64_t Balance(int64_t id) { return Scalar("SELECT balance FROM accounts WHERE id = ?", {id}); }
  int64_t BarrierRows(const std::string& gid) {
    return Scalar("SELECT COUNT(*) FROM dtx_barrier WHERE gid = ?", {gid});
  }

  // Business that adds `delta` to account `id` and counts its runs.
  BusinessFn Add(int64_t id, int64_t delta, int* runs) {
    return [this, id, delta, runs](LocalTx& tx) -> Status {
      ++*runs;
      auto changed =
          tx.Exec(Sql("UPDATE accounts SET balance = balance + ? WHERE id = ?"), {delta, id});
      if (!changed.ok()) return changed.status();
      if (*changed != 1) return NotFound("no account " + std::to_string(id));
      return Status::Ok();
    };
  }

  static BranchCallInfo Info(std::string trans_type, std::string gid, std::string op) {
    return BranchCallInfo{std::move(trans_type), std::move(gid), "01", std::move(op)};
  }

  std::string dir_;
  std::string sqlite_path_;
  std::string scope_;  // PostgreSQL schema or MariaDB database of this test
  std::string pg_conninfo_;
  PGconn* pg_admin_ = nullptr;
  MariaDbOptions maria_options_;
  mariadb::ConnPtr maria_admin_;
  std::unique_ptr<BarrierStore> store_;
};

TEST_P(BarrierConformanceTest, NormalActionThenCompensateBothRun) {
  int action_runs = 0, comp_runs = 0;
  ASSERT_TRUE(Barrier(Info("saga", "g1", "action")).Call(*store_, Add(1, -30, &action_runs)).ok());
  EXPECT_EQ(Balance(1), 70);
  Status s = Barrier(Info("saga", "g1", "compensate")).Call(*store_, Add(1, 30, &comp_runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(action_runs, 1);
  EXPECT_EQ(comp_runs, 1);
  EXPECT_EQ(Balance(1), 100);
}

TEST_P(BarrierConformanceTest, DuplicateActionAndCompensateRunOnce) {
  int action_runs = 0, comp_runs = 0;
  for (int i = 0; i < 2; ++i) {
    Status s = Barrier(Info("saga", "g2", "action")).Call(*store_, Add(1, -30, &action_runs));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(action_runs, 1);
  EXPECT_EQ(Balance(1), 70);
  for (int i = 0; i < 2; ++i) {
    Status s = Barrier(Info("saga", "g2", "compensate")).Call(*store_, Add(1, 30, &comp_runs));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(comp_runs, 1);
  EXPECT_EQ(Balance(1), 100);
}

TEST_P(BarrierConformanceTest, DuplicateConfirmRunsOnce) {
  int try_runs = 0, confirm_runs = 0;
  ASSERT_TRUE(Barrier(Info("tcc", "g3", "try")).Call(*store_, Add(1, -10, &try_runs)).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        Barrier(Info("tcc", "g3", "confirm")).Call(*store_, Add(2, 10, &confirm_runs)).ok());
  }
  EXPECT_EQ(try_runs, 1);
  EXPECT_EQ(confirm_runs, 1);
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 110);
}

TEST_P(BarrierConformanceTest, EmptyCompensationThenHangingTryIsRefused) {
  int cancel_runs = 0, try_runs = 0;
  Status s = Barrier(Info("tcc", "g4", "cancel")).Call(*store_, Add(1, 30, &cancel_runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(cancel_runs, 0);
  EXPECT_EQ(BarrierRows("g4"), 2);  // The origin row (try, reason cancel) and the cancel row.

  s = Barrier(Info("tcc", "g4", "try")).Call(*store_, Add(1, -30, &try_runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_NE(s.message().find("hanging"), std::string::npos) << s.ToString();
  EXPECT_EQ(try_runs, 0);

  s = Barrier(Info("tcc", "g4", "cancel")).Call(*store_, Add(1, 30, &cancel_runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(cancel_runs, 0);
  EXPECT_EQ(Balance(1), 100);
}

TEST_P(BarrierConformanceTest, SagaCompensateBeforeActionIsEmptyAndActionHangs) {
  int comp_runs = 0, action_runs = 0;
  ASSERT_TRUE(Barrier(Info("saga", "g5", "compensate")).Call(*store_, Add(1, 30, &comp_runs)).ok());
  Status s = Barrier(Info("saga", "g5", "action")).Call(*store_, Add(1, -30, &action_runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(comp_runs, 0);
  EXPECT_EQ(action_runs, 0);
  EXPECT_EQ(Balance(1), 100);
}

TEST_P(BarrierConformanceTest, BusinessErrorRollsBackBarrierRowAndRetryRuns) {
  int runs = 0;
  // The debit applies, then the business fails: both it and the barrier row must vanish.
  BusinessFn failing = [&](LocalTx& tx) -> Status {
    DTX_RETURN_IF_ERROR(Add(1, -40, &runs)(tx));
    return Aborted("risk check refused");
  };
  Status s = Barrier(Info("saga", "g6", "action")).Call(*store_, failing);
  EXPECT_EQ(s, Aborted("risk check refused"));
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(BarrierRows("g6"), 0);

  s = Barrier(Info("saga", "g6", "action")).Call(*store_, Add(1, -40, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(Balance(1), 60);
}

TEST_P(BarrierConformanceTest, ConstraintFailureInBusinessRollsBack) {
  int runs = 0;
  Status s = Barrier(Info("saga", "g7", "action")).Call(*store_, Add(1, -500, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();  // CHECK (balance >= 0).
  EXPECT_EQ(BarrierRows("g7"), 0);
  EXPECT_EQ(Balance(1), 100);
}

TEST_P(BarrierConformanceTest, ThrowingBusinessIsContainedAndRolledBack) {
  BusinessFn throwing = [](LocalTx& tx) -> Status {
    (void)tx.Exec("UPDATE accounts SET balance = 0 WHERE id = 1");
    throw std::runtime_error("boom");
  };
  Status s = Barrier(Info("saga", "g8", "action")).Call(*store_, throwing);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("boom"), std::string::npos);
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(BarrierRows("g8"), 0);
  s = Barrier(Info("saga", "g8", "action")).Call(*store_, BusinessFn());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST_P(BarrierConformanceTest, BarrierIdsCountPerObject) {
  int runs = 0;
  Barrier b(Info("saga", "g9", "action"));
  ASSERT_TRUE(b.Call(*store_, Add(1, -1, &runs)).ok());
  ASSERT_TRUE(b.Call(*store_, Add(1, -2, &runs)).ok());
  EXPECT_EQ(runs, 2);
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  auto rows = (*tx)->Query("SELECT barrier_id FROM dtx_barrier WHERE gid = 'g9' ORDER BY 1");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ(std::get<std::string>((*rows)[0][0]), "01");
  EXPECT_EQ(std::get<std::string>((*rows)[1][0]), "02");
  ASSERT_TRUE((*tx)->Commit().ok());
  // A redelivered call gets a new Barrier object and replays the same ids: nothing runs again.
  Barrier again(Info("saga", "g9", "action"));
  ASSERT_TRUE(again.Call(*store_, Add(1, -1, &runs)).ok());
  ASSERT_TRUE(again.Call(*store_, Add(1, -2, &runs)).ok());
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(Balance(1), 97);
}

TEST_P(BarrierConformanceTest, MsgCommittedBeforeQueryPreparedIsSuccess) {
  int runs = 0;
  ASSERT_TRUE(CallMsgLocal(*store_, "m1", Add(1, -25, &runs)).ok());
  EXPECT_TRUE(QueryPrepared(*store_, "m1").ok());
  EXPECT_TRUE(QueryPrepared(*store_, "m1").ok());
  Status s = CallMsgLocal(*store_, "m1", Add(1, -25, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Balance(1), 75);
}

TEST_P(BarrierConformanceTest, MsgQueryPreparedBeforeCommitIsFailureAndLateCommitRefused) {
  int runs = 0;
  Status s = QueryPrepared(*store_, "m2");
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(QueryPrepared(*store_, "m2").code(), StatusCode::kAborted);
  s = CallMsgLocal(*store_, "m2", Add(1, -25, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("FAILURE"), std::string::npos);
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(Balance(1), 100);
}

TEST_P(BarrierConformanceTest, MsgLocalBusinessFailureLeavesMessageUncommitted) {
  int runs = 0;
  BusinessFn failing = [&](LocalTx& tx) -> Status {
    DTX_RETURN_IF_ERROR(Add(1, -25, &runs)(tx));
    return FailedPrecondition("order rejected");
  };
  EXPECT_EQ(CallMsgLocal(*store_, "m3", failing).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(QueryPrepared(*store_, "m3").code(), StatusCode::kAborted);
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(QueryPrepared(*store_, "").code(), StatusCode::kInvalidArgument);
}

// Free races of try and cancel on two connections: whoever wins, the account ends where it started
// and the cancel's business ran exactly when the try's did.
TEST_P(BarrierConformanceTest, TryAndCancelRacesEndConsistent) {
  if (GetParam() == Backend::kSqliteMemory) GTEST_SKIP() << ":memory: has one connection";
  auto other = OpenStore();
  ASSERT_NE(other, nullptr);
  constexpr int kRounds = 30;
  int try_runs = 0, cancel_runs = 0, refused = 0;
  for (int i = 0; i < kRounds; ++i) {
    const std::string gid = "r" + std::to_string(i);
    std::latch go(2);
    Status try_status, cancel_status;
    std::thread t([&] {
      go.arrive_and_wait();
      try_status = Barrier(Info("tcc", gid, "try")).Call(*store_, Add(1, -10, &try_runs));
    });
    go.arrive_and_wait();
    // A server may pick either call as a deadlock victim (both insert into the same unique
    // index): the victim is rolled back and told kUnavailable. dtxd retries a cancel until it
    // succeeds, so the test does too (bounded); a try victim is simply not applied.
    for (int attempt = 0; attempt < 5; ++attempt) {
      cancel_status = Barrier(Info("tcc", gid, "cancel")).Call(*other, Add(1, 10, &cancel_runs));
      if (cancel_status.code() != StatusCode::kUnavailable) break;
    }
    t.join();
    ASSERT_TRUE(cancel_status.ok()) << cancel_status.ToString();
    if (!try_status.ok()) {
      ASSERT_TRUE(try_status.code() == StatusCode::kAborted ||
                  try_status.code() == StatusCode::kUnavailable)
          << try_status.ToString();
      ++refused;
    }
    ASSERT_EQ(try_runs, cancel_runs) << "round " << i;
    ASSERT_EQ(try_runs + refused, i + 1);
  }
  EXPECT_EQ(Balance(1), 100);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BarrierConformanceTest,
                         ::testing::Values(Backend::kSqliteFile, Backend::kSqliteMemory,
                                           Backend::kPostgres, Backend::kMariaDb),
                         BackendName);

}  // namespace
}  // namespace dtx::sdk
