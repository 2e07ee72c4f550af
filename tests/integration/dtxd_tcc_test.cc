// dtxd's TCC and XA modes against the real binary over loopback: prepare, registerBranch,
// submit/abort, the prepared timeout, retries of confirm/cancel, registration rules, and kill -9
// of dtxd with registered branches or a confirm in flight.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"

namespace dtx::itest {
namespace {

using Strings = std::vector<std::string>;
using StringSet = std::set<std::string>;

// "branch_id.op:result" of every call, in arrival order.
Strings Trace(const std::vector<json>& calls) {
  Strings out;
  for (const json& c : calls) out.push_back(EffectName(c) + ":" + c.value("result", ""));
  return out;
}

// The ops the participant saw for gid: "branch_id.op" of calls answered SUCCESS.
StringSet Succeeded(const std::vector<json>& calls) {
  StringSet out;
  for (const json& c : calls) {
    if (c.value("result", "") == "SUCCESS") out.insert(EffectName(c));
  }
  return out;
}

size_t CountOp(const std::vector<json>& calls, const std::string& op) {
  size_t n = 0;
  for (const json& c : calls) n += c.value("op", "") == op;
  return n;
}

class DtxdTccTest : public DtxdTest {
 protected:
  HttpReply Prepare(const std::string& gid, const std::string& type = "tcc") {
    return Api("prepare", {{"gid", gid}, {"trans_type", type}});
  }
  HttpReply Submit(const std::string& gid, const std::string& type = "tcc",
                   const json& extra = json::object()) {
    json body = {{"gid", gid}, {"trans_type", type}};
    body.update(extra);
    return Api("submit", body);
  }
  HttpReply Abort(const std::string& gid, const std::string& type = "tcc") {
    return Api("abort", {{"gid", gid}, {"trans_type", type}});
  }
  json TccBranch(const std::string& gid, const std::string& branch_id, const std::string& data,
                 const std::string& confirm, const std::string& cancel) const {
    return {{"gid", gid},   {"trans_type", "tcc"},   {"branch_id", branch_id},
            {"data", data}, {"confirm", P(confirm)}, {"cancel", P(cancel)}};
  }
  json XaBranch(const std::string& gid, const std::string& branch_id, const std::string& data,
                const std::string& url) const {
    return {{"gid", gid},
            {"trans_type", "xa"},
            {"branch_id", branch_id},
            {"data", data},
            {"url", P(url)}};
  }
  HttpReply Register(const json& branch) { return Api("registerBranch", branch); }

  // The query's branch rows as "branch_id.op:status".
  StringSet Rows(const std::string& gid) {
    StringSet out;
    json q = Query(gid);
    if (!q.is_object() || !q["branches"].is_array()) return {"<query failed>"};
    for (const json& b : q["branches"]) {
      out.insert(b.value("branch_id", "") + "." + b.value("op", "") + ":" + b.value("status", ""));
    }
    return out;
  }

  // Polls the participant until `gid` has at least one call on `path`.
  bool WaitForCall(const std::string& gid, const std::string& path) {
    for (int i = 0; i < 400; ++i) {
      for (const json& c : Calls(gid)) {
        if (c.value("path", "") == path) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void KillAndRestart() {
    dtxd_->Kill9();
    dtx::Status s = dtxd_->Restart();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
};

TEST_F(DtxdTccTest, SubmitConfirmsEveryBranchOnceWithItsData) {
  ASSERT_EQ(Prepare("t1").status, 200);
  // Cancel URLs that would fail show that confirm goes to the confirm URL.
  ASSERT_EQ(Register(TccBranch("t1", "b1", R"({"amount":1})", "/ok", "/fail")).status, 200);
  ASSERT_EQ(Register(TccBranch("t1", "b2", R"({"amount":2})", "/ok", "/fail")).status, 200);
  EXPECT_EQ(Status("t1"), "prepared");
  EXPECT_EQ(Rows("t1"), (StringSet{"b1.cancel:prepared", "b1.confirm:prepared",
                                   "b2.cancel:prepared", "b2.confirm:prepared"}));
  EXPECT_TRUE(Calls("t1").empty());

  HttpReply r = Submit("t1");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().value("dtm_result", ""), "SUCCESS") << r.body;
  ASSERT_EQ(WaitFinal("t1"), "succeed");

  auto calls = Calls("t1");
  ASSERT_EQ(calls.size(), 2u) << json(calls).dump();
  std::map<std::string, std::string> body_of;
  for (const json& c : calls) {
    EXPECT_EQ(c["op"], "confirm");
    EXPECT_EQ(c["trans_type"], "tcc");
    EXPECT_EQ(c["method"], "POST");
    EXPECT_EQ(c["path"], "/ok");
    EXPECT_EQ(c["result"], "SUCCESS");
    body_of[c.value("branch_id", "")] = c.value("body", "");
  }
  EXPECT_EQ(body_of, (std::map<std::string, std::string>{{"b1", R"({"amount":1})"},
                                                         {"b2", R"({"amount":2})"}}));

  json q = Query("t1");
  EXPECT_EQ(q["transaction"]["trans_type"], "tcc") << q.dump();
  EXPECT_EQ(Rows("t1"), (StringSet{"b1.cancel:prepared", "b1.confirm:succeed", "b2.cancel:prepared",
                                   "b2.confirm:succeed"}));
  for (const json& b : q["branches"]) {
    EXPECT_EQ(b["url"], P(b["op"] == "confirm" ? "/ok" : "/fail")) << b.dump();
  }
  // Submitting again is idempotent and calls nothing more.
  EXPECT_EQ(Submit("t1").status, 200);
  EXPECT_EQ(Calls("t1").size(), 2u);
}

TEST_F(DtxdTccTest, AbortCancelsEveryBranchAndNeverConfirms) {
  ASSERT_EQ(Prepare("t2").status, 200);
  ASSERT_EQ(Register(TccBranch("t2", "b1", "d1", "/fail", "/ok")).status, 200);
  ASSERT_EQ(Register(TccBranch("t2", "b2", "d2", "/fail", "/ok")).status, 200);
  HttpReply r = Abort("t2");
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(WaitFinal("t2"), "failed");

  auto calls = Calls("t2");
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.cancel", "b2.cancel"})) << json(calls).dump();
  EXPECT_EQ(calls.size(), 2u) << json(calls).dump();
  EXPECT_EQ(CountOp(calls, "confirm"), 0u);
  for (const json& c : calls) {
    EXPECT_EQ(c["path"], "/ok");
    EXPECT_EQ(c["body"], c["branch_id"] == "b1" ? "d1" : "d2");
  }
  EXPECT_EQ(Rows("t2"), (StringSet{"b1.cancel:succeed", "b1.confirm:prepared", "b2.cancel:succeed",
                                   "b2.confirm:prepared"}));

  // The decision is final: no submit, no new branch.
  EXPECT_EQ(Submit("t2").status, 409);
  EXPECT_EQ(Register(TccBranch("t2", "b3", "d3", "/ok", "/ok")).status, 409);
  EXPECT_EQ(Status("t2"), "failed");
  EXPECT_EQ(CountOp(Calls("t2"), "confirm"), 0u);
}

TEST_F(DtxdTccTest, XaCommitsOnSubmitAndRollsBackOnAbort) {
  ASSERT_EQ(Prepare("x1", "xa").status, 200);
  ASSERT_EQ(Register(XaBranch("x1", "b1", "x1-d1", "/ok")).status, 200);
  ASSERT_EQ(Register(XaBranch("x1", "b2", "x1-d2", "/ok")).status, 200);
  ASSERT_EQ(Submit("x1", "xa").status, 200);
  ASSERT_EQ(WaitFinal("x1"), "succeed");
  auto calls = Calls("x1");
  EXPECT_EQ(Trace(calls).size(), 2u) << json(calls).dump();
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.commit", "b2.commit"})) << json(calls).dump();
  for (const json& c : calls) {
    EXPECT_EQ(c["trans_type"], "xa");
    EXPECT_EQ(c["body"], "x1-" + std::string(c["branch_id"] == "b1" ? "d1" : "d2"));
  }
  EXPECT_EQ(Rows("x1"), (StringSet{"b1.rollback:prepared", "b1.commit:succeed",
                                   "b2.rollback:prepared", "b2.commit:succeed"}));

  ASSERT_EQ(Prepare("x2", "xa").status, 200);
  ASSERT_EQ(Register(XaBranch("x2", "b1", "x2-d1", "/ok")).status, 200);
  ASSERT_EQ(Register(XaBranch("x2", "b2", "x2-d2", "/ok")).status, 200);
  ASSERT_EQ(Abort("x2", "xa").status, 200);
  ASSERT_EQ(WaitFinal("x2"), "failed");
  calls = Calls("x2");
  EXPECT_EQ(calls.size(), 2u) << json(calls).dump();
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.rollback", "b2.rollback"})) << json(calls).dump();
  EXPECT_EQ(CountOp(calls, "commit"), 0u);
  EXPECT_EQ(Rows("x2"), (StringSet{"b1.rollback:succeed", "b1.commit:prepared",
                                   "b2.rollback:succeed", "b2.commit:prepared"}));
}

TEST_F(DtxdTccTest, ConfirmAndCancelAreRetriedUntilTheySucceed) {
  ASSERT_EQ(Prepare("r1").status, 200);
  ASSERT_EQ(Register(TccBranch("r1", "b1", "d1", "/flaky/2", "/ok")).status, 200);
  ASSERT_EQ(Register(TccBranch("r1", "b2", "d2", "/ongoing/1", "/ok")).status, 200);
  ASSERT_EQ(Submit("r1").status, 200);
  ASSERT_EQ(WaitFinal("r1"), "succeed");
  std::map<std::string, Strings> by_branch;
  for (const json& c : Calls("r1")) {
    by_branch[c.value("branch_id", "")].push_back(c.value("op", "") + ":" + c.value("result", ""));
  }
  EXPECT_EQ(by_branch["b1"], (Strings{"confirm:ERROR", "confirm:ERROR", "confirm:SUCCESS"}));
  EXPECT_EQ(by_branch["b2"], (Strings{"confirm:ONGOING", "confirm:SUCCESS"}));

  ASSERT_EQ(Prepare("r2").status, 200);
  ASSERT_EQ(Register(TccBranch("r2", "b1", "d1", "/ok", "/flaky/1")).status, 200);
  ASSERT_EQ(Abort("r2").status, 200);
  ASSERT_EQ(WaitFinal("r2"), "failed");
  EXPECT_EQ(Trace(Calls("r2")), (Strings{"b1.cancel:ERROR", "b1.cancel:SUCCESS"}));
}

TEST_F(DtxdTccTest, SubmitWithWaitResultAnswersAfterEveryConfirm) {
  ASSERT_EQ(Prepare("w1").status, 200);
  ASSERT_EQ(Register(TccBranch("w1", "b1", "d1", "/delay/200", "/ok")).status, 200);
  ASSERT_EQ(Register(TccBranch("w1", "b2", "d2", "/flaky/1", "/ok")).status, 200);
  HttpReply r = Submit("w1", "tcc", {{"wait_result", true}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().value("dtm_result", ""), "SUCCESS") << r.body;
  // No polling: the answer came only once the transaction had finished.
  EXPECT_EQ(Status("w1"), "succeed");
  EXPECT_EQ(Succeeded(Calls("w1")), (StringSet{"b1.confirm", "b2.confirm"}));
}

TEST_F(DtxdTccTest, RegistrationRulesAndBadInput) {
  auto expect = [&](const char* what, const HttpReply& r, int status) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(r.transport.ok()) << r.transport.ToString();
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.Json().value("dtm_result", ""), status == 200 ? "SUCCESS" : "FAILURE") << r.body;
  };
  ASSERT_EQ(Prepare("g1").status, 200);
  const json b1 = TccBranch("g1", "b1", "d1", "/ok", "/ok");
  expect("first registration", Register(b1), 200);
  expect("same registration again", Register(b1), 200);
  const json before = Query("g1");
  ASSERT_EQ(before["branches"].size(), 2u) << before.dump();

  json other_data = b1;
  other_data["data"] = "d1-other";
  expect("same branch_id, other data", Register(other_data), 409);
  json other_confirm = b1;
  other_confirm["confirm"] = P("/flaky/1");
  expect("same branch_id, other confirm", Register(other_confirm), 409);
  json other_cancel = b1;
  other_cancel["cancel"] = P("/flaky/1");
  expect("same branch_id, other cancel", Register(other_cancel), 409);
  expect("unknown gid", Register(TccBranch("nope", "b1", "d1", "/ok", "/ok")), 404);
  for (const char* field : {"branch_id", "confirm", "cancel", "trans_type", "gid"}) {
    json missing = TccBranch("g1", "b9", "d9", "/ok", "/ok");
    missing.erase(field);
    SCOPED_TRACE(std::string("missing ") + field);
    expect("missing field", Register(missing), 400);
  }
  json bad_url = TccBranch("g1", "b9", "d9", "/ok", "/ok");
  bad_url["confirm"] = "ftp://127.0.0.1/x";
  expect("bad confirm URL", Register(bad_url), 400);
  json xa_without_url = XaBranch("g1", "b9", "d9", "/ok");
  xa_without_url.erase("url");
  expect("xa without url", Register(xa_without_url), 400);
  expect("malformed JSON", ApiRaw("registerBranch", R"({"gid":"g1",)"), 400);
  expect("tcc prepare with steps",
         Api("prepare", {{"gid", "g2"},
                         {"trans_type", "tcc"},
                         {"steps", json::array({{{"action", P("/ok")}}})},
                         {"payloads", json::array({"{}"})}}),
         400);
  expect("submit of a tcc never prepared", Submit("g3"), 400);

  // A saga has no registered branches.
  ASSERT_EQ(Api("submit", Saga("s1", {{"/ok", "/ok"}}, {{"wait_result", true}})).status, 200);
  json saga_branch = TccBranch("s1", "b1", "d1", "/ok", "/ok");
  saga_branch["trans_type"] = "saga";
  expect("registerBranch for a saga", Register(saga_branch), 400);
  const HttpReply mismatch = Register(TccBranch("s1", "b1", "d1", "/ok", "/ok"));
  EXPECT_GE(mismatch.status, 400) << mismatch.body;
  EXPECT_LT(mismatch.status, 500) << mismatch.body;
  EXPECT_EQ(Query("s1")["branches"].size(), 2u) << Query("s1").dump();

  // Nothing above changed g1, nor created g2/g3/nope.
  EXPECT_EQ(Query("g1"), before);
  for (const char* gid : {"g2", "g3", "nope"}) EXPECT_EQ(Status(gid), "") << gid;
  EXPECT_TRUE(Calls("g1").empty());

  // After the decision: a new branch is 409, the same registration is still 200.
  ASSERT_EQ(Submit("g1").status, 200);
  ASSERT_EQ(WaitFinal("g1"), "succeed");
  expect("new branch after submit", Register(TccBranch("g1", "b2", "d2", "/ok", "/ok")), 409);
  expect("same registration after submit", Register(b1), 200);
  EXPECT_EQ(Rows("g1"), (StringSet{"b1.cancel:prepared", "b1.confirm:succeed"}));
  EXPECT_EQ(Trace(Calls("g1")), (Strings{"b1.confirm:SUCCESS"}));
}

TEST_F(DtxdTccTest, RegisteredBranchesSurviveKill9) {
  ASSERT_EQ(Prepare("c1").status, 200);
  const json b1 = TccBranch("c1", "b1", "d1", "/ok", "/ok");
  ASSERT_EQ(Register(b1).status, 200);
  ASSERT_EQ(Register(TccBranch("c1", "b2", "d2", "/ok", "/ok")).status, 200);
  KillAndRestart();
  EXPECT_EQ(Status("c1"), "prepared");
  EXPECT_EQ(Rows("c1"), (StringSet{"b1.cancel:prepared", "b1.confirm:prepared",
                                   "b2.cancel:prepared", "b2.confirm:prepared"}));
  // The restored branch keeps its content: the same registration is idempotent, another is not.
  EXPECT_EQ(Register(b1).status, 200);
  json changed = b1;
  changed["data"] = "d1-other";
  EXPECT_EQ(Register(changed).status, 409);
  ASSERT_EQ(Submit("c1").status, 200);
  ASSERT_EQ(WaitFinal("c1"), "succeed");
  auto calls = Calls("c1");
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.confirm", "b2.confirm"})) << json(calls).dump();
  EXPECT_EQ(CountOp(calls, "cancel"), 0u);
  for (const json& c : calls) EXPECT_EQ(c["body"], c["branch_id"] == "b1" ? "d1" : "d2");
}

TEST_F(DtxdTccTest, KillDuringADelayedConfirmConfirmsEveryBranchAfterRestart) {
  ASSERT_EQ(Prepare("c2").status, 200);
  ASSERT_EQ(Register(TccBranch("c2", "b1", "d1", "/delay/700", "/ok")).status, 200);
  ASSERT_EQ(Register(TccBranch("c2", "b2", "d2", "/ok", "/ok")).status, 200);
  ASSERT_EQ(Submit("c2").status, 200);
  ASSERT_TRUE(WaitForCall("c2", "/delay/700"));
  KillAndRestart();
  ASSERT_EQ(WaitFinal("c2", 10'000), "succeed");
  auto calls = Calls("c2");
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.confirm", "b2.confirm"})) << json(calls).dump();
  EXPECT_EQ(CountOp(calls, "cancel"), 0u) << json(calls).dump();
  EXPECT_EQ(Rows("c2"), (StringSet{"b1.cancel:prepared", "b1.confirm:succeed", "b2.cancel:prepared",
                                   "b2.confirm:succeed"}));
}

TEST_F(DtxdTccTest, KillDuringADelayedCancelCancelsEveryBranchAfterRestart) {
  ASSERT_EQ(Prepare("c3").status, 200);
  ASSERT_EQ(Register(TccBranch("c3", "b1", "d1", "/ok", "/delay/700")).status, 200);
  ASSERT_EQ(Register(TccBranch("c3", "b2", "d2", "/ok", "/ok")).status, 200);
  ASSERT_EQ(Abort("c3").status, 200);
  ASSERT_TRUE(WaitForCall("c3", "/delay/700"));
  KillAndRestart();
  ASSERT_EQ(WaitFinal("c3", 10'000), "failed");
  auto calls = Calls("c3");
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.cancel", "b2.cancel"})) << json(calls).dump();
  EXPECT_EQ(CountOp(calls, "confirm"), 0u) << json(calls).dump();
}

// A short prepared timeout: a tcc or xa transaction nobody submits is aborted.
class DtxdTccTimeoutTest : public DtxdTccTest {
 protected:
  std::vector<std::string> ExtraFlags() const override { return {"--prepared-timeout-ms", "800"}; }
};

TEST_F(DtxdTccTimeoutTest, PreparedTransactionIsAbortedAfterTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(Prepare("p1").status, 200);
  ASSERT_EQ(Register(TccBranch("p1", "b1", "d1", "/ok", "/ok")).status, 200);
  ASSERT_EQ(Register(TccBranch("p1", "b2", "d2", "/ok", "/ok")).status, 200);
  ASSERT_EQ(Prepare("p2", "xa").status, 200);
  ASSERT_EQ(Register(XaBranch("p2", "b1", "d1", "/ok")).status, 200);
  auto final_status = WaitFinal(Strings{"p1", "p2"}, 10'000);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(final_status, (std::map<std::string, std::string>{{"p1", "failed"}, {"p2", "failed"}}));
  // Not before the timeout: dtxd saw each prepare after `start`.
  EXPECT_GE(elapsed, std::chrono::milliseconds(800));

  auto calls = Calls("p1");
  EXPECT_EQ(Succeeded(calls), (StringSet{"b1.cancel", "b2.cancel"})) << json(calls).dump();
  EXPECT_EQ(CountOp(calls, "confirm"), 0u);
  EXPECT_EQ(Trace(Calls("p2")), (Strings{"b1.rollback:SUCCESS"}));
  // Too late to submit or register now.
  EXPECT_EQ(Submit("p1").status, 409);
  EXPECT_EQ(Register(TccBranch("p1", "b3", "d3", "/ok", "/ok")).status, 409);
}

}  // namespace
}  // namespace dtx::itest
