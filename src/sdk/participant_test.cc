// BranchServer over real HTTP with SQLite barrier stores in a temporary directory, BarrierPurger,
// and one saga end to end through the real dtxd.
#include "dtx/participant.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dtx/barrier.h"
#include "dtx/client.h"
#include "harness.h"
#include "process.h"
#include "sdk/test_servers.h"

namespace dtx::sdk {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr auto kWait = seconds(10);

std::string BranchQuery(const std::string& trans_type, const std::string& gid,
                        const std::string& branch_id, const std::string& op) {
  return "?dtm=x&trans_type=" + trans_type + "&gid=" + gid + "&branch_id=" + branch_id +
         "&op=" + op;
}

// The body's "message" ("" when the body is not a JSON object).
std::string Message(const itest::HttpReply& r) {
  json j = r.Json();
  return j.is_object() ? j.value("message", "") : "";
}
std::string DtmResult(const itest::HttpReply& r) {
  json j = r.Json();
  return j.is_object() ? j.value("dtm_result", "") : "";
}

// A one-shot latch with a bounded wait.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Polls `done` every 20 ms until it holds or `limit` passes.
bool PollUntil(const std::function<bool()>& done, std::chrono::steady_clock::duration limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

class ParticipantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() + "/bank.db";
    auto store = OpenStore();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }

  // A store on the shared database file with an `account` table holding accounts 1 and 2.
  Result<std::unique_ptr<BarrierStore>> OpenStore() {
    auto store = SqliteBarrierStore::Open(db_path_);
    if (!store.ok()) return store.status();
    auto tx = (*store)->Begin();
    if (!tx.ok()) return tx.status();
    auto created = (*tx)->Exec(
        "CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
    if (!created.ok()) return created.status();
    auto seeded = (*tx)->Exec("INSERT OR IGNORE INTO account VALUES (1, 100), (2, 0)");
    if (!seeded.ok()) return seeded.status();
    DTX_RETURN_IF_ERROR((*tx)->Commit());
    return std::unique_ptr<BarrierStore>(std::move(*store));
  }

  StoreFactory Factory() {
    return [this]() -> Result<std::unique_ptr<BarrierStore>> {
      ++factory_calls_;
      return OpenStore();
    };
  }

  BranchServerOptions Options(int workers = 2) {
    BranchServerOptions o;
    o.worker_threads = workers;
    o.store_factory = Factory();
    o.barrier_purge_interval_s = 0;
    return o;
  }

  int64_t Scalar(const std::string& sql) {
    auto store = SqliteBarrierStore::Open(db_path_);
    if (!store.ok()) return -1;
    auto tx = (*store)->Begin();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query(sql);
    if (!rows.ok() || rows->size() != 1) return -1;
    return std::get<int64_t>((*rows)[0][0]);
  }
  int64_t Balance(int id) {
    return Scalar("SELECT balance FROM account WHERE id = " + std::to_string(id));
  }
  int64_t BarrierRows() { return Scalar("SELECT count(*) FROM dtx_barrier"); }

  std::string Url(const BranchServer& server, const std::string& path_and_query) {
    return "http://127.0.0.1:" + std::to_string(server.port()) + path_and_query;
  }

  itest::TempDir dir_;
  std::string db_path_;
  std::atomic<int> factory_calls_{0};
  itest::Http http_;
};

TEST(BranchResultTest, MapsStatusAndHttpCodes) {
  EXPECT_EQ(BranchResult(Status::Ok()).kind(), BranchResult::Kind::kSuccess);
  EXPECT_EQ(BranchResult(Aborted("no money")).kind(), BranchResult::Kind::kFailure);
  EXPECT_EQ(BranchResult(Aborted("no money")).message(), "no money");
  EXPECT_EQ(BranchResult(Unavailable("down")).kind(), BranchResult::Kind::kRetry);
  EXPECT_EQ(BranchResult(Internal("bug")).kind(), BranchResult::Kind::kRetry);
  EXPECT_EQ(BranchResult::Success().http_status(), 200);
  EXPECT_EQ(BranchResult::Failure("f").http_status(), 409);
  EXPECT_EQ(BranchResult::Ongoing("o").http_status(), 425);
  EXPECT_EQ(BranchResult::Retry("r").http_status(), 500);
}

TEST_F(ParticipantTest, AnswersEachResultKindWithDtmCodes) {
  BranchServer server(Options());
  server.Handle("/success", [](const BranchRequest&) { return BranchResult::Success(); })
      .Handle("/failure", [](const BranchRequest&) { return BranchResult::Failure("refused"); })
      .Handle("/ongoing", [](const BranchRequest&) { return BranchResult::Ongoing("later"); })
      .Handle("/retry", [](const BranchRequest&) { return BranchResult::Retry("db down"); })
      .Handle("/echo",
              [](const BranchRequest& r) {
                EXPECT_EQ(r.info, (BranchCallInfo{"saga", "g1", "01", "action"}));
                EXPECT_EQ(r.body, R"({"amount":5})");
                EXPECT_EQ(r.method, "POST");
                EXPECT_EQ(r.QueryParam("dtm"), "x");
                EXPECT_EQ(r.QueryParam("nope"), std::nullopt);
                return BranchResult::Success();
              })
      .HandlePlain("/health", [](const BranchRequest&) {
        return PlainResponse{201, "text/plain", "fine"};
      });
  ASSERT_TRUE(server.Start().ok());
  const std::string q = BranchQuery("saga", "g1", "01", "action");

  auto r = http_.Post(Url(server, "/success" + q), "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json(), json({{"dtm_result", "SUCCESS"}}));
  r = http_.Post(Url(server, "/failure" + q), "");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.Json(), json({{"dtm_result", "FAILURE"}, {"message", "refused"}}));
  r = http_.Post(Url(server, "/ongoing" + q), "");
  EXPECT_EQ(r.status, 425);
  EXPECT_EQ(r.Json(), json({{"dtm_result", "ONGOING"}, {"message", "later"}}));
  r = http_.Post(Url(server, "/retry" + q), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.Json(), json({{"message", "db down"}}));
  r = http_.Post(Url(server, "/echo" + q), R"({"amount":5})");
  EXPECT_EQ(r.status, 200);
  r = http_.Get(Url(server, "/health"));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "fine");
}

TEST_F(ParticipantTest, BadQueryIs400AndUnknownPathIs404) {
  std::atomic<int> calls{0};
  BranchServer server(Options());
  server
      .Handle("/branch",
              [&](const BranchRequest&) {
                ++calls;
                return BranchResult::Success();
              })
      .HandleWithBarrier("/barrier",
                         [&](LocalTx&, const BranchRequest&) {
                           ++calls;
                           return Status::Ok();
                         })
      .HandleQueryPrepared("/qp");
  ASSERT_TRUE(server.Start().ok());

  struct Case {
    std::string target;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"/branch", "'trans_type' is missing"},
      {"/branch?trans_type=saga&gid=g&branch_id=01", "'op' is missing"},
      {"/barrier" + BranchQuery("saga", "g", "01", "try"), "not an op of trans_type 'saga'"},
      {"/barrier" + BranchQuery("bogus", "g", "01", "action"), "unknown trans_type 'bogus'"},
      {"/barrier" + BranchQuery("saga", "", "01", "action"), "'gid' is empty"},
      {"/qp", "'gid' is missing"},
      {"/qp?gid=has%20space", "gid"},
      {"/qp?gid=" + std::string(200, 'g'), "gid"},
  };
  for (const auto& c : cases) {
    auto r = http_.Post(Url(server, c.target), "");
    EXPECT_EQ(r.status, 400) << c.target << " " << r.body;
    EXPECT_NE(Message(r).find(c.expect), std::string::npos) << c.target << " " << r.body;
  }
  EXPECT_EQ(calls, 0);

  auto r = http_.Get(Url(server, "/nowhere" + BranchQuery("saga", "g", "01", "action")));
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(Message(r).find("/nowhere"), std::string::npos) << r.body;
}

TEST_F(ParticipantTest, BarrierAnomaliesOverHttp) {
  std::atomic<int> debits{0};
  std::atomic<int> refunds{0};
  BranchServer server(Options());
  server
      .HandleWithBarrier("/debit",
                         [&](LocalTx& tx, const BranchRequest& r) -> Status {
                           ++debits;
                           if (r.body == "refuse") return Aborted("insufficient funds");
                           auto n = tx.Exec("UPDATE account SET balance = balance - 10 WHERE id=1");
                           return n.status();
                         })
      .HandleWithBarrier("/refund", [&](LocalTx& tx, const BranchRequest&) -> Status {
        ++refunds;
        return tx.Exec("UPDATE account SET balance = balance + 10 WHERE id = 1").status();
      });
  ASSERT_TRUE(server.Start().ok());

  // Empty compensation, then the hanging action it makes harmless.
  auto r =
      http_.Post(Url(server, "/refund" + BranchQuery("saga", "g-empty", "01", "compensate")), "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(refunds, 0);
  r = http_.Post(Url(server, "/debit" + BranchQuery("saga", "g-empty", "01", "action")), "");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(DtmResult(r), "FAILURE");
  EXPECT_EQ(debits, 0);
  EXPECT_EQ(Balance(1), 100);

  // Duplicates of an action and of its compensation run the business once each.
  for (int i = 0; i < 3; ++i) {
    r = http_.Post(Url(server, "/debit" + BranchQuery("saga", "g-dup", "01", "action")), "");
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(debits, 1);
  EXPECT_EQ(Balance(1), 90);
  for (int i = 0; i < 3; ++i) {
    r = http_.Post(Url(server, "/refund" + BranchQuery("saga", "g-dup", "01", "compensate")), "");
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(refunds, 1);
  EXPECT_EQ(Balance(1), 100);

  // A business failure is FAILURE and rolls back with its barrier rows, so a retry runs again.
  r = http_.Post(Url(server, "/debit" + BranchQuery("saga", "g-refused", "01", "action")),
                 "refuse");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.Json(), json({{"dtm_result", "FAILURE"}, {"message", "insufficient funds"}}));
  r = http_.Post(Url(server, "/debit" + BranchQuery("saga", "g-refused", "01", "action")), "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(debits, 3);
  EXPECT_EQ(Balance(1), 90);

  // TCC: a cancel before the try, then the try hangs.
  r = http_.Post(Url(server, "/refund" + BranchQuery("tcc", "g-tcc", "01", "cancel")), "");
  EXPECT_EQ(r.status, 200);
  r = http_.Post(Url(server, "/debit" + BranchQuery("tcc", "g-tcc", "01", "try")), "");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(debits, 3);
  EXPECT_EQ(refunds, 1);
}

TEST_F(ParticipantTest, QueryPreparedAnswersFromTheBarrier) {
  BranchServer server(Options());
  server.HandleQueryPrepared("/qp");
  ASSERT_TRUE(server.Start().ok());
  auto store = OpenStore();
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(CallMsgLocal(**store, "m-committed", [](LocalTx& tx) {
                return tx.Exec("UPDATE account SET balance = balance - 1 WHERE id = 1").status();
              }).ok());

  auto r = http_.Get(Url(server, "/qp?gid=m-committed"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json(), json({{"dtm_result", "SUCCESS"}}));
  r = http_.Get(Url(server, "/qp?gid=m-late"));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(DtmResult(r), "FAILURE");
  // The FAILURE answer wins over a late local commit.
  Status late = CallMsgLocal(**store, "m-late", [](LocalTx&) { return Status::Ok(); });
  EXPECT_EQ(late.code(), StatusCode::kAborted) << late.ToString();
}

TEST_F(ParticipantTest, ConcurrentCallsRunOnSeveralWorkersEachWithItsOwnStore) {
  constexpr int kWorkers = 4;
  constexpr int kCalls = 40;
  std::mutex mu;
  std::condition_variable cv;
  int opening = 0;
  bool rendezvous_timed_out = false;
  std::set<std::thread::id> factory_threads;
  std::set<std::thread::id> business_threads;
  std::atomic<int> factory_calls{0};

  BranchServerOptions o = Options(kWorkers);
  o.store_factory = [&]() -> Result<std::unique_ptr<BarrierStore>> {
    ++factory_calls;
    {
      // Two workers must be opening their stores at the same time.
      std::unique_lock lock(mu);
      factory_threads.insert(std::this_thread::get_id());
      ++opening;
      cv.notify_all();
      if (!cv.wait_for(lock, kWait, [&] { return opening >= 2; })) rendezvous_timed_out = true;
    }
    return OpenStore();
  };
  BranchServer server(std::move(o));
  server.HandleWithBarrier("/credit", [&](LocalTx& tx, const BranchRequest&) {
    {
      std::lock_guard lock(mu);
      business_threads.insert(std::this_thread::get_id());
    }
    return tx.Exec("UPDATE account SET balance = balance + 1 WHERE id = 2").status();
  });
  ASSERT_TRUE(server.Start().ok());

  std::vector<std::future<itest::HttpReply>> replies;
  for (int i = 0; i < kCalls; ++i) {
    replies.push_back(http_.Async(
        "POST",
        Url(server, "/credit" + BranchQuery("saga", "c" + std::to_string(i), "01", "action")), "",
        20'000));
  }
  for (auto& f : replies) {
    auto r = f.get();
    EXPECT_EQ(r.status, 200) << r.transport.ToString() << " " << r.body;
  }
  EXPECT_EQ(Balance(2), kCalls);
  std::lock_guard lock(mu);
  EXPECT_FALSE(rendezvous_timed_out);
  EXPECT_GE(factory_calls, 2);
  EXPECT_LE(factory_calls, kWorkers);
  // One store per worker thread: no thread opened two.
  EXPECT_EQ(factory_threads.size(), static_cast<size_t>(factory_calls.load()));
  for (const auto& t : business_threads) EXPECT_EQ(factory_threads.count(t), 1u);
}

TEST_F(ParticipantTest, FailingStoreFactoryAnswers500UntilItWorks) {
  std::atomic<bool> broken{true};
  std::atomic<int> calls{0};
  BranchServerOptions o = Options(1);
  o.store_factory = [&]() -> Result<std::unique_ptr<BarrierStore>> {
    ++calls;
    if (broken) return Unavailable("database is down");
    return OpenStore();
  };
  BranchServer server(std::move(o));
  std::atomic<bool> lose_connection{false};
  server.HandleWithBarrier("/op", [&](LocalTx&, const BranchRequest&) -> Status {
    if (lose_connection.exchange(false)) return Unavailable("connection lost");
    return Status::Ok();
  });
  server.HandleQueryPrepared("/qp");
  ASSERT_TRUE(server.Start().ok());

  auto r = http_.Post(Url(server, "/op" + BranchQuery("saga", "f1", "01", "action")), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(Message(r).find("database is down"), std::string::npos) << r.body;
  r = http_.Get(Url(server, "/qp?gid=f1"));
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_EQ(calls, 2);

  broken = false;
  r = http_.Post(Url(server, "/op" + BranchQuery("saga", "f1", "01", "action")), "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(calls, 3);
  r = http_.Post(Url(server, "/op" + BranchQuery("saga", "f2", "01", "action")), "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(calls, 3) << "a working store is kept";

  // kUnavailable drops the store; the next call opens a fresh one.
  lose_connection = true;
  r = http_.Post(Url(server, "/op" + BranchQuery("saga", "f3", "01", "action")), "");
  EXPECT_EQ(r.status, 500) << r.body;
  r = http_.Post(Url(server, "/op" + BranchQuery("saga", "f3", "01", "action")), "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(calls, 4);

  // A factory that throws or returns null is a 500 too.
  BranchServerOptions bad = Options(1);
  std::atomic<int> bad_calls{0};
  bad.store_factory = [&]() -> Result<std::unique_ptr<BarrierStore>> {
    if (bad_calls++ == 0) throw std::runtime_error("factory exploded");
    return std::unique_ptr<BarrierStore>();
  };
  BranchServer bad_server(std::move(bad));
  bad_server.HandleWithBarrier("/op", [](LocalTx&, const BranchRequest&) { return Status::Ok(); });
  ASSERT_TRUE(bad_server.Start().ok());
  r = http_.Post(Url(bad_server, "/op" + BranchQuery("saga", "b", "01", "action")), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("factory exploded"), std::string::npos) << r.body;
  r = http_.Post(Url(bad_server, "/op" + BranchQuery("saga", "b", "01", "action")), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("null"), std::string::npos) << r.body;
}

TEST_F(ParticipantTest, ExceptionsInHandlersAre500AndTheServerKeepsServing) {
  BranchServer server(Options(1));
  server
      .Handle("/throw",
              [](const BranchRequest&) -> BranchResult { throw std::runtime_error("boom"); })
      .Handle("/throw-int", [](const BranchRequest&) -> BranchResult { throw 42; })
      .HandleWithBarrier("/barrier-throw",
                         [](LocalTx& tx, const BranchRequest&) -> Status {
                           (void)tx.Exec("UPDATE account SET balance = 0 WHERE id = 1");
                           throw std::runtime_error("business boom");
                         })
      .HandlePlain("/plain-throw",
                   [](const BranchRequest&) -> PlainResponse { throw std::logic_error("plain"); })
      .Handle("/ok", [](const BranchRequest&) { return BranchResult::Success(); });
  ASSERT_TRUE(server.Start().ok());
  const std::string q = BranchQuery("saga", "x", "01", "action");

  auto r = http_.Post(Url(server, "/throw" + q), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(Message(r).find("boom"), std::string::npos) << r.body;
  r = http_.Post(Url(server, "/throw-int" + q), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("unknown exception"), std::string::npos) << r.body;
  r = http_.Post(Url(server, "/barrier-throw" + q), "");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("business boom"), std::string::npos) << r.body;
  EXPECT_EQ(Balance(1), 100) << "the business's local transaction was rolled back";
  EXPECT_EQ(BarrierRows(), 0);
  r = http_.Get(Url(server, "/plain-throw"));
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("plain"), std::string::npos) << r.body;
  r = http_.Post(Url(server, "/ok" + q), "");
  EXPECT_EQ(r.status, 200);
}

TEST_F(ParticipantTest, AutomaticPurgeRemovesOldRows) {
  BranchServerOptions o = Options(1);
  o.barrier_purge_interval_s = 1;
  o.barrier_purge_age_s = 0;
  BranchServer server(std::move(o));
  server.HandleWithBarrier("/op", [](LocalTx&, const BranchRequest&) { return Status::Ok(); });
  ASSERT_TRUE(server.Start().ok());
  auto r = http_.Post(Url(server, "/op" + BranchQuery("saga", "p1", "01", "action")), "");
  ASSERT_EQ(r.status, 200);
  r = http_.Post(Url(server, "/op" + BranchQuery("saga", "p1", "01", "compensate")), "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(BarrierRows(), 2);
  // Rows go once SQLite's clock has passed their second and a purge ran: a few seconds at most.
  EXPECT_TRUE(PollUntil([&] { return server.barrier_rows_purged() >= 2; }, kWait));
  EXPECT_EQ(BarrierRows(), 0);
  EXPECT_TRUE(server.last_purge_error().ok()) << server.last_purge_error().ToString();
}

TEST_F(ParticipantTest, StopWithRequestsInFlightReturnsAndJoins) {
  Gate entered;
  Gate release;
  std::atomic<int> runs{0};
  BranchServerOptions o = Options(1);
  o.barrier_purge_interval_s = 3600;  // Stop must not wait for the purge timer
  BranchServer server(std::move(o));
  server.Handle("/slow", [&](const BranchRequest&) {
    ++runs;
    entered.Open();
    return release.Wait() ? BranchResult::Success() : BranchResult::Retry("never released");
  });
  ASSERT_TRUE(server.Start().ok());
  const std::string url = Url(server, "/slow" + BranchQuery("saga", "s", "01", "action"));
  auto first = http_.Async("POST", url, "", 20'000);
  ASSERT_TRUE(entered.Wait());
  auto queued = http_.Async("POST", url, "", 20'000);

  const auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] { server.Stop(); });
  // Once the port refuses connections the workers take no new job: let the running one finish.
  itest::Http probe;
  EXPECT_TRUE(PollUntil(
      [&] {
        auto r = probe.Call("GET", Url(server, "/slow"), "", 500);
        return !r.transport.ok();
      },
      kWait));
  release.Open();
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, kWait);
  EXPECT_EQ(runs, 1) << "the queued request must not start after Stop";
  EXPECT_FALSE(first.get().transport.ok()) << "the answer of a handler running at Stop is dropped";
  // Dropped with its connection, or 503 if it arrived after the workers stopped taking jobs.
  EXPECT_NE(queued.get().status, 200);
  server.Stop();  // idempotent
}

TEST_F(ParticipantTest, FullQueueAnswers503) {
  Gate entered;
  Gate release;
  BranchServerOptions o = Options(1);
  o.max_queued_requests = 1;
  BranchServer server(std::move(o));
  server.Handle("/slow", [&](const BranchRequest&) {
    entered.Open();
    return release.Wait() ? BranchResult::Success() : BranchResult::Retry("never released");
  });
  ASSERT_TRUE(server.Start().ok());
  const std::string url = Url(server, "/slow" + BranchQuery("saga", "q", "01", "action"));
  auto running = http_.Async("POST", url, "", 20'000);
  ASSERT_TRUE(entered.Wait());
  // The worker is busy: one of these three is queued, the other two are refused at once.
  std::vector<std::future<itest::HttpReply>> more;
  for (int i = 0; i < 3; ++i) more.push_back(http_.Async("POST", url, "", 20'000));
  int refused = 0;
  EXPECT_TRUE(PollUntil(
      [&] {
        for (auto& f : more) {
          if (f.valid() && f.wait_for(milliseconds(0)) == std::future_status::ready) {
            auto r = f.get();
            EXPECT_EQ(r.status, 503) << r.body;
            EXPECT_NE(Message(r).find("too many requests"), std::string::npos) << r.body;
            ++refused;
          }
        }
        return refused >= 2;
      },
      kWait));
  EXPECT_EQ(refused, 2);
  release.Open();
  EXPECT_EQ(running.get().status, 200);
  for (auto& f : more) {
    if (f.valid()) {
      EXPECT_EQ(f.get().status, 200);
    }
  }
}

TEST_F(ParticipantTest, StartTwiceAndStartAfterStopAreRefused) {
  BranchServer server(Options());
  server.Handle("/a", [](const BranchRequest&) { return BranchResult::Success(); });
  EXPECT_EQ(server.port(), 0);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_NE(server.port(), 0);
  EXPECT_EQ(server.Start().code(), StatusCode::kFailedPrecondition);
  server.Stop();
  EXPECT_EQ(server.Start().code(), StatusCode::kFailedPrecondition);
}

TEST_F(ParticipantTest, BadOptionsAndRoutesAreRefusedByStart) {
  auto start = [&](BranchServerOptions o) {
    BranchServer s(std::move(o));
    s.Handle("/a", [](const BranchRequest&) { return BranchResult::Success(); });
    return s.Start();
  };
  struct Case {
    std::function<void(BranchServerOptions&)> change;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](auto& o) { o.worker_threads = 0; }, "worker_threads"},
      {[](auto& o) { o.worker_threads = 257; }, "worker_threads"},
      {[](auto& o) { o.max_queued_requests = 0; }, "max_queued_requests"},
      {[](auto& o) { o.max_body_bytes = 0; }, "max_body_bytes"},
      {[](auto& o) { o.host = ""; }, "host"},
      {[](auto& o) { o.barrier_purge_interval_s = -1; }, "barrier_purge_interval_s"},
      {[](auto& o) { o.barrier_purge_interval_s = int64_t{1} << 40; }, "barrier_purge_interval_s"},
      {[](auto& o) { o.barrier_purge_age_s = -1; }, "barrier_purge_age_s"},
  };
  for (const auto& c : cases) {
    BranchServerOptions o = Options();
    c.change(o);
    Status s = start(std::move(o));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.expect << ": " << s.ToString();
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.ToString();
  }

  auto routes = [&](const std::function<void(BranchServer&)>& add, BranchServerOptions o) {
    BranchServer s(std::move(o));
    add(s);
    return s.Start();
  };
  BranchServerOptions no_store = Options();
  no_store.store_factory = nullptr;
  Status s = routes([](BranchServer& b) { b.HandleQueryPrepared("/qp"); }, no_store);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("store_factory"), std::string::npos) << s.ToString();
  s = routes(
      [](BranchServer& b) {
        b.Handle("/a", [](const BranchRequest&) { return BranchResult::Success(); });
      },
      no_store);
  EXPECT_TRUE(s.ok()) << "plain branch routes and the default purge need no store: "
                      << s.ToString();
  s = routes(
      [](BranchServer& b) {
        b.HandlePlain("nope", [](const BranchRequest&) { return PlainResponse{}; });
      },
      Options());
  EXPECT_NE(s.message().find("must start with '/'"), std::string::npos) << s.ToString();
  s = routes([](BranchServer& b) { b.HandleQueryPrepared("/x").HandleQueryPrepared("/x"); },
             Options());
  EXPECT_NE(s.message().find("registered twice"), std::string::npos) << s.ToString();
  s = routes([](BranchServer& b) { b.Handle("/x", nullptr); }, Options());
  EXPECT_NE(s.message().find("empty handler"), std::string::npos) << s.ToString();

  // A port in use is kUnavailable.
  BranchServer first(Options());
  ASSERT_TRUE(first.Start().ok());
  BranchServerOptions same = Options();
  same.port = first.port();
  BranchServer second(std::move(same));
  EXPECT_EQ(second.Start().code(), StatusCode::kUnavailable);
}

TEST_F(ParticipantTest, BarrierPurgerPurgesOldRowsAndStopsAtOnce) {
  auto store = OpenStore();
  ASSERT_TRUE(store.ok());
  {
    auto tx = (*store)->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE((*tx)
                    ->Exec("INSERT INTO dtx_barrier (trans_type, gid, branch_id, op, barrier_id, "
                           "reason, create_time) VALUES ('saga', 'old', '01', 'action', '01', "
                           "'action', datetime('now', '-100 seconds'))")
                    .ok());
    ASSERT_TRUE((*tx)->InsertBarrierIgnore({"saga", "new", "01", "action", "01", "action"}).ok());
    ASSERT_TRUE((*tx)->Commit().ok());
  }
  const auto created = std::chrono::steady_clock::now();
  {
    BarrierPurger purger(std::move(*store), 3600, 50);
    ASSERT_TRUE(purger.status().ok());
    auto removed = purger.PurgeNow();
    ASSERT_TRUE(removed.ok()) << removed.status().ToString();
    EXPECT_EQ(*removed, 1u);
    EXPECT_EQ(purger.rows_purged(), 1u);
    EXPECT_TRUE(purger.last_error().ok());
    EXPECT_EQ(BarrierRows(), 1);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - created, seconds(5))
      << "the destructor must not wait for the interval";

  BarrierPurger null_store(nullptr, 10, 10);
  EXPECT_EQ(null_store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(null_store.PurgeNow().status().code(), StatusCode::kInvalidArgument);
  for (auto [interval, age] :
       {std::pair<int64_t, int64_t>{0, 10}, {-1, 10}, {10, -1}, {int64_t{1} << 40, 10}}) {
    auto s = OpenStore();
    ASSERT_TRUE(s.ok());
    BarrierPurger bad(std::move(*s), interval, age);
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << interval << " " << age;
    EXPECT_EQ(bad.PurgeNow().status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(bad.rows_purged(), 0u);
  }
}

TEST_F(ParticipantTest, BarrierPurgerRunsInTheBackground) {
  auto store = OpenStore();
  ASSERT_TRUE(store.ok());
  {
    auto tx = (*store)->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE((*tx)
                    ->Exec("INSERT INTO dtx_barrier (gid, branch_id, op, barrier_id, create_time) "
                           "VALUES ('old', '01', 'action', '01', datetime('now', '-100 seconds'))")
                    .ok());
    ASSERT_TRUE((*tx)->Commit().ok());
  }
  BarrierPurger purger(std::move(*store), 1, 50);
  ASSERT_TRUE(purger.status().ok());
  EXPECT_TRUE(PollUntil([&] { return purger.rows_purged() == 1; }, kWait));
  EXPECT_EQ(BarrierRows(), 0);
}

// ---------------------------------------------------------------------------------------------
// End to end: a saga through the real dtxd whose steps are BranchServer barrier routes.

TEST_F(ParticipantTest, SagaThroughDtxdCompensatesAFailedStep) {
  std::atomic<int> in_calls{0};
  std::atomic<int> in_compensations{0};
  auto amount = [](const BranchRequest& r) -> Result<int64_t> {
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j["amount"].is_number_integer()) {
      return InvalidArgument("body needs an integer amount");
    }
    return j["amount"].get<int64_t>();
  };
  auto shift = [&](LocalTx& tx, int id, int64_t delta) -> Status {
    auto n = tx.Exec("UPDATE account SET balance = balance + ? WHERE id = ? AND balance + ? >= 0",
                     {delta, int64_t{id}, delta});
    if (!n.ok()) return n.status();
    return *n == 1 ? Status::Ok() : Aborted("insufficient funds in account " + std::to_string(id));
  };
  BranchServer server(Options(2));
  server
      .HandleWithBarrier("/out",
                         [&](LocalTx& tx, const BranchRequest& r) -> Status {
                           auto a = amount(r);
                           return a.ok() ? shift(tx, 1, -*a) : a.status();
                         })
      .HandleWithBarrier("/out-compensate",
                         [&](LocalTx& tx, const BranchRequest& r) -> Status {
                           auto a = amount(r);
                           return a.ok() ? shift(tx, 1, *a) : a.status();
                         })
      .HandleWithBarrier("/in",
                         [&](LocalTx& tx, const BranchRequest& r) -> Status {
                           ++in_calls;
                           auto j = json::parse(r.body, nullptr, false);
                           if (j.is_object() && j.value("refuse", false)) {
                             return Aborted("account 2 is closed");
                           }
                           auto a = amount(r);
                           return a.ok() ? shift(tx, 2, *a) : a.status();
                         })
      .HandleWithBarrier("/in-compensate", [&](LocalTx& tx, const BranchRequest& r) -> Status {
        ++in_compensations;
        auto a = amount(r);
        return a.ok() ? shift(tx, 2, -*a) : a.status();
      });
  ASSERT_TRUE(server.Start().ok());

  itest::DtxdProcess dtxd(http_, dir_.path() + "/dtxd-data", dir_.path() + "/dtxd.log");
  Status s = dtxd.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  DtxClient client(dtxd.Url(""));
  auto u = [&](const std::string& path) { return Url(server, path); };

  s = Saga(client, "e2e-ok")
          .Add(u("/out"), u("/out-compensate"), R"({"amount":30})")
          .Add(u("/in"), u("/in-compensate"), R"({"amount":30})")
          .WaitResult(true)
          .Submit();
  ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << dtxd.LogTail();
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Balance(2), 30);

  s = Saga(client, "e2e-fail")
          .Add(u("/out"), u("/out-compensate"), R"({"amount":20})")
          .Add(u("/in"), u("/in-compensate"), R"({"amount":20,"refuse":true})")
          .WaitResult(true)
          .Submit();
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString() << "\n" << dtxd.LogTail();
  // WaitResult answers when the saga is final, i.e. after its compensations succeeded.
  std::string status;
  EXPECT_TRUE(PollUntil(
      [&] {
        auto q = client.Query("e2e-fail");
        if (q.ok() && (*q)["transaction"].is_object()) {
          status = (*q)["transaction"].value("status", "");
        }
        return status == "failed";
      },
      kWait))
      << status;
  EXPECT_EQ(Balance(1), 70) << "the debit was compensated";
  EXPECT_EQ(Balance(2), 30);
  EXPECT_EQ(in_calls, 2);
  EXPECT_EQ(in_compensations, 0) << "the failed step's compensation is an empty one";
  if (HasFailure()) std::printf("--- dtxd log ---\n%s\n", dtxd.LogTail().c_str());
}

// ---------------------------------------------------------------------------------------------
// XA through the real dtxd on PostgreSQL: HandleXa routes prepare, register and finish branches.

class ParticipantXaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dsn;
    testutil::RequireDsn("DTX_PG_DSN", "scripts/pg-test-server.sh", &dsn);
    if (dsn.empty() || IsSkipped()) return;
    admin_dsn_ = dsn;
    // A database of its own: XA recovery acts on every dtx branch of its database.
    db_ = testutil::UniqueName("dtx_px");
    ASSERT_TRUE(Exec(admin_dsn_, "CREATE DATABASE " + db_));
    conninfo_ = testutil::InDatabase(dsn, db_);
    ASSERT_TRUE(Exec(conninfo_,
                     "CREATE TABLE account (id bigint PRIMARY KEY, balance bigint NOT NULL "
                     "CHECK (balance >= 0)); INSERT INTO account VALUES (1, 100), (2, 0)"));
  }
  void TearDown() override {
    if (db_.empty()) return;
    // A failed test may leave prepared branches behind; they would block the drop.
    if (auto xa = OpenPostgresXa(conninfo_); xa.ok()) {
      if (auto listed = (*xa)->ListPrepared(); listed.ok()) {
        for (const auto& b : *listed) (void)(*xa)->Rollback(b);
      }
    }
    (void)Exec(admin_dsn_, "DROP DATABASE IF EXISTS " + db_);
  }

  static bool Exec(const std::string& conninfo, const std::string& sql) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
      PGresult* r = PQexec(c, sql.c_str());
      ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      if (!ok) ADD_FAILURE() << sql << ": " << PQerrorMessage(c);
      PQclear(r);
    }
    PQfinish(c);
    return ok;
  }
  int64_t Balance(int id) {
    auto store = PostgresBarrierStore::Open(conninfo_);
    if (!store.ok()) return -1;
    auto tx = (*store)->Begin();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query("SELECT balance FROM account WHERE id = $1", {int64_t{id}});
    if (!rows.ok() || rows->size() != 1) return -1;
    return std::get<int64_t>((*rows)[0][0]);
  }
  size_t Prepared() {
    auto xa = OpenPostgresXa(conninfo_);
    if (!xa.ok()) return 999;
    auto listed = (*xa)->ListPrepared();
    return listed.ok() ? listed->size() : 999;
  }

  itest::TempDir dir_;
  itest::Http http_;
  std::string admin_dsn_, db_, conninfo_;
};

TEST_F(ParticipantXaTest, XaThroughDtxdCommitsBothBranchesOrNeitherAndRecoversOrphans) {
  itest::DtxdProcess dtxd(http_, dir_.path() + "/dtxd-data", dir_.path() + "/dtxd.log");
  Status s = dtxd.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto shift = [](int id, int64_t delta) {
    return [id, delta](LocalTx& tx, const BranchRequest& r) -> Status {
      if (r.body == "refuse") return Aborted("account " + std::to_string(id) + " is closed");
      auto n =
          tx.Exec("UPDATE account SET balance = balance + $1 WHERE id = $2", {delta, int64_t{id}});
      if (!n.ok()) return n.status();
      return *n == 1 ? Status::Ok() : Aborted("no account " + std::to_string(id));
    };
  };
  BranchServerOptions o;
  o.worker_threads = 4;
  o.barrier_purge_interval_s = 0;
  o.xa_factory = [this] { return OpenPostgresXa(conninfo_); };
  o.dtxd_url = dtxd.Url("");
  o.xa_recovery_interval_s = 1;
  BranchServer server(o);
  server.HandleXa("/xa/out", "/xa/out-phase2", shift(1, -30))
      .HandleXa("/xa/in", "/xa/in-phase2", shift(2, 30));
  ASSERT_TRUE(server.Start().ok());
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  DtxClient client(dtxd.Url(""));
  auto status_of = [&](const std::string& gid) {
    auto q = client.Query(gid);
    if (!q.ok() || !(*q)["transaction"].is_object()) return std::string();
    return (*q)["transaction"].value("status", "");
  };
  constexpr auto kWait = std::chrono::seconds(20);

  // PostgreSQL's prepared-transaction names are cluster-wide: gids unique to this test's database.
  const std::string ok_gid = db_ + "-ok", refused_gid = db_ + "-refused", orphan_gid = db_ + "-o";
  s = Xa::Run(client, ok_gid, [&](Xa& xa) -> Status {
    DTX_RETURN_IF_ERROR(xa.CallBranch("", base + "/xa/out").status());
    return xa.CallBranch("", base + "/xa/in").status();
  });
  ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << dtxd.LogTail();
  EXPECT_TRUE(PollUntil([&] { return status_of(ok_gid) == "succeed"; }, kWait));
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Balance(2), 30);

  // The second branch refuses: the first, already prepared and registered, is rolled back.
  s = Xa::Run(client, refused_gid, [&](Xa& xa) -> Status {
    DTX_RETURN_IF_ERROR(xa.CallBranch("", base + "/xa/out").status());
    return xa.CallBranch("refuse", base + "/xa/in").status();
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_TRUE(PollUntil([&] { return status_of(refused_gid) == "failed"; }, kWait));
  EXPECT_TRUE(PollUntil([&] { return Prepared() == 0; }, kWait));
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Balance(2), 30);

  // A branch prepared for a gid dtxd never heard of (its registration was lost): the server's
  // recovery rolls it back.
  auto orphan_xa = OpenPostgresXa(conninfo_);
  ASSERT_TRUE(orphan_xa.ok());
  ASSERT_TRUE(
      (*orphan_xa)
          ->RunAndPrepare({orphan_gid, "01"},
                          [](LocalTx& tx) {
                            return tx.Exec("UPDATE account SET balance = 0 WHERE id = 1").status();
                          })
          .ok());
  EXPECT_EQ(Prepared(), 1u);
  EXPECT_TRUE(PollUntil([&] { return Prepared() == 0; }, kWait));
  EXPECT_EQ(Balance(1), 70);
  EXPECT_GE(server.xa_recovery_runs(), 1u);

  // Misuse is answered, not crashed on: a phase-1 call with the wrong op, a phase 2 without op.
  itest::HttpReply r = http_.Post(base + "/xa/out?gid=g&trans_type=xa&branch_id=01&op=commit", "");
  EXPECT_EQ(r.status, 409) << r.body;
  r = http_.Post(base + "/xa/out-phase2?gid=g&trans_type=xa&branch_id=01", "");
  EXPECT_EQ(r.status, 400) << r.body;
  server.Stop();
}

TEST(ParticipantXaOptionsTest, XaRoutesNeedAFactoryAndADtxd) {
  BranchServerOptions o;
  BranchServer no_factory(o);
  no_factory.HandleXa("/a", "/b", [](LocalTx&, const BranchRequest&) { return Status::Ok(); });
  EXPECT_EQ(no_factory.Start().code(), StatusCode::kInvalidArgument);
  o.xa_factory = []() -> Result<std::unique_ptr<XaResource>> { return Unavailable("none"); };
  BranchServer no_dtxd(o);
  no_dtxd.HandleXa("/a", "/b", [](LocalTx&, const BranchRequest&) { return Status::Ok(); });
  EXPECT_EQ(no_dtxd.Start().code(), StatusCode::kInvalidArgument);
  o.dtxd_url = "ftp://x";
  BranchServer bad_dtxd(o);
  bad_dtxd.HandleXa("/a", "/b", [](LocalTx&, const BranchRequest&) { return Status::Ok(); });
  EXPECT_EQ(bad_dtxd.Start().code(), StatusCode::kInvalidArgument);
  o.dtxd_url = "http://127.0.0.1:1";
  o.advertised_url = "not a url";
  BranchServer bad_advertised(o);
  bad_advertised.HandleXa("/a", "/b", [](LocalTx&, const BranchRequest&) { return Status::Ok(); });
  EXPECT_EQ(bad_advertised.Start().code(), StatusCode::kInvalidArgument);
  o.advertised_url.clear();
  o.xa_recovery_interval_s = -1;
  BranchServer bad_interval(o);
  EXPECT_EQ(bad_interval.Start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dtx::sdk
