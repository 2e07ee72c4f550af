// dtxd's HTTP API against the real binary over loopback, with dtx-participant as the branches.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"

namespace dtx::itest {
namespace {

using Strings = std::vector<std::string>;

// The (branch_id.op, result) of every call, in arrival order.
std::vector<std::string> Trace(const std::vector<json>& calls) {
  std::vector<std::string> out;
  for (const json& c : calls) out.push_back(EffectName(c) + ":" + c.value("result", ""));
  return out;
}

size_t SeqOf(const std::vector<json>& calls, const std::string& effect) {
  for (const json& c : calls) {
    if (c.value("effect", false) && EffectName(c) == effect) return c["seq"].get<size_t>();
  }
  ADD_FAILURE() << "no effect " << effect;
  return 0;
}

using DtxdApiTest = DtxdTest;

TEST_F(DtxdApiTest, PingAndMetrics) {
  HttpReply ping = http_.Get(dtxd_->Url("/api/ping"));
  ASSERT_TRUE(ping.transport.ok()) << ping.transport.ToString();
  EXPECT_EQ(ping.status, 200);
  EXPECT_TRUE(ping.Json().is_object()) << ping.body;

  ASSERT_EQ(Api("submit", Saga("m1", {{"/ok", "/ok"}}, {{"wait_result", true}})).status, 200);
  HttpReply metrics = http_.Get(dtxd_->Url("/api/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("# TYPE dtx_transactions_started_total counter"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("dtx_transactions_succeeded_total 1"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("dtx_branch_calls_total 1"), std::string::npos) << metrics.body;

  HttpReply gid = http_.Post(dtxd_->Url("/api/dtmsvr/newGid"), "");
  EXPECT_EQ(gid.status, 200);
  EXPECT_FALSE(gid.Json().value("gid", "").empty()) << gid.body;
}

TEST_F(DtxdApiTest, SagaSucceedsWithWaitResult) {
  HttpReply r =
      Api("submit", Saga("s1", {{"/ok", "/ok"}, {"/ok", "/ok"}}, {{"wait_result", true}}));
  ASSERT_TRUE(r.transport.ok()) << r.transport.ToString();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().value("dtm_result", ""), "SUCCESS") << r.body;

  auto calls = Calls("s1");
  EXPECT_EQ(Trace(calls), (Strings{"01.action:SUCCESS", "02.action:SUCCESS"}));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["body"], "{\"step\":0}");
  EXPECT_EQ(calls[1]["body"], "{\"step\":1}");
  EXPECT_EQ(calls[0]["trans_type"], "saga");
  EXPECT_EQ(calls[0]["method"], "POST");

  json q = Query("s1");
  EXPECT_EQ(q["transaction"]["status"], "succeed") << q.dump();
  EXPECT_EQ(q["transaction"]["trans_type"], "saga");
  std::set<std::string> branches;
  for (const json& b : q["branches"]) {
    branches.insert(b.value("branch_id", "") + "." + b.value("op", "") + ":" +
                    b.value("status", ""));
  }
  EXPECT_EQ(branches, (std::set<std::string>{"01.action:succeed", "01.compensate:prepared",
                                             "02.action:succeed", "02.compensate:prepared"}))
      << q.dump();
}

TEST_F(DtxdApiTest, SagaFailureCompensatesInReverseOrder) {
  HttpReply r = Api("submit", Saga("f1", {{"/ok", "/ok"}, {"/fail", "/ok"}, {"/ok", "/ok"}},
                                   {{"wait_result", true}}));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.Json().value("dtm_result", ""), "FAILURE") << r.body;
  EXPECT_EQ(Trace(Calls("f1")), (Strings{"01.action:SUCCESS", "02.action:FAILURE",
                                         "02.compensate:SUCCESS", "01.compensate:SUCCESS"}));
  json q = Query("f1");
  EXPECT_EQ(q["transaction"]["status"], "failed") << q.dump();
}

TEST_F(DtxdApiTest, ConcurrentSagaRespectsOrders) {
  // Steps 0 and 1 run together; step 2 only after both.
  json custom = {{"concurrent", true}, {"orders", {{"2", {0, 1}}}}};
  HttpReply r =
      Api("submit", Saga("c1", {{"/delay/100", "/ok"}, {"/delay/100", "/ok"}, {"/ok", "/ok"}},
                         {{"wait_result", true}, {"custom_data", custom.dump()}}));
  EXPECT_EQ(r.status, 200) << r.body;
  auto calls = Calls("c1");
  ASSERT_EQ(calls.size(), 3u) << json(calls).dump();
  // Both delayed actions were called before either answered: they were in flight together.
  EXPECT_EQ((std::set<std::string>{EffectName(calls[0]), EffectName(calls[1])}),
            (std::set<std::string>{"01.action", "02.action"}));
  EXPECT_EQ(EffectName(calls[2]), "03.action");
  EXPECT_EQ(Status("c1"), "succeed");
}

TEST_F(DtxdApiTest, ConcurrentSagaFailureCompensatesRespectingOrders) {
  // Step 1 runs after step 0 and fails; step 2 is independent. Step 0's compensation must wait
  // for step 1's.
  json custom = {{"concurrent", true}, {"orders", {{"1", {0}}}}};
  HttpReply r = Api("submit", Saga("c2", {{"/ok", "/ok"}, {"/fail", "/ok"}, {"/ok", "/ok"}},
                                   {{"wait_result", true}, {"custom_data", custom.dump()}}));
  EXPECT_EQ(r.status, 409) << r.body;
  auto calls = Calls("c2");
  auto effects = Effects("c2");
  std::set<std::string> set(effects.begin(), effects.end());
  EXPECT_TRUE(set.count("01.compensate") && set.count("02.compensate") &&
              set.count("03.compensate"))
      << json(effects).dump();
  EXPECT_LT(SeqOf(calls, "02.compensate"), SeqOf(calls, "01.compensate"));
  EXPECT_EQ(Status("c2"), "failed");
}

TEST_F(DtxdApiTest, MsgPrepareSubmitDelivers) {
  ASSERT_EQ(Api("prepare", Msg("g1", {"/ok", "/ok"}, "/query/ok")).status, 200);
  EXPECT_EQ(Status("g1"), "prepared");
  HttpReply r = Api("submit", Msg("g1", {"/ok", "/ok"}, "/query/ok", {{"wait_result", true}}));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Trace(Calls("g1")), (Strings{"01.action:SUCCESS", "02.action:SUCCESS"}));
  EXPECT_EQ(Calls("g1")[0]["trans_type"], "msg");
  EXPECT_EQ(Status("g1"), "succeed");
}

TEST_F(DtxdApiTest, MsgCheckBackSuccessDelivers) {
  ASSERT_EQ(Api("prepare", Msg("q1", {"/ok"}, "/query/ok")).status, 200);
  EXPECT_EQ(WaitFinal("q1"), "succeed");
  auto calls = Calls("q1");
  ASSERT_EQ(calls.size(), 2u) << json(calls).dump();
  EXPECT_EQ(calls[0]["path"], "/query/ok");
  EXPECT_EQ(calls[0]["method"], "GET");
  EXPECT_EQ(EffectName(calls[1]) + ":" + calls[1].value("result", ""), "01.action:SUCCESS");
}

TEST_F(DtxdApiTest, MsgCheckBackFailureFailsWithoutDelivery) {
  ASSERT_EQ(Api("prepare", Msg("q2", {"/ok"}, "/query/fail")).status, 200);
  EXPECT_EQ(WaitFinal("q2"), "failed");
  auto calls = Calls("q2");
  ASSERT_EQ(calls.size(), 1u) << json(calls).dump();
  EXPECT_EQ(calls[0]["path"], "/query/fail");
}

TEST_F(DtxdApiTest, MsgCheckBackOngoingAsksAgain) {
  ASSERT_EQ(Api("prepare", Msg("q3", {"/ok"}, "/query/ongoing")).status, 200);
  // Bounded: a few check-backs arrive at ongoing_interval (100 ms) once msg_timeout (500 ms)
  // passed.
  size_t checks = 0;
  for (int i = 0; i < 200 && checks < 2; ++i) {
    checks = Calls("q3").size();
    if (checks < 2) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_GE(checks, 2u);
  EXPECT_EQ(Status("q3"), "prepared");
  for (const json& c : Calls("q3")) EXPECT_EQ(c["path"], "/query/ongoing");
}

TEST_F(DtxdApiTest, FlakyAndOngoingBranchesEventuallySucceed) {
  HttpReply r = Api(
      "submit", Saga("fl1", {{"/flaky/2", "/ok"}, {"/ongoing/2", "/ok"}}, {{"wait_result", true}}));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Trace(Calls("fl1")),
            (Strings{"01.action:ERROR", "01.action:ERROR", "01.action:SUCCESS", "02.action:ONGOING",
                     "02.action:ONGOING", "02.action:SUCCESS"}));
  EXPECT_EQ(Effects("fl1"), (Strings{"01.action", "02.action"}));

  ASSERT_EQ(
      Api("submit", Msg("fl2", {"/flaky/1", "/ongoing/1"}, "/query/ok", {{"wait_result", true}}))
          .status,
      200);
  EXPECT_EQ(Effects("fl2"), (Strings{"01.action", "02.action"}));
}

TEST_F(DtxdApiTest, TimeoutToFailCompensates) {
  HttpReply r = Api("submit", Saga("t1", {{"/ok", "/ok"}, {"/ongoing/1000000", "/ok"}},
                                   {{"timeout_to_fail", 1}}));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(WaitFinal("t1"), "failed");
  auto effects = Effects("t1");
  EXPECT_EQ(effects, (Strings{"01.action", "02.compensate", "01.compensate"}));
  EXPECT_NE(Query("t1")["transaction"].value("rollback_reason", "").find("timeout"),
            std::string::npos)
      << Query("t1").dump();
}

TEST_F(DtxdApiTest, ForceStop) {
  ASSERT_EQ(Api("submit", Saga("fs1", {{"/ongoing/1000000", "/ok"}})).status, 200);
  HttpReply stop = Api("forceStop", {{"gid", "fs1"}});
  EXPECT_EQ(stop.status, 200) << stop.body;
  EXPECT_EQ(Status("fs1"), "failed");
  EXPECT_EQ(Api("forceStop", {{"gid", "fs1"}}).status, 409);
  HttpReply unknown = Api("forceStop", {{"gid", "nobody"}});
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_TRUE(unknown.Json().is_object());
  // A stopped saga is not compensated (as DTM): no compensation was called.
  for (const json& c : Calls("fs1")) EXPECT_EQ(c["op"], "action");
}

TEST_F(DtxdApiTest, AbortPreparedMsgThenSubmitIsRejected) {
  ASSERT_EQ(Api("prepare", Msg("a1", {"/ok"}, "/query/ok")).status, 200);
  HttpReply abort = Api("abort", {{"gid", "a1"}, {"trans_type", "msg"}});
  EXPECT_EQ(abort.status, 200) << abort.body;
  EXPECT_EQ(Status("a1"), "failed");
  HttpReply submit = Api("submit", Msg("a1", {"/ok"}, "/query/ok"));
  EXPECT_EQ(submit.status, 409) << submit.body;
  EXPECT_EQ(submit.Json().value("dtm_result", ""), "FAILURE");
  EXPECT_TRUE(Calls("a1").empty());
  EXPECT_EQ(Status("a1"), "failed");
}

TEST_F(DtxdApiTest, AllFiltersAndPaginates) {
  for (std::string gid : {"all-s1", "all-s2", "all-s3"}) {
    ASSERT_EQ(Api("submit", Saga(gid, {{"/ok", "/ok"}}, {{"wait_result", true}})).status, 200);
  }
  for (std::string gid : {"all-m1", "all-m2"}) {
    ASSERT_EQ(Api("prepare", Msg(gid, {"/ok"}, "/query/ongoing")).status, 200);
  }
  auto list = [&](const std::string& query) {
    std::vector<std::string> gids;
    std::string position;
    for (int page = 0; page < 20; ++page) {
      std::string url = dtxd_->Url("/api/dtmsvr/all?limit=2" + query);
      if (!position.empty()) url += "&position=" + runtime::UrlEncode(position);
      HttpReply r = http_.Get(url);
      EXPECT_EQ(r.status, 200) << r.body;
      json j = r.Json();
      if (!j.is_object()) break;
      EXPECT_LE(j["transactions"].size(), 2u);
      for (const json& t : j["transactions"]) gids.push_back(t.value("gid", ""));
      position = j.value("next_position", "");
      if (position.empty()) break;
    }
    std::sort(gids.begin(), gids.end());
    return gids;
  };
  EXPECT_EQ(list(""), (Strings{"all-m1", "all-m2", "all-s1", "all-s2", "all-s3"}));
  EXPECT_EQ(list("&status=succeed"), (Strings{"all-s1", "all-s2", "all-s3"}));
  EXPECT_EQ(list("&transType=msg"), (Strings{"all-m1", "all-m2"}));
  EXPECT_EQ(list("&status=prepared&transType=msg"), (Strings{"all-m1", "all-m2"}));
  EXPECT_EQ(list("&status=failed"), Strings{});
  EXPECT_EQ(http_.Get(dtxd_->Url("/api/dtmsvr/all?limit=0")).status, 400);
  EXPECT_EQ(http_.Get(dtxd_->Url("/api/dtmsvr/all?status=bogus")).status, 400);
  EXPECT_EQ(http_.Get(dtxd_->Url("/api/dtmsvr/all?transType=bogus")).status, 400);
}

// Every bad request gets a 4xx with a JSON body, and nothing is created or changed.
TEST_F(DtxdApiTest, BadInputIsRejectedAndChangesNothing) {
  auto expect_rejected = [&](const char* what, const HttpReply& r, int status) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(r.transport.ok()) << r.transport.ToString();
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_TRUE(r.Json().is_object()) << r.body;
  };
  json good = Saga("bad1", {{"/ok", "/ok"}});
  expect_rejected("malformed JSON", ApiRaw("submit", "{\"gid\": \"bad1\", "), 400);
  json no_type = good;
  no_type.erase("trans_type");
  expect_rejected("missing trans_type", Api("submit", no_type), 400);
  json bad_type = good;
  bad_type["trans_type"] = "bogus";
  expect_rejected("unknown trans_type", Api("submit", bad_type), 400);
  json mismatch = good;
  mismatch["payloads"].push_back("{}");
  expect_rejected("steps/payloads mismatch", Api("submit", mismatch), 400);
  json ftp = good;
  ftp["steps"][0]["action"] = "ftp://127.0.0.1/x";
  expect_rejected("ftp URL", Api("submit", ftp), 400);
  json no_gid = good;
  no_gid.erase("gid");
  expect_rejected("missing gid", Api("submit", no_gid), 400);
  expect_rejected("array body", ApiRaw("submit", "[]"), 400);
  expect_rejected("body over the limit", ApiRaw("submit", std::string((1 << 20) + 10, 'x')), 413);
  expect_rejected("unknown api route", http_.Get(dtxd_->Url("/api/dtmsvr/nope")), 404);
  expect_rejected("unknown route", http_.Post(dtxd_->Url("/nope"), "{}"), 404);
  expect_rejected("query without gid", http_.Get(dtxd_->Url("/api/dtmsvr/query")), 400);
  expect_rejected("GET submit", http_.Get(dtxd_->Url("/api/dtmsvr/submit")), 405);
  expect_rejected("abort unknown gid", Api("abort", {{"gid", "bad-none"}}), 404);

  // None of the above created anything.
  HttpReply all = http_.Get(dtxd_->Url("/api/dtmsvr/all"));
  EXPECT_EQ(all.Json()["transactions"].size(), 0u) << all.body;
  EXPECT_TRUE(Query("bad1")["transaction"].is_null());

  // A gid reused with other content is 409 and leaves the first transaction as it was.
  ASSERT_EQ(Api("submit", Saga("bad2", {{"/ok", "/ok"}}, {{"wait_result", true}})).status, 200);
  expect_rejected("gid reused", Api("submit", Saga("bad2", {{"/fail", "/ok"}})), 409);
  expect_rejected("gid reused as msg", Api("prepare", Msg("bad2", {"/ok"}, "/query/ok")), 409);
  json q = Query("bad2");
  EXPECT_EQ(q["transaction"]["status"], "succeed");
  EXPECT_EQ(q["transaction"]["steps"][0]["action"], P("/ok"));
  // The same content again is idempotent.
  EXPECT_EQ(Api("submit", Saga("bad2", {{"/ok", "/ok"}})).status, 200);
  EXPECT_EQ(Effects("bad2"), (Strings{"01.action"}));

  // An illegal transition: submit after abort.
  ASSERT_EQ(Api("prepare", Msg("bad3", {"/ok"}, "/query/ok")).status, 200);
  ASSERT_EQ(Api("abort", {{"gid", "bad3"}}).status, 200);
  expect_rejected("submit after abort", Api("submit", Msg("bad3", {"/ok"}, "/query/ok")), 409);
  EXPECT_EQ(Status("bad3"), "failed");

  // The server is still serving.
  EXPECT_EQ(http_.Get(dtxd_->Url("/api/ping")).status, 200);
}

}  // namespace
}  // namespace dtx::itest
