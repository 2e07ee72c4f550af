// RecoverInDoubt: decisions by dtxd's status on a fake resource and an in-process fake dtxd, then
// end to end with the PostgreSQL resource in a database of its own (recovery touches every dtx
// branch of its database, and other tests prepare theirs at the same time).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dtx/client.h"
#include "dtx/xa.h"
#include "runtime/http.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

using nlohmann::json;

// A fake dtxd that answers `GET /api/dtmsvr/query?gid=` from a table: a gid with a status gets
// {"transaction": {"gid", "status"}, "branches": []}, an unknown gid {"transaction": null, ...};
// gids in `raw` get that answer verbatim (status code and body).
class FakeDtxd {
 public:
  FakeDtxd() : work_(boost::asio::make_work_guard(io_)) {
    auto s = runtime::HttpServer::Start(
        io_, {},
        [this](runtime::HttpRequest&& req, runtime::Responder respond) { respond(Answer(req)); });
    if (!s.ok()) throw std::runtime_error(s.status().ToString());
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeDtxd() {
    boost::asio::post(io_, [this] {
      server_->Stop();
      work_.reset();
    });
    thread_.join();
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  void SetStatus(const std::string& gid, const std::string& status) {
    std::lock_guard lock(mu_);
    status_[gid] = status;
  }
  void SetRaw(const std::string& gid, int http_status, const std::string& body) {
    std::lock_guard lock(mu_);
    raw_[gid] = {http_status, body};
  }
  // The gids queried, in order.
  std::vector<std::string> Queried() {
    std::lock_guard lock(mu_);
    return queried_;
  }

 private:
  runtime::HttpResponse Answer(const runtime::HttpRequest& req) {
    std::lock_guard lock(mu_);
    if (req.method != "GET" || req.path != "/api/dtmsvr/query") {
      return {404, "application/json", R"({"message":"not found"})", {}};
    }
    std::string gid = req.QueryParam("gid").value_or("");
    queried_.push_back(gid);
    if (auto r = raw_.find(gid); r != raw_.end()) {
      return {r->second.first, "application/json", r->second.second, {}};
    }
    json body = {{"transaction", nullptr}, {"branches", json::array()}};
    if (auto st = status_.find(gid); st != status_.end()) {
      body["transaction"] = {{"gid", gid}, {"trans_type", "xa"}, {"status", st->second}};
    }
    return {200, "application/json", body.dump(), {}};
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, std::string> status_;
  std::map<std::string, std::pair<int, std::string>> raw_;
  std::vector<std::string> queried_;
};

// An XaResource in memory: a set of prepared branches; Commit/Rollback remove them (and count),
// failing for the gids in `fail_gids`.
class FakeXa : public XaResource {
 public:
  Status EnsureSchema() override { return Status::Ok(); }
  Status RunAndPrepare(const XaBranch& b, const BusinessFn&) override {
    prepared.push_back(b);
    return Status::Ok();
  }
  Status Commit(const XaBranch& b) override { return Finish(b, &committed); }
  Status Rollback(const XaBranch& b) override { return Finish(b, &rolled_back); }
  Result<std::vector<XaBranch>> ListPrepared() override {
    if (!list_error.ok()) return list_error;
    return prepared;
  }

  std::vector<XaBranch> prepared, committed, rolled_back;
  std::set<std::string> fail_gids;
  Status list_error;

 private:
  Status Finish(const XaBranch& b, std::vector<XaBranch>* into) {
    if (fail_gids.count(b.gid) != 0) return Unavailable("fake: database down");
    prepared.erase(std::remove(prepared.begin(), prepared.end(), b), prepared.end());
    into->push_back(b);
    return Status::Ok();
  }
};

class RecoveryFakeTest : public ::testing::Test {
 protected:
  void Prepare(const std::string& gid, const std::string& branch_id = "01") {
    ASSERT_TRUE(xa_.RunAndPrepare({gid, branch_id}, nullptr).ok());
  }

  FakeDtxd dtxd_;
  DtxClient client_{dtxd_.Url(), ClientOptions{5'000}};
  FakeXa xa_;
};

TEST_F(RecoveryFakeTest, DecidesEachBranchByItsGlobalStatus) {
  dtxd_.SetStatus("g-submitted", "submitted");
  dtxd_.SetStatus("g-succeed", "succeed");
  dtxd_.SetStatus("g-aborting", "aborting");
  dtxd_.SetStatus("g-failed", "failed");
  dtxd_.SetStatus("g-prepared", "prepared");
  for (const char* g :
       {"g-submitted", "g-succeed", "g-aborting", "g-failed", "g-prepared", "g-unknown"}) {
    Prepare(g);
  }
  auto report = RecoverInDoubt(xa_, client_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 2);
  EXPECT_EQ(report->rolled_back, 3);
  EXPECT_EQ(report->left, 1);
  EXPECT_EQ(xa_.committed, (std::vector<XaBranch>{{"g-submitted", "01"}, {"g-succeed", "01"}}));
  EXPECT_EQ(xa_.rolled_back,
            (std::vector<XaBranch>{{"g-aborting", "01"}, {"g-failed", "01"}, {"g-unknown", "01"}}));
  EXPECT_EQ(xa_.prepared, (std::vector<XaBranch>{{"g-prepared", "01"}}));
}

TEST_F(RecoveryFakeTest, BranchesOfOneGidShareOneQuery) {
  dtxd_.SetStatus("g", "succeed");
  Prepare("g", "01");
  Prepare("g", "02");
  Prepare("g", "03");
  auto report = RecoverInDoubt(xa_, client_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 3);
  EXPECT_EQ(dtxd_.Queried(), std::vector<std::string>{"g"});
  EXPECT_TRUE(xa_.prepared.empty());
}

TEST_F(RecoveryFakeTest, CommitErrorLeavesTheBranch) {
  dtxd_.SetStatus("g-ok", "succeed");
  dtxd_.SetStatus("g-bad", "succeed");
  dtxd_.SetStatus("g-bad-rb", "failed");
  Prepare("g-ok");
  Prepare("g-bad");
  Prepare("g-bad-rb");
  xa_.fail_gids = {"g-bad", "g-bad-rb"};
  auto report = RecoverInDoubt(xa_, client_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 1);
  EXPECT_EQ(report->rolled_back, 0);
  EXPECT_EQ(report->left, 2);
  EXPECT_EQ(xa_.prepared, (std::vector<XaBranch>{{"g-bad", "01"}, {"g-bad-rb", "01"}}));
  // The next run finishes them once the database is back.
  xa_.fail_gids.clear();
  report = RecoverInDoubt(xa_, client_);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->committed, 1);
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(report->left, 0);
}

TEST_F(RecoveryFakeTest, UnclearAnswersLeaveTheBranch) {
  dtxd_.SetRaw("g-500", 500, R"({"message":"boom"})");
  dtxd_.SetRaw("g-junk", 200, "not json");
  dtxd_.SetRaw("g-no-transaction", 200, R"({"branches":[]})");
  dtxd_.SetRaw("g-status-number", 200, R"({"transaction":{"status":3},"branches":[]})");
  dtxd_.SetStatus("g-strange", "half-done");
  for (const char* g : {"g-500", "g-junk", "g-no-transaction", "g-status-number", "g-strange"}) {
    Prepare(g);
  }
  auto report = RecoverInDoubt(xa_, client_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 0);
  EXPECT_EQ(report->rolled_back, 0);
  EXPECT_EQ(report->left, 5);
  EXPECT_EQ(xa_.prepared.size(), 5u);
}

TEST_F(RecoveryFakeTest, DtxdDownLeavesEverything) {
  Prepare("g1");
  Prepare("g2");
  // Port 1 on loopback: the connection is refused at once.
  DtxClient down("http://127.0.0.1:1", ClientOptions{2'000});
  auto report = RecoverInDoubt(xa_, down);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->left, 2);
  EXPECT_EQ(report->committed + report->rolled_back, 0);
  EXPECT_EQ(xa_.prepared.size(), 2u);
}

TEST_F(RecoveryFakeTest, ListErrorFailsTheCall) {
  Prepare("g1");
  xa_.list_error = Unavailable("fake: cannot list");
  auto report = RecoverInDoubt(xa_, client_);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(dtxd_.Queried().empty());
}

TEST_F(RecoveryFakeTest, NothingPreparedIsANoop) {
  auto report = RecoverInDoubt(xa_, client_);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->committed + report->rolled_back + report->left, 0);
}

// End to end: real prepared transactions on PostgreSQL, decided by the fake dtxd.
class RecoveryPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::RequireDsn("DTX_PG_DSN", "scripts/pg-test-server.sh", &dsn_);
    if (dsn_.empty() || IsSkipped()) return;
    admin_ = Connect(dsn_);
    ASSERT_EQ(PQstatus(admin_), CONNECTION_OK) << PQerrorMessage(admin_);
    db_ = testutil::UniqueName("dtx_xarec");
    Exec(admin_, "CREATE DATABASE " + db_);
    conninfo_ = testutil::InDatabase(dsn_, db_);
    db_admin_ = Connect(conninfo_);
    ASSERT_EQ(PQstatus(db_admin_), CONNECTION_OK) << PQerrorMessage(db_admin_);
    Exec(db_admin_, "CREATE TABLE accounts(id bigint PRIMARY KEY, balance bigint NOT NULL)");
    Exec(db_admin_, "INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100), (4, 100)");
  }

  void TearDown() override {
    if (db_admin_ != nullptr) {
      for (const std::string& x : Column(db_admin_,
                                         "SELECT gid FROM pg_prepared_xacts WHERE database = "
                                         "current_database()")) {
        char* q = PQescapeLiteral(db_admin_, x.data(), x.size());
        Exec(db_admin_, std::string("ROLLBACK PREPARED ") + q);
        PQfreemem(q);
      }
      PQfinish(db_admin_);
    }
    if (admin_ != nullptr) {
      if (!db_.empty()) Exec(admin_, "DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
      PQfinish(admin_);
    }
  }

  static PGconn* Connect(const std::string& conninfo) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    return c;
  }
  static void Exec(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(c);
    PQclear(r);
  }
  static std::vector<std::string> Column(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << sql << ": " << PQerrorMessage(c);
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r); ++i) out.emplace_back(PQgetvalue(r, i, 0));
    PQclear(r);
    return out;
  }
  int64_t Balance(int64_t id) {
    auto v = Column(db_admin_, "SELECT balance FROM accounts WHERE id = " + std::to_string(id));
    return v.size() == 1 ? std::stoll(v[0]) : -1;
  }

  static BusinessFn Debit(int64_t id) {
    return [id](LocalTx& tx) -> Status {
      auto n = tx.Exec("UPDATE accounts SET balance = balance - 10 WHERE id = $1", {id});
      if (!n.ok()) return n.status();
      return *n == 1 ? Status::Ok() : NotFound("no account");
    };
  }

  std::string dsn_, db_, conninfo_;
  PGconn* admin_ = nullptr;
  PGconn* db_admin_ = nullptr;
};

TEST_F(RecoveryPostgresTest, FinishesBranchesLeftByADeadParticipant) {
  FakeDtxd dtxd;
  dtxd.SetStatus("g-succeed", "succeed");
  dtxd.SetStatus("g-failed", "failed");
  dtxd.SetStatus("g-prepared", "prepared");
  {
    auto xa = OpenPostgresXa(conninfo_);
    ASSERT_TRUE(xa.ok()) << xa.status().ToString();
    ASSERT_TRUE((*xa)->RunAndPrepare({"g-succeed", "01"}, Debit(1)).ok());
    ASSERT_TRUE((*xa)->RunAndPrepare({"g-failed", "01"}, Debit(2)).ok());
    ASSERT_TRUE((*xa)->RunAndPrepare({"g-prepared", "01"}, Debit(3)).ok());
    ASSERT_TRUE((*xa)->RunAndPrepare({"g-unknown", "01"}, Debit(4)).ok());
  }  // the participant's connection goes away; its branches stay prepared

  auto xa = OpenPostgresXa(conninfo_);
  ASSERT_TRUE(xa.ok()) << xa.status().ToString();
  DtxClient client(dtxd.Url(), ClientOptions{5'000});
  auto report = RecoverInDoubt(**xa, client);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 1);
  EXPECT_EQ(report->rolled_back, 2);
  EXPECT_EQ(report->left, 1);
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 100);
  EXPECT_EQ(Balance(3), 100) << "still prepared, not applied";
  EXPECT_EQ(Balance(4), 100);
  auto listed = (*xa)->ListPrepared();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::vector<XaBranch>{{"g-prepared", "01"}}));
  // A rolled-back branch is fenced: its late RunAndPrepare is refused.
  Status s = (*xa)->RunAndPrepare({"g-unknown", "01"}, Debit(4));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();

  // dtxd decides; the next recovery run finishes the last branch.
  dtxd.SetStatus("g-prepared", "submitted");
  report = RecoverInDoubt(**xa, client);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 1);
  EXPECT_EQ(report->left, 0);
  EXPECT_EQ(Balance(3), 90);
}

}  // namespace
}  // namespace dtx::sdk
