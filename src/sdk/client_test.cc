// The SDK client: the bodies it sends and its error mapping against an in-process fake dtxd,
// then every mode end to end against the real dtxd and dtx-participant binaries.
#include "dtx/client.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "process.h"
#include "runtime/http.h"

namespace dtx::sdk {
namespace {

using nlohmann::json;

// A fake dtxd: records every request and answers with `answer` (by default 200 SUCCESS). An
// answer with status 0 is never sent, which makes the client time out.
class FakeDtxd {
 public:
  FakeDtxd() : work_(boost::asio::make_work_guard(io_)) {
    auto s = runtime::HttpServer::Start(
        io_, {}, [this](runtime::HttpRequest&& req, runtime::Responder respond) {
          std::lock_guard lock(mu_);
          runtime::HttpResponse r = answer_ ? answer_(req) : Ok();
          requests_.push_back(std::move(req));
          if (r.status == 0) {
            held_.push_back(std::move(respond));
            return;
          }
          respond(std::move(r));
        });
    if (!s.ok()) throw std::runtime_error(s.status().ToString());
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeDtxd() {
    boost::asio::post(io_, [this] {
      server_->Stop();
      held_.clear();
      work_.reset();
    });
    thread_.join();
  }

  static runtime::HttpResponse Ok() {
    return {200, "application/json", R"({"dtm_result":"SUCCESS"})", {}};
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  void Answer(std::function<runtime::HttpResponse(const runtime::HttpRequest&)> f) {
    std::lock_guard lock(mu_);
    answer_ = std::move(f);
  }
  std::vector<runtime::HttpRequest> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // "METHOD path" of every request.
  std::vector<std::string> Routes() {
    std::vector<std::string> out;
    for (const auto& r : Requests()) out.push_back(r.method + " " + r.path);
    return out;
  }
  json BodyOf(size_t i) { return json::parse(Requests().at(i).body); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::function<runtime::HttpResponse(const runtime::HttpRequest&)> answer_;
  std::vector<runtime::HttpRequest> requests_;
  std::vector<runtime::Responder> held_;
};

class ClientFakeTest : public ::testing::Test {
 protected:
  FakeDtxd fake_;
  DtxClient client_{fake_.Url(), ClientOptions{2'000}};
};

TEST_F(ClientFakeTest, SagaBodyHasDtmShape) {
  Status s = Saga(client_, "g1")
                 .Add("http://svc:8080/out", "http://svc:8080/out-undo", R"({"amount":30})")
                 .Add("http://svc:8080/in", "", R"({"amount":30})")
                 .Add("http://svc:8080/log?x=1", "http://svc:8080/unlog", "{}")
                 .EnableConcurrent()
                 .AddBranchOrder(2, {0, 1})
                 .WaitResult(true)
                 .TimeoutToFail(60)
                 .RetryInterval(5)
                 .RequestTimeout(3)
                 .BranchHeader("X-Trace", "abc")
                 .Submit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(fake_.Routes(), std::vector<std::string>{"POST /api/dtmsvr/submit"});
  EXPECT_EQ(fake_.Requests()[0].Header("content-type"), "application/json");
  json body = fake_.BodyOf(0);
  EXPECT_EQ(body["gid"], "g1");
  EXPECT_EQ(body["trans_type"], "saga");
  EXPECT_EQ(body["steps"], json::parse(R"([
      {"action":"http://svc:8080/out","compensate":"http://svc:8080/out-undo"},
      {"action":"http://svc:8080/in","compensate":""},
      {"action":"http://svc:8080/log?x=1","compensate":"http://svc:8080/unlog"}])"));
  EXPECT_EQ(body["payloads"], json::parse(R"(["{\"amount\":30}","{\"amount\":30}","{}"])"));
  ASSERT_TRUE(body["custom_data"].is_string());
  EXPECT_EQ(json::parse(body["custom_data"].get<std::string>()),
            json::parse(R"({"concurrent":true,"orders":{"2":[0,1]}})"));
  EXPECT_EQ(body["wait_result"], true);
  EXPECT_EQ(body["timeout_to_fail"], 60);
  EXPECT_EQ(body["retry_interval"], 5);
  EXPECT_EQ(body["request_timeout"], 3);
  EXPECT_EQ(body["branch_headers"], json::parse(R"({"X-Trace":"abc"})"));
}

TEST_F(ClientFakeTest, PlainSagaSendsNoOptionalFields) {
  ASSERT_TRUE(Saga(client_, "g2").Add("http://a/x", "http://a/y", "p").Submit().ok());
  json body = fake_.BodyOf(0);
  for (const char* f : {"custom_data", "wait_result", "timeout_to_fail", "retry_interval",
                        "request_timeout", "branch_headers", "query_prepared"}) {
    EXPECT_FALSE(body.contains(f)) << f;
  }
}

TEST_F(ClientFakeTest, InvalidInputIsRefusedBeforeSending) {
  auto code = [](Status s) { return s.code(); };
  EXPECT_EQ(code(Saga(client_, "").Add("http://a/x", "", "").Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "has space").Add("http://a/x", "", "").Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, std::string(129, 'g')).Add("http://a/x", "", "").Submit()),
            StatusCode::kInvalidArgument);
  Status s = Saga(client_, "g").Add("ftp://a/x", "", "").Submit();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("saga step 0 action"), std::string::npos) << s.ToString();
  EXPECT_EQ(code(Saga(client_, "g").Add("http://a/x", "https://a/y", "").Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "g").Submit()), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "g").Add("http://a/x", "", "").TimeoutToFail(-1).Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "g").Add("http://a/x", "", "").BranchHeader("a b", "v").Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "g").Add("http://a/x", "", "").BranchHeader("A", "v\r\n").Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "g").Add("http://a/x", "", "").AddBranchOrder(0, {1}).Submit()),
            StatusCode::kInvalidArgument);  // no EnableConcurrent
  EXPECT_EQ(code(Saga(client_, "g")
                     .Add("http://a/x", "", "")
                     .EnableConcurrent()
                     .AddBranchOrder(0, {5})
                     .Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Saga(client_, "g")
                     .Add("http://a/x", "", "")
                     .EnableConcurrent()
                     .AddBranchOrder(0, {0})
                     .Submit()),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Msg(client_, "m").Add("http://a/x", "").Prepare("not a url")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Msg(client_, "m").Prepare("http://a/q")), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Msg(client_, "").Add("http://a/x", "").Abort()), StatusCode::kInvalidArgument);
  bool ran = false;
  EXPECT_EQ(code(Tcc::Run(client_, "",
                          [&](Tcc&) {
                            ran = true;
                            return Status::Ok();
                          })),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(ran);
  EXPECT_EQ(code(Xa(client_, "x y").Prepare()), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(client_.Query("").status()), StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake_.Requests().empty());
}

TEST(ClientTest, BadDtxdUrlFailsEveryCall) {
  for (const char* url : {"", "127.0.0.1:36789", "https://127.0.0.1:36789", "http://"}) {
    DtxClient client(url);
    EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_EQ(client.NewGid().status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_EQ(Saga(client, "g").Add("http://a/x", "", "").Submit().code(),
              StatusCode::kInvalidArgument);
  }
  DtxClient zero("http://127.0.0.1:1", ClientOptions{0});
  EXPECT_EQ(zero.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ClientFakeTest, ErrorMapping) {
  struct Case {
    int status;
    std::string body;
    StatusCode want;
    std::string in_message;
  };
  const std::vector<Case> cases = {
      {200, R"({"dtm_result":"SUCCESS"})", StatusCode::kOk, ""},
      {409, R"({"dtm_result":"FAILURE","message":"branch 02 failed"})", StatusCode::kAborted,
       "branch 02 failed"},
      {200, R"({"dtm_result":"FAILURE"})", StatusCode::kAborted, ""},
      {425, R"({"dtm_result":"ONGOING"})", StatusCode::kUnavailable, "ongoing"},
      {200, R"({"dtm_result":"ONGOING"})", StatusCode::kUnavailable, "ongoing"},
      {400, R"({"dtm_result":"FAILURE","message":"field 'gid' is required"})",
       StatusCode::kInvalidArgument, "field 'gid' is required"},
      {503, R"({"message":"store: disk full"})", StatusCode::kUnavailable, "disk full"},
      {500, "oops", StatusCode::kUnavailable, "500"},
  };
  for (const Case& c : cases) {
    fake_.Answer([&](const runtime::HttpRequest&) {
      return runtime::HttpResponse{c.status, "application/json", c.body, {}};
    });
    Status s = Saga(client_, "g").Add("http://a/x", "", "").Submit();
    EXPECT_EQ(s.code(), c.want) << c.status << " " << c.body << " -> " << s.ToString();
    EXPECT_NE(s.message().find(c.in_message), std::string::npos) << s.ToString();
  }
}

TEST(ClientTest, TimeoutIsDeadlineExceededAndRefusedIsUnavailable) {
  FakeDtxd fake;
  fake.Answer([](const runtime::HttpRequest&) { return runtime::HttpResponse{0, "", "", {}}; });
  DtxClient client(fake.Url(), ClientOptions{200});
  auto start = std::chrono::steady_clock::now();
  Status s = Saga(client, "g").Add("http://a/x", "", "").Submit();
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));

  auto port = itest::PickFreePort();
  ASSERT_TRUE(port.ok());
  DtxClient nobody("http://127.0.0.1:" + std::to_string(*port), ClientOptions{1'000});
  EXPECT_EQ(nobody.NewGid().status().code(), StatusCode::kUnavailable);
}

TEST_F(ClientFakeTest, NewGidAndQuery) {
  fake_.Answer([](const runtime::HttpRequest& r) {
    if (r.path == "/api/dtmsvr/newGid") {
      return runtime::HttpResponse{
          200, "application/json", R"({"gid":"abc1","dtm_result":"SUCCESS"})", {}};
    }
    return runtime::HttpResponse{
        200, "application/json", R"({"transaction":null,"branches":[]})", {}};
  });
  auto gid = client_.NewGid();
  ASSERT_TRUE(gid.ok()) << gid.status().ToString();
  EXPECT_EQ(*gid, "abc1");
  auto q = client_.Query("a&b");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_TRUE((*q)["transaction"].is_null());
  auto reqs = fake_.Requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[1].QueryParam("gid"), "a&b");

  fake_.Answer([](const runtime::HttpRequest&) {
    return runtime::HttpResponse{200, "application/json", "[]", {}};
  });
  EXPECT_EQ(client_.NewGid().status().code(), StatusCode::kInternal);
}

TEST_F(ClientFakeTest, MsgBodiesAndDoAndSubmit) {
  Msg ok(client_, "m1");
  ok.Add("http://svc/a", "p1").Add("http://svc/b", "p2");
  int runs = 0;
  Status s = ok.DoAndSubmit("http://svc/query", [&] {
    ++runs;
    // The prepare reached dtxd before the local transaction ran.
    EXPECT_EQ(fake_.Requests().size(), 1u);
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(fake_.Routes(),
            (std::vector<std::string>{"POST /api/dtmsvr/prepare", "POST /api/dtmsvr/submit"}));
  json prepare = fake_.BodyOf(0);
  EXPECT_EQ(prepare, json::parse(R"({"gid":"m1","trans_type":"msg",
      "steps":[{"action":"http://svc/a"},{"action":"http://svc/b"}],
      "payloads":["p1","p2"],"query_prepared":"http://svc/query"})"));
  EXPECT_EQ(fake_.BodyOf(1), prepare);

  Msg failed(client_, "m2");
  failed.Add("http://svc/a", "p");
  s = failed.DoAndSubmit("http://svc/query", [] { return Aborted("insufficient balance"); });
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  auto routes = fake_.Routes();
  ASSERT_EQ(routes.size(), 4u);
  EXPECT_EQ(routes[3], "POST /api/dtmsvr/abort");
  EXPECT_EQ(fake_.BodyOf(3), json::parse(R"({"gid":"m2","trans_type":"msg"})"));

  // An unknown local outcome: neither submit nor abort; the check-back decides.
  Msg unknown(client_, "m3");
  unknown.Add("http://svc/a", "p");
  s = unknown.DoAndSubmit("http://svc/query", [] { return Unavailable("db connection lost"); });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(fake_.Routes().size(), 5u);
  EXPECT_EQ(fake_.Routes()[4], "POST /api/dtmsvr/prepare");

  // A failed prepare: the local transaction never runs.
  fake_.Answer([](const runtime::HttpRequest&) {
    return runtime::HttpResponse{503, "application/json", R"({"message":"busy"})", {}};
  });
  bool ran = false;
  Msg busy(client_, "m4");
  busy.Add("http://svc/a", "p");
  s = busy.DoAndSubmit("http://svc/query", [&] {
    ran = true;
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(ran);
}

TEST_F(ClientFakeTest, TccRegistersTriesAndSubmits) {
  // The fake is also the participant: tries answer with a body that CallBranch returns, except
  // the try of branch 02 under gid t2, which fails.
  fake_.Answer([](const runtime::HttpRequest& r) {
    if (r.path == "/try") {
      if (r.QueryParam("gid") == "t2" && r.QueryParam("branch_id") == "02") {
        return runtime::HttpResponse{409, "application/json", R"({"dtm_result":"FAILURE"})", {}};
      }
      return runtime::HttpResponse{200, "application/json", R"({"reserved":1})", {}};
    }
    return FakeDtxd::Ok();
  });
  const std::string p = fake_.Url();
  std::string reply;
  Status s = Tcc::Run(client_, "t1", [&](Tcc& tcc) -> Status {
    auto r = tcc.CallBranch(R"({"n":1})", p + "/try?k=v", p + "/confirm", p + "/cancel");
    if (!r.ok()) return r.status();
    reply = *r;
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(reply, R"({"reserved":1})");
  EXPECT_EQ(fake_.Routes(),
            (std::vector<std::string>{"POST /api/dtmsvr/prepare", "POST /api/dtmsvr/registerBranch",
                                      "POST /try", "POST /api/dtmsvr/submit"}));
  EXPECT_EQ(fake_.BodyOf(0), json::parse(R"({"gid":"t1","trans_type":"tcc"})"));
  EXPECT_EQ(fake_.BodyOf(1), json({{"gid", "t1"},
                                   {"trans_type", "tcc"},
                                   {"branch_id", "01"},
                                   {"data", R"({"n":1})"},
                                   {"confirm", p + "/confirm"},
                                   {"cancel", p + "/cancel"}}));
  runtime::HttpRequest try_req = fake_.Requests()[2];
  EXPECT_EQ(try_req.body, R"({"n":1})");
  EXPECT_EQ(try_req.QueryParam("k"), "v");
  EXPECT_EQ(try_req.QueryParam("gid"), "t1");
  EXPECT_EQ(try_req.QueryParam("trans_type"), "tcc");
  EXPECT_EQ(try_req.QueryParam("branch_id"), "01");
  EXPECT_EQ(try_req.QueryParam("op"), "try");
  EXPECT_EQ(fake_.BodyOf(3), json::parse(R"({"gid":"t1","trans_type":"tcc"})"));

  s = Tcc::Run(client_, "t2", [&](Tcc& tcc) -> Status {
    for (int i = 0; i < 2; ++i) {
      auto r = tcc.CallBranch("{}", p + "/try", p + "/confirm", p + "/cancel");
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  auto routes = fake_.Routes();
  ASSERT_EQ(routes.size(), 10u);
  EXPECT_EQ(fake_.BodyOf(7)["branch_id"], "02");
  EXPECT_EQ(routes[9], "POST /api/dtmsvr/abort");
  EXPECT_EQ(fake_.BodyOf(9), json::parse(R"({"gid":"t2","trans_type":"tcc"})"));

  // A bad URL inside the body fails that call before anything is sent for it.
  s = Tcc::Run(client_, "t3", [&](Tcc& tcc) -> Status {
    return tcc.CallBranch("{}", "http://a/try", "https://a/c", "http://a/x").status();
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  routes = fake_.Routes();
  ASSERT_EQ(routes.size(), 12u);
  EXPECT_EQ(routes[10], "POST /api/dtmsvr/prepare");
  EXPECT_EQ(routes[11], "POST /api/dtmsvr/abort");
}

TEST_F(ClientFakeTest, XaBodies) {
  Xa xa(client_, "x1");
  ASSERT_TRUE(xa.Prepare().ok());
  auto b1 = xa.RegisterBranch("http://svc/xa", "d1");
  auto b2 = xa.RegisterBranch("http://svc/xa", "d2");
  ASSERT_TRUE(b1.ok() && b2.ok());
  EXPECT_EQ(*b1, "01");
  EXPECT_EQ(*b2, "02");
  ASSERT_TRUE(xa.Submit().ok());
  ASSERT_TRUE(xa.Abort().ok());
  EXPECT_EQ(xa.RegisterBranch("svc/xa", "d").status().code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(fake_.Requests().size(), 5u);
  EXPECT_EQ(fake_.BodyOf(0), json::parse(R"({"gid":"x1","trans_type":"xa"})"));
  EXPECT_EQ(fake_.BodyOf(2), json::parse(R"({"gid":"x1","trans_type":"xa","branch_id":"02",
      "data":"d2","url":"http://svc/xa"})"));
  EXPECT_EQ(fake_.Routes()[3], "POST /api/dtmsvr/submit");
  EXPECT_EQ(fake_.Routes()[4], "POST /api/dtmsvr/abort");
}

TEST_F(ClientFakeTest, XaRunCallsBranchesThenSubmitsOrAborts) {
  // The fake is also the participant: branch 02 of gid x3 refuses.
  fake_.Answer([](const runtime::HttpRequest& r) {
    if (r.path == "/xa/debit" && r.QueryParam("gid") == "x3" && r.QueryParam("branch_id") == "02") {
      return runtime::HttpResponse{409, "application/json", R"({"dtm_result":"FAILURE"})", {}};
    }
    return FakeDtxd::Ok();
  });
  const std::string p = fake_.Url();
  Status s = Xa::Run(client_, "x2", [&](Xa& xa) -> Status {
    return xa.CallBranch(R"({"n":1})", p + "/xa/debit?k=v").status();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(fake_.Routes(), (std::vector<std::string>{"POST /api/dtmsvr/prepare", "POST /xa/debit",
                                                      "POST /api/dtmsvr/submit"}));
  runtime::HttpRequest branch = fake_.Requests()[1];
  EXPECT_EQ(branch.body, R"({"n":1})");
  EXPECT_EQ(branch.QueryParam("k"), "v");
  EXPECT_EQ(branch.QueryParam("gid"), "x2");
  EXPECT_EQ(branch.QueryParam("trans_type"), "xa");
  EXPECT_EQ(branch.QueryParam("branch_id"), "01");
  EXPECT_EQ(branch.QueryParam("op"), "action");

  s = Xa::Run(client_, "x3", [&](Xa& xa) -> Status {
    for (int i = 0; i < 2; ++i) {
      auto r = xa.CallBranch("{}", p + "/xa/debit");
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  auto routes = fake_.Routes();
  ASSERT_EQ(routes.size(), 7u);
  EXPECT_EQ(routes[6], "POST /api/dtmsvr/abort");
  EXPECT_EQ(fake_.BodyOf(6), json::parse(R"({"gid":"x3","trans_type":"xa"})"));

  // A branch that cannot be reached: the transaction is aborted, so the result is kAborted with
  // the branch's error in the message.
  fake_.Answer([](const runtime::HttpRequest& r) {
    if (r.path == "/xa/debit") return runtime::HttpResponse{503, "text/plain", "down", {}};
    return FakeDtxd::Ok();
  });
  s = Xa::Run(client_, "x5", [&](Xa& xa) { return xa.CallBranch("{}", p + "/xa/debit").status(); });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("UNAVAILABLE"), std::string::npos) << s.ToString();
  EXPECT_EQ(fake_.Routes().back(), "POST /api/dtmsvr/abort");
  // The abort call fails too: still kAborted, and the message says so.
  fake_.Answer([](const runtime::HttpRequest& r) {
    if (r.path == "/api/dtmsvr/abort" || r.path == "/xa/debit") {
      return runtime::HttpResponse{503, "text/plain", "down", {}};
    }
    return FakeDtxd::Ok();
  });
  s = Xa::Run(client_, "x6", [&](Xa& xa) { return xa.CallBranch("{}", p + "/xa/debit").status(); });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find("abort:"), std::string::npos) << s.ToString();
  const size_t calls = fake_.Routes().size();

  EXPECT_EQ(Xa::Run(client_, "x y", [](Xa&) { return Status::Ok(); }).code(),
            StatusCode::kInvalidArgument);
  Xa bad(client_, "x4");
  EXPECT_EQ(bad.CallBranch("{}", "https://a/b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fake_.Routes().size(), calls);
}

// ---------------------------------------------------------------------------------------------
// End to end: one dtxd and one dtx-participant for the whole suite; every test uses its own gids.

class ClientE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new itest::TempDir();
    http_ = new itest::Http();
    auto p = itest::ParticipantProcess::Start(*http_, dir_->path());
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    participant_ = p->release();
    dtxd_ = new itest::DtxdProcess(*http_, dir_->path() + "/data", dir_->path() + "/dtxd.log");
    Status s = dtxd_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    client_ = new DtxClient(dtxd_->Url(""), ClientOptions{10'000});
  }
  static void TearDownTestSuite() {
    delete client_;
    delete dtxd_;
    delete participant_;
    delete http_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(participant_, nullptr);
  }
  void TearDown() override {
    if (HasFailure() && dtxd_) std::printf("--- dtxd log ---\n%s\n", dtxd_->LogTail().c_str());
  }

  static std::string P(const std::string& path) { return participant_->Url(path); }

  // Polls query until the transaction is succeed or failed (at most ~10 s).
  static std::string WaitFinal(const std::string& gid) {
    std::string status;
    for (int i = 0; i < 1000; ++i) {
      auto q = client_->Query(gid);
      if (q.ok() && (*q)["transaction"].is_object()) {
        status = (*q)["transaction"].value("status", "");
        if (status == "succeed" || status == "failed") return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "not final: " + status;
  }
  // "branch_id.op:result" of the participant's calls for gid, in arrival order.
  static std::vector<std::string> Calls(const std::string& gid) {
    std::vector<std::string> out;
    auto calls = participant_->Calls(gid);
    if (!calls.ok()) return {calls.status().ToString()};
    for (const json& c : *calls) {
      out.push_back(c.value("branch_id", "") + "." + c.value("op", "") + ":" +
                    c.value("result", ""));
    }
    return out;
  }

  static itest::TempDir* dir_;
  static itest::Http* http_;
  static itest::ParticipantProcess* participant_;
  static itest::DtxdProcess* dtxd_;
  static DtxClient* client_;
};

itest::TempDir* ClientE2eTest::dir_ = nullptr;
itest::Http* ClientE2eTest::http_ = nullptr;
itest::ParticipantProcess* ClientE2eTest::participant_ = nullptr;
itest::DtxdProcess* ClientE2eTest::dtxd_ = nullptr;
DtxClient* ClientE2eTest::client_ = nullptr;

TEST_F(ClientE2eTest, NewGidAndQueryOfUnknownGid) {
  auto a = client_->NewGid();
  auto b = client_->NewGid();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  EXPECT_NE(*a, *b);
  auto q = client_->Query(*a);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_TRUE((*q)["transaction"].is_null());
}

TEST_F(ClientE2eTest, SagaSucceeds) {
  Status s = Saga(*client_, "e2e-saga-ok")
                 .Add(P("/ok"), P("/ok"), R"({"amount":30})")
                 .Add(P("/ok"), P("/ok"), R"({"amount":30})")
                 .WaitResult(true)
                 .Submit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(WaitFinal("e2e-saga-ok"), "succeed");
  EXPECT_EQ(Calls("e2e-saga-ok"),
            (std::vector<std::string>{"01.action:SUCCESS", "02.action:SUCCESS"}));
}

TEST_F(ClientE2eTest, SagaThatFailsIsAbortedAndCompensated) {
  Status s = Saga(*client_, "e2e-saga-fail")
                 .Add(P("/ok"), P("/ok"), "{}")
                 .Add(P("/fail"), P("/ok"), "{}")
                 .WaitResult(true)
                 .Submit();
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(WaitFinal("e2e-saga-fail"), "failed");
  EXPECT_EQ(Calls("e2e-saga-fail"),
            (std::vector<std::string>{"01.action:SUCCESS", "02.action:FAILURE",
                                      "02.compensate:SUCCESS", "01.compensate:SUCCESS"}));
}

TEST_F(ClientE2eTest, ConcurrentSagaWithOrdersAndACycleRefusedByDtxd) {
  Status s = Saga(*client_, "e2e-saga-conc")
                 .Add(P("/ok"), P("/ok"), "{}")
                 .Add(P("/ok"), P("/ok"), "{}")
                 .EnableConcurrent()
                 .AddBranchOrder(1, {0})
                 .WaitResult(true)
                 .Submit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Calls("e2e-saga-conc"),
            (std::vector<std::string>{"01.action:SUCCESS", "02.action:SUCCESS"}));

  s = Saga(*client_, "e2e-saga-cycle")
          .Add(P("/ok"), P("/ok"), "{}")
          .Add(P("/ok"), P("/ok"), "{}")
          .EnableConcurrent()
          .AddBranchOrder(1, {0})
          .AddBranchOrder(0, {1})
          .Submit();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cycle"), std::string::npos) << s.ToString();
}

TEST_F(ClientE2eTest, MsgDoAndSubmitDeliversAfterTheLocalTransaction) {
  Msg msg(*client_, "e2e-msg-ok");
  msg.Add(P("/ok"), R"({"to":"b"})").Add(P("/ok"), R"({"log":1})");
  bool local_ran = false;
  Status s = msg.DoAndSubmit(P("/query/ok"), [&] {
    local_ran = true;
    auto q = client_->Query("e2e-msg-ok");
    EXPECT_TRUE(q.ok() && (*q)["transaction"].value("status", "") == "prepared");
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(local_ran);
  EXPECT_EQ(WaitFinal("e2e-msg-ok"), "succeed");
  EXPECT_EQ(Calls("e2e-msg-ok"),
            (std::vector<std::string>{"01.action:SUCCESS", "02.action:SUCCESS"}));

  Msg failed(*client_, "e2e-msg-fail");
  failed.Add(P("/ok"), "{}");
  s = failed.DoAndSubmit(P("/query/ok"), [] { return Aborted("insufficient balance"); });
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(WaitFinal("e2e-msg-fail"), "failed");
  EXPECT_TRUE(Calls("e2e-msg-fail").empty());
}

TEST_F(ClientE2eTest, TccRunConfirmsEveryBranch) {
  std::vector<std::string> replies;
  Status s = Tcc::Run(*client_, "e2e-tcc-ok", [&](Tcc& tcc) -> Status {
    for (int i = 0; i < 2; ++i) {
      auto r = tcc.CallBranch(R"({"amount":5})", P("/ok"), P("/ok"), P("/ok"));
      if (!r.ok()) return r.status();
      replies.push_back(*r);
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_NE(replies[0].find("SUCCESS"), std::string::npos) << replies[0];
  EXPECT_EQ(WaitFinal("e2e-tcc-ok"), "succeed");
  auto calls = Calls("e2e-tcc-ok");
  ASSERT_EQ(calls.size(), 4u) << json(calls).dump();
  EXPECT_EQ(calls[0], "01.try:SUCCESS");
  EXPECT_EQ(calls[1], "02.try:SUCCESS");
  // dtxd confirms the branches concurrently, so their order is free.
  std::sort(calls.begin() + 2, calls.end());
  EXPECT_EQ(calls[2], "01.confirm:SUCCESS");
  EXPECT_EQ(calls[3], "02.confirm:SUCCESS");
}

TEST_F(ClientE2eTest, TccRunWhoseSecondTryFailsCancelsBothBranches) {
  Status s = Tcc::Run(*client_, "e2e-tcc-fail", [&](Tcc& tcc) -> Status {
    auto r = tcc.CallBranch("{}", P("/ok"), P("/ok"), P("/ok"));
    if (!r.ok()) return r.status();
    return tcc.CallBranch("{}", P("/fail"), P("/ok"), P("/ok")).status();
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_EQ(WaitFinal("e2e-tcc-fail"), "failed");
  auto calls = Calls("e2e-tcc-fail");
  ASSERT_EQ(calls.size(), 4u) << json(calls).dump();
  EXPECT_EQ(calls[0], "01.try:SUCCESS");
  EXPECT_EQ(calls[1], "02.try:FAILURE");
  std::sort(calls.begin() + 2, calls.end());
  EXPECT_EQ(calls[2], "01.cancel:SUCCESS");
  EXPECT_EQ(calls[3], "02.cancel:SUCCESS");
}

TEST_F(ClientE2eTest, XaSubmitCommitsAndAbortRollsBack) {
  Xa xa(*client_, "e2e-xa-ok");
  ASSERT_TRUE(xa.Prepare().ok());
  auto b = xa.RegisterBranch(P("/ok"), R"({"sql":"..."})");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(*b, "01");
  Status s = xa.Submit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(WaitFinal("e2e-xa-ok"), "succeed");
  EXPECT_EQ(Calls("e2e-xa-ok"), (std::vector<std::string>{"01.commit:SUCCESS"}));

  Xa rolled(*client_, "e2e-xa-abort");
  ASSERT_TRUE(rolled.Prepare().ok());
  ASSERT_TRUE(rolled.RegisterBranch(P("/ok"), "{}").ok());
  ASSERT_TRUE(rolled.Abort().ok());
  EXPECT_EQ(WaitFinal("e2e-xa-abort"), "failed");
  EXPECT_EQ(Calls("e2e-xa-abort"), (std::vector<std::string>{"01.rollback:SUCCESS"}));
}

}  // namespace
}  // namespace dtx::sdk
