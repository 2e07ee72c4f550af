// The PostgreSQL XA resource on a real server named by DTX_PG_DSN (scripts/test.sh starts a
// private one with max_prepared_transactions=64). Each test works in a fresh schema; its gids
// start with the schema's name, because prepared transactions are visible cluster-wide and other
// tests prepare their own at the same time. TearDown rolls back whatever a test left prepared.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtx/xa.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

class PostgresXaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::RequireDsn("DTX_PG_DSN", "scripts/pg-test-server.sh", &dsn_);
    if (dsn_.empty() || IsSkipped()) return;
    admin_ = PQconnectdb(dsn_.c_str());
    ASSERT_EQ(PQstatus(admin_), CONNECTION_OK) << PQerrorMessage(admin_);
    PQsetNoticeProcessor(
        admin_, [](void*, const char*) {}, nullptr);
    schema_ = testutil::UniqueName("dtx_xa");
    AdminExec("CREATE SCHEMA " + schema_);
    AdminExec("CREATE TABLE " + schema_ +
              ".accounts(id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))");
    AdminExec("INSERT INTO " + schema_ + ".accounts VALUES (1, 100), (2, 100)");
    conninfo_ = testutil::InSchema(dsn_, schema_);
    xa_ = Open();
    ASSERT_NE(xa_, nullptr);
  }

  void TearDown() override {
    xa_.reset();
    if (admin_ == nullptr) return;
    // Prepared transactions hold locks on the schema's tables: end them before the DROP.
    for (const std::string& gid : OurPreparedXids()) {
      AdminExec("ROLLBACK PREPARED " + Literal(gid));
    }
    if (!schema_.empty()) AdminExec("DROP SCHEMA " + schema_ + " CASCADE");
    PQfinish(admin_);
  }

  std::unique_ptr<XaResource> Open() {
    auto xa = OpenPostgresXa(conninfo_);
    EXPECT_TRUE(xa.ok()) << xa.status().ToString();
    return xa.ok() ? std::move(*xa) : nullptr;
  }

  std::string Literal(const std::string& s) {
    char* q = PQescapeLiteral(admin_, s.data(), s.size());
    std::string out = q != nullptr ? q : "''";
    PQfreemem(q);
    return out;
  }

  void AdminExec(const std::string& sql) {
    PGresult* r = PQexec(admin_, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(admin_);
    PQclear(r);
  }

  // Every value of the first column, as text.
  std::vector<std::string> AdminColumn(const std::string& sql) {
    PGresult* r = PQexec(admin_, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << sql << ": " << PQerrorMessage(admin_);
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r); ++i) out.emplace_back(PQgetvalue(r, i, 0));
    PQclear(r);
    return out;
  }

  std::vector<std::string> OurPreparedXids() {
    std::vector<std::string> out;
    for (auto& x : AdminColumn("SELECT gid FROM pg_prepared_xacts")) {
      if (x.rfind("dtx:" + schema_, 0) == 0) out.push_back(x);
    }
    return out;
  }

  int64_t Balance(int64_t id) {
    auto v = AdminColumn("SELECT balance FROM " + schema_ +
                         ".accounts WHERE id = " + std::to_string(id));
    return v.size() == 1 ? std::stoll(v[0]) : -1;
  }

  // The reason of the branch's xa barrier row, or "" if there is none.
  std::string BarrierReason(const XaBranch& b) {
    auto v = AdminColumn("SELECT reason FROM " + schema_ +
                         ".dtx_barrier WHERE trans_type = 'xa' AND op = 'action' AND "
                         "barrier_id = '01' AND gid = " +
                         Literal(b.gid) + " AND branch_id = " + Literal(b.branch_id));
    return v.empty() ? "" : v[0];
  }

  // This test's branches among those the resource lists.
  std::vector<XaBranch> Listed(XaResource& xa) {
    auto all = xa.ListPrepared();
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    std::vector<XaBranch> out;
    if (!all.ok()) return out;
    for (auto& b : *all) {
      if (b.gid.rfind(schema_, 0) == 0) out.push_back(b);
    }
    return out;
  }

  XaBranch Branch(const std::string& suffix, std::string branch_id = "01") {
    return XaBranch{schema_ + "-" + suffix, std::move(branch_id)};
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

  std::string dsn_;
  std::string schema_;
  std::string conninfo_;
  PGconn* admin_ = nullptr;
  std::unique_ptr<XaResource> xa_;
};

TEST_F(PostgresXaTest, PrepareThenCommitApplies) {
  int runs = 0;
  XaBranch b = Branch("commit");
  Status s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Balance(1), 100) << "a prepared transaction is not visible yet";
  EXPECT_EQ(Listed(*xa_), std::vector<XaBranch>{b});
  s = xa_->Commit(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 70);
  EXPECT_TRUE(Listed(*xa_).empty());
  EXPECT_EQ(BarrierReason(b), "action");
}

TEST_F(PostgresXaTest, PrepareThenRollbackDiscards) {
  int runs = 0;
  XaBranch b = Branch("rollback");
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -30, &runs)).ok());
  Status s = xa_->Rollback(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 100);
  EXPECT_TRUE(Listed(*xa_).empty());
  EXPECT_EQ(BarrierReason(b), "rollback");
}

TEST_F(PostgresXaTest, CommitAndRollbackAreIdempotent) {
  int runs = 0;
  XaBranch c = Branch("c");
  ASSERT_TRUE(xa_->RunAndPrepare(c, Add(1, -10, &runs)).ok());
  ASSERT_TRUE(xa_->Commit(c).ok());
  Status s = xa_->Commit(c);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 90);

  XaBranch r = Branch("r");
  ASSERT_TRUE(xa_->RunAndPrepare(r, Add(2, -10, &runs)).ok());
  ASSERT_TRUE(xa_->Rollback(r).ok());
  s = xa_->Rollback(r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(2), 100);
  EXPECT_EQ(BarrierReason(r), "rollback");
  EXPECT_TRUE(Listed(*xa_).empty());
}

TEST_F(PostgresXaTest, HangingBranchIsRefused) {
  XaBranch b = Branch("hanging");
  Status s = xa_->Rollback(b);  // the rollback overtakes the branch's work
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(BarrierReason(b), "rollback");
  int runs = 0;
  s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(Listed(*xa_).empty());
  EXPECT_EQ(Balance(1), 100);
}

TEST_F(PostgresXaTest, DuplicatePrepareIsRefusedWithoutWaiting) {
  int runs = 0;
  XaBranch b = Branch("dup");
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -30, &runs)).ok());
  // From another connection: the prepared transaction holds the barrier key's lock, which a
  // plain insert would wait on forever.
  auto other = Open();
  ASSERT_NE(other, nullptr);
  Status s = other->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(runs, 1);
  ASSERT_TRUE(xa_->Commit(b).ok());
  s = other->RunAndPrepare(b, Add(1, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Balance(1), 70);
}

TEST_F(PostgresXaTest, BusinessErrorLeavesNothingPrepared) {
  int runs = 0;
  XaBranch b = Branch("biz");
  Status s = xa_->RunAndPrepare(b, Add(99, -30, &runs));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  // A constraint violation (balance < 0) is the database's error, returned as is.
  s = xa_->RunAndPrepare(b, Add(1, -1000, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  // A business that swallows its statement's error still cannot prepare the failed transaction.
  s = xa_->RunAndPrepare(b, [](LocalTx& tx) -> Status {
    (void)tx.Exec("UPDATE no_such_table SET x = 1");
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  s = xa_->RunAndPrepare(b, [](LocalTx&) -> Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  s = xa_->RunAndPrepare(b, [](LocalTx& tx) -> Status { return tx.Commit(); });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(Listed(*xa_).empty());
  EXPECT_EQ(BarrierReason(b), "") << "a failed attempt leaves no barrier row";
  EXPECT_EQ(Balance(1), 100);
  // Nothing was recorded, so a retry does the work.
  s = xa_->RunAndPrepare(b, Add(1, -30, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(xa_->Commit(b).ok());
  EXPECT_EQ(Balance(1), 70);
}

TEST_F(PostgresXaTest, BusinessCanQueryAndSeeItsOwnWrites) {
  XaBranch b = Branch("query");
  int64_t seen = -1;
  Status s = xa_->RunAndPrepare(b, [&](LocalTx& tx) -> Status {
    auto n = tx.Exec("UPDATE accounts SET balance = balance - 5 WHERE id = $1", {int64_t{2}});
    if (!n.ok()) return n.status();
    auto rows = tx.Query("SELECT balance FROM accounts WHERE id = $1", {int64_t{2}});
    if (!rows.ok()) return rows.status();
    seen = std::get<int64_t>(rows->at(0).at(0));
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(seen, 95);
  ASSERT_TRUE(xa_->Commit(b).ok());
  EXPECT_EQ(Balance(2), 95);
}

TEST_F(PostgresXaTest, PreparedBranchSurvivesItsConnection) {
  int runs = 0;
  XaBranch b = Branch("survivor", "07");
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(1, -40, &runs)).ok());
  xa_.reset();  // the participant dies after preparing
  auto other = Open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Listed(*other), std::vector<XaBranch>{b});
  Status s = other->Commit(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 60);
  EXPECT_TRUE(Listed(*other).empty());
}

TEST_F(PostgresXaTest, GidWithQuotesColonsAndWildcards) {
  int runs = 0;
  XaBranch a{schema_ + ":it's \"quoted\":a\\b%_", "01"};
  XaBranch b{schema_ + "''--;", "x'y"};
  ASSERT_TRUE(xa_->RunAndPrepare(a, Add(1, -1, &runs)).ok());
  ASSERT_TRUE(xa_->RunAndPrepare(b, Add(2, -2, &runs)).ok());
  auto listed = Listed(*xa_);
  std::sort(listed.begin(), listed.end(),
            [](const XaBranch& x, const XaBranch& y) { return x.gid < y.gid; });
  std::vector<XaBranch> want{a, b};
  std::sort(want.begin(), want.end(),
            [](const XaBranch& x, const XaBranch& y) { return x.gid < y.gid; });
  EXPECT_EQ(listed, want);
  Status s = xa_->Commit(a);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = xa_->Rollback(b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance(1), 99);
  EXPECT_EQ(Balance(2), 100);
  EXPECT_EQ(BarrierReason(a), "action");
  EXPECT_EQ(BarrierReason(b), "rollback");
  EXPECT_TRUE(Listed(*xa_).empty());
}

TEST_F(PostgresXaTest, ForeignPreparedTransactionsAreIgnored) {
  AdminExec("BEGIN");
  AdminExec("INSERT INTO " + schema_ + ".accounts VALUES (3, 1)");
  AdminExec("PREPARE TRANSACTION " + Literal("dtx:" + schema_ + "-nobranch"));
  AdminExec("BEGIN");
  AdminExec("INSERT INTO " + schema_ + ".accounts VALUES (4, 1)");
  AdminExec("PREPARE TRANSACTION " + Literal("dtx:" + schema_ + "-empty:"));
  EXPECT_TRUE(Listed(*xa_).empty());
  // TearDown rolls both back (they start with "dtx:<schema>").
  EXPECT_EQ(OurPreparedXids().size(), 2u);
}

TEST_F(PostgresXaTest, InvalidBranchesAreRefused) {
  int runs = 0;
  for (const XaBranch& b : {XaBranch{"", "01"}, XaBranch{"g", ""}, XaBranch{"g", "0:1"},
                            XaBranch{"g\n", "01"}, XaBranch{std::string(129, 'g'), "01"},
                            XaBranch{std::string(128, 'g'), std::string(67, 'b')}}) {
    Status s = xa_->RunAndPrepare(b, Add(1, -1, &runs));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << b.gid << "/" << b.branch_id;
    EXPECT_EQ(xa_->Commit(b).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(xa_->Rollback(b).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(runs, 0);
  // The longest identifier PostgreSQL accepts: "dtx:" + 128 + ":" + 66 = 199 bytes.
  XaBranch longest{schema_ + std::string(128 - schema_.size(), 'g'), std::string(66, 'b')};
  Status s = xa_->RunAndPrepare(longest, Add(1, -1, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Listed(*xa_), std::vector<XaBranch>{longest});
  ASSERT_TRUE(xa_->Rollback(longest).ok());
}

TEST(PostgresXaSettings, UnreachableServerIsUnavailable) {
  const char* env = std::getenv("DTX_PG_DSN");
  if (env != nullptr && std::string(env) == "skip") GTEST_SKIP() << "DTX_PG_DSN=skip";
  // Port 1 on loopback: nothing listens there, the connect is refused at once.
  auto xa = OpenPostgresXa("host=127.0.0.1 port=1 dbname=x connect_timeout=5");
  ASSERT_FALSE(xa.ok());
  EXPECT_EQ(xa.status().code(), StatusCode::kUnavailable) << xa.status().ToString();
}

// A throwaway cluster with max_prepared_transactions = 0 (PostgreSQL's default), listening only
// on a unix socket in its own directory. Costs an initdb (a few seconds).
class NoPreparedTransactionsServer {
 public:
  NoPreparedTransactionsServer() {
    for (const auto& d : {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
                          "/usr/lib/postgresql/17/bin"}) {
      if (std::filesystem::exists(std::string(d) + "/initdb")) bindir_ = d;
    }
    if (bindir_.empty()) return;
    char tmpl[] = "/tmp/dtx-xa-pg0.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    if (getuid() == 0) {
      if (std::system(("chown postgres: " + dir_).c_str()) != 0) return;
      as_ = "runuser -u postgres -- ";
    }
    std::string init = as_ + bindir_ + "/initdb -D " + dir_ + "/data -U postgres -A trust " +
                       "--no-sync >" + dir_ + "/initdb.log 2>&1";
    if (std::system(init.c_str()) != 0) return;
    std::string start = as_ + bindir_ + "/pg_ctl -D " + dir_ + "/data -l " + dir_ +
                        "/server.log -w -t 30 -o \"-c listen_addresses='' -c port=5432 " +
                        "-c unix_socket_directories=" + dir_ +
                        " -c max_prepared_transactions=0\" start >/dev/null 2>&1";
    if (std::system(start.c_str()) != 0) return;
    started_ = true;
  }
  ~NoPreparedTransactionsServer() {
    if (started_) {
      (void)std::system((as_ + bindir_ + "/pg_ctl -D " + dir_ +
                         "/data -m immediate -w -t 30 stop >/dev/null 2>&1")
                            .c_str());
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  bool started() const { return started_; }
  std::string bindir() const { return bindir_; }
  std::string conninfo() const {
    return "host=" + dir_ + " port=5432 dbname=postgres user=postgres connect_timeout=10";
  }

 private:
  std::string bindir_, dir_, as_;
  bool started_ = false;
};

TEST(PostgresXaSettings, MaxPreparedTransactionsZeroIsNamed) {
  const char* env = std::getenv("DTX_PG_DSN");
  if (env != nullptr && std::string(env) == "skip") GTEST_SKIP() << "DTX_PG_DSN=skip";
  NoPreparedTransactionsServer server;
  if (server.bindir().empty()) GTEST_SKIP() << "no PostgreSQL server binaries to start one with";
  ASSERT_TRUE(server.started()) << "could not start a private cluster (see the log in /tmp)";
  auto xa = OpenPostgresXa(server.conninfo());
  ASSERT_TRUE(xa.ok()) << xa.status().ToString();
  int runs = 0;
  Status s = (*xa)->RunAndPrepare(XaBranch{"g", "01"}, [&runs](LocalTx& tx) -> Status {
    ++runs;
    auto n = tx.Exec("CREATE TABLE t(x int)");
    return n.ok() ? Status::Ok() : n.status();
  });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("max_prepared_transactions"), std::string::npos) << s.ToString();
  EXPECT_EQ(runs, 1);
  auto listed = (*xa)->ListPrepared();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_TRUE(listed->empty());
  // Nothing stayed behind: the table and the barrier row went with the refused transaction.
  s = (*xa)->RunAndPrepare(XaBranch{"g", "01"}, [](LocalTx& tx) -> Status {
    auto rows = tx.Query("SELECT count(*) FROM dtx_barrier");
    if (!rows.ok()) return rows.status();
    if (std::get<int64_t>(rows->at(0).at(0)) != 1) return Internal("barrier rows left behind");
    auto n = tx.Exec("CREATE TABLE t(x int)");
    return n.ok() ? Status::Ok() : n.status();
  });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
}

}  // namespace
}  // namespace dtx::sdk
