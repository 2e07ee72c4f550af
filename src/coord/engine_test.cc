#include "coord/engine.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dtx::coord {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

constexpr TimeMs kStart = 1'000'000;

// The durable store as the engine's driver sees it: records exactly as the applied writes left
// them.
class MapReader final : public TxnReader {
 public:
  Result<std::optional<TxnRecord>> Load(const std::string& gid) override {
    ++loads;
    if (!fail.ok()) return fail;
    auto it = records.find(gid);
    if (it == records.end()) return std::optional<TxnRecord>();
    return std::optional<TxnRecord>(it->second);
  }

  std::map<std::string, TxnRecord> records;
  Status fail;
  int loads = 0;
};

EngineConfig TestConfig() {
  EngineConfig c;
  c.retry_interval_ms = 1'000;
  c.max_retry_interval_ms = 8'000;
  c.ongoing_interval_ms = 5'000;
  c.msg_timeout_ms = 35'000;
  c.request_timeout_ms = 3'000;
  c.wait_result_timeout_ms = 10'000;
  c.alert_after_failures = 0;
  c.retry_limit = 0;
  return c;
}

std::string QueryParam(const BranchCall& c, const std::string& key) {
  for (const auto& [k, v] : c.query) {
    if (k == key) return v;
  }
  return "<none>";
}

// "action 01", "compensate 02", "msg 00".
std::string OpOf(const BranchCall& c) {
  return QueryParam(c, "op") + " " + QueryParam(c, "branch_id");
}

Strings Ops(const std::vector<BranchCall>& calls) {
  Strings out;
  for (const auto& c : calls) out.push_back(OpOf(c));
  return out;
}

Strings Sorted(Strings v) {
  std::sort(v.begin(), v.end());
  return v;
}

// A saga of n steps: action http://svc/a<i>, compensate http://svc/c<i>, payload p<i>.
std::string SagaBody(const std::string& gid, int n, const std::string& extra = "") {
  json steps = json::array();
  json payloads = json::array();
  for (int i = 0; i < n; ++i) {
    steps.push_back({{"action", "http://svc/a" + std::to_string(i)},
                     {"compensate", "http://svc/c" + std::to_string(i)}});
    payloads.push_back("p" + std::to_string(i));
  }
  json body = {{"gid", gid}, {"trans_type", "saga"}, {"steps", steps}, {"payloads", payloads}};
  std::string s = body.dump();
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + ", " + extra + "}";
  return s;
}

// A concurrent saga of n steps with the given orders object (JSON text, e.g. {"2":[0]}).
std::string ConcurrentSagaBody(const std::string& gid, int n, const std::string& orders) {
  std::string custom = R"({"concurrent":true,"orders":)" + orders + "}";
  return SagaBody(gid, n, "\"custom_data\": " + json(custom).dump());
}

// A msg of n steps: action http://svc/m<i>, payload q<i>, check-back http://svc/query.
std::string MsgBody(const std::string& gid, int n, const std::string& extra = "") {
  json steps = json::array();
  json payloads = json::array();
  for (int i = 0; i < n; ++i) {
    steps.push_back({{"action", "http://svc/m" + std::to_string(i)}});
    payloads.push_back("q" + std::to_string(i));
  }
  json body = {{"gid", gid},
               {"trans_type", "msg"},
               {"steps", steps},
               {"payloads", payloads},
               {"query_prepared", "http://svc/query"}};
  std::string s = body.dump();
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + ", " + extra + "}";
  return s;
}

// Drives an Engine the way the runtime does, with a map as the durable store. After every event
// it takes each Ready, checks that every call and success reply in it is justified by the durable
// state once the Ready's writes are applied, applies the writes, and advances.
class Driver {
 public:
  explicit Driver(EngineConfig config = TestConfig()) : config_(config) {
    engine_ = std::make_unique<Engine>(config_, store, /*seed=*/42);
  }

  Engine& engine() { return *engine_; }

  RequestId Send(ApiOp op, const std::string& body) {
    auto req = ParseTxnRequest(op, body);
    EXPECT_TRUE(req.ok()) << req.status().ToString() << " for " << body;
    if (!req.ok()) return 0;
    RequestId id = ++next_request_;
    requests_[id] = {op, req->def.gid};
    engine_->HandleRequest(id, std::move(*req), now);
    Flush();
    return id;
  }
  RequestId Submit(const std::string& body) { return Send(ApiOp::kSubmit, body); }
  RequestId Prepare(const std::string& body) { return Send(ApiOp::kPrepare, body); }
  RequestId Abort(const std::string& gid) { return Send(ApiOp::kAbort, json{{"gid", gid}}.dump()); }
  RequestId Register(const std::string& body) { return Send(ApiOp::kRegisterBranch, body); }
  RequestId ForceStop(const std::string& gid) {
    return Send(ApiOp::kForceStop, json{{"gid", gid}}.dump());
  }
  RequestId ResetCron(int64_t later_than_ms, int64_t limit) {
    RequestId id = ++next_request_;
    engine_->HandleResetCronTime(id, later_than_ms, limit, now);
    Flush();
    return id;
  }

  void Answer(const BranchCall& call, CallOutcome outcome) {
    engine_->OnCallDone(call.id, outcome, now);
    Flush();
  }
  void Tick(TimeMs at) {
    ASSERT_GE(at, now) << "time runs forward";
    now = at;
    engine_->Tick(now);
    Flush();
  }

  std::vector<BranchCall> TakeCalls() {
    std::vector<BranchCall> out = std::move(calls_);
    calls_.clear();
    return out;
  }
  // Takes the pending calls, expecting exactly `op`. Returns a call with id 0 (which the engine
  // ignores) if the expectation fails.
  BranchCall TakeOnly(const std::string& op) {
    auto c = TakeCalls();
    EXPECT_EQ(Ops(c), Strings{op});
    if (c.size() != 1 || OpOf(c[0]) != op) return BranchCall{};
    return c[0];
  }
  bool NoCalls() const { return calls_.empty(); }

  // Answers pending calls with success until none are left (bounded).
  void SucceedAll() {
    for (int i = 0; i < 100 && !calls_.empty(); ++i) {
      for (const auto& c : TakeCalls()) Answer(c, CallOutcome::kSuccess);
    }
    EXPECT_TRUE(calls_.empty());
  }

  std::optional<GlobalStatus> Status(const std::string& gid) const {
    auto it = store.records.find(gid);
    if (it == store.records.end()) return std::nullopt;
    return it->second.state.status;
  }
  const TxnState& State(const std::string& gid) { return store.records[gid].state; }

  std::vector<Reply> RepliesTo(RequestId id) const {
    std::vector<Reply> out;
    for (const auto& r : replies) {
      if (r.request == id) out.push_back(r);
    }
    return out;
  }
  // The single reply to `id`, or a reply with status 0 if there is none or more than one.
  Reply ReplyTo(RequestId id) const {
    auto r = RepliesTo(id);
    EXPECT_EQ(r.size(), 1u) << "replies to request " << id;
    return r.size() == 1 ? r[0] : Reply{id, 0, ""};
  }

  // Takes the next Ready without persisting it (a crash before the batch is durable).
  Ready TakeUnpersisted() { return engine_->TakeReady(); }

  // A crash and restart: a fresh engine recovers the store's unfinished records.
  void Restart() {
    calls_.clear();
    engine_ = std::make_unique<Engine>(config_, store, /*seed=*/43);
    std::vector<TxnRecord> unfinished;
    for (const auto& [gid, rec] : store.records) {
      if (!IsFinal(rec.state.status)) unfinished.push_back(rec);
    }
    engine_->Recover(std::move(unfinished), now);
  }
  // A fresh engine that has not been told about any record.
  void RestartWithoutRecover() {
    calls_.clear();
    engine_ = std::make_unique<Engine>(config_, store, /*seed=*/44);
  }

  MapReader store;
  TimeMs now = kStart;
  std::vector<Ready> readies;  // every persisted Ready, in order
  std::vector<Reply> replies;
  std::vector<Alert> alerts;

 private:
  void Flush() {
    for (int i = 0; i < 100 && engine_->HasReady(); ++i) {
      Ready r = engine_->TakeReady();
      EXPECT_FALSE(r.empty());
      Persist(r);
      engine_->Advance();
    }
    EXPECT_FALSE(engine_->HasReady()) << "the engine keeps producing Readies";
  }

  void Persist(const Ready& r) {
    for (const auto& w : r.writes) {
      ASSERT_NE(w.def, nullptr);
      EXPECT_EQ(w.state.steps.size(), w.def->steps.size());
      if (w.create) {
        EXPECT_EQ(store.records.count(w.def->gid), 0u) << "second create of " << w.def->gid;
        store.records[w.def->gid] = TxnRecord{*w.def, w.state};
      } else {
        auto it = store.records.find(w.def->gid);
        ASSERT_NE(it, store.records.end()) << "update of " << w.def->gid << " before its create";
        it->second.state = w.state;
      }
    }
    for (const auto& c : r.calls) CheckCallJustified(c);
    for (const auto& rep : r.replies) CheckReplyJustified(rep);
    calls_.insert(calls_.end(), r.calls.begin(), r.calls.end());
    replies.insert(replies.end(), r.replies.begin(), r.replies.end());
    alerts.insert(alerts.end(), r.alerts.begin(), r.alerts.end());
    readies.push_back(r);
  }

  // Nothing is called before the state that justifies the call is durable.
  void CheckCallJustified(const BranchCall& c) {
    auto it = store.records.find(c.gid);
    ASSERT_NE(it, store.records.end()) << OpOf(c) << " of " << c.gid << " before any write";
    const TxnRecord& rec = it->second;
    const std::string op = QueryParam(c, "op");
    if (op == "msg") {
      EXPECT_EQ(rec.state.status, GlobalStatus::kPrepared) << "check-back of " << c.gid;
      return;
    }
    if (op == "confirm" || op == "cancel" || op == "commit" || op == "rollback") {
      const bool commit = op == "confirm" || op == "commit";
      EXPECT_EQ(rec.state.status, commit ? GlobalStatus::kSubmitted : GlobalStatus::kAborting)
          << OpOf(c) << " of " << c.gid;
      const std::string id = QueryParam(c, "branch_id");
      EXPECT_TRUE(std::any_of(rec.state.branches.begin(), rec.state.branches.end(),
                              [&](const RegisteredBranch& b) { return b.branch_id == id; }))
          << OpOf(c) << " of " << c.gid << " before its registration is durable";
      return;
    }
    size_t step = std::stoul(QueryParam(c, "branch_id")) - 1;
    ASSERT_LT(step, rec.def.steps.size());
    if (op == "compensate") {
      EXPECT_EQ(rec.state.status, GlobalStatus::kAborting) << OpOf(c) << " of " << c.gid;
      return;
    }
    ASSERT_EQ(op, "action");
    EXPECT_EQ(rec.state.status, GlobalStatus::kSubmitted) << OpOf(c) << " of " << c.gid;
    if (rec.def.type == TransType::kMsg || !rec.def.concurrent) {
      for (size_t j = 0; j < step; ++j) {
        EXPECT_EQ(rec.state.steps[j].action, BranchStatus::kSucceed)
            << OpOf(c) << " of " << c.gid << " before step " << j + 1 << " succeeded durably";
      }
    }
    if (auto o = rec.def.orders.find(static_cast<int>(step)); o != rec.def.orders.end()) {
      for (int j : o->second) {
        EXPECT_EQ(rec.state.steps[j].action, BranchStatus::kSucceed)
            << OpOf(c) << " of " << c.gid << " before its predecessor " << j + 1;
      }
    }
  }

  // A success reply to prepare/submit/abort/forceStop is sent only once the state it reports
  // is durable.
  void CheckReplyJustified(const Reply& rep) {
    auto req = requests_.find(rep.request);
    if (rep.http_status != 200 || req == requests_.end()) return;
    auto [op, gid] = req->second;
    auto status = Status(gid);
    ASSERT_TRUE(status.has_value()) << "success reply for " << gid << " before any write";
    switch (op) {
      case ApiOp::kSubmit:
        EXPECT_NE(*status, GlobalStatus::kPrepared) << gid;
        EXPECT_NE(*status, GlobalStatus::kFailed) << gid;
        break;
      case ApiOp::kAbort:
        EXPECT_TRUE(*status == GlobalStatus::kAborting || *status == GlobalStatus::kFailed);
        break;
      case ApiOp::kForceStop:
        EXPECT_EQ(*status, GlobalStatus::kFailed) << gid;
        break;
      case ApiOp::kRegisterBranch:
        EXPECT_FALSE(State(gid).branches.empty()) << gid;
        break;
      default:
        break;
    }
  }

  EngineConfig config_;
  std::unique_ptr<Engine> engine_;
  std::vector<BranchCall> calls_;
  std::map<RequestId, std::pair<ApiOp, std::string>> requests_;
  RequestId next_request_ = 0;
};

bool IsSuccessReply(const Reply& r) {
  return r.http_status == 200 && r.body.find("\"SUCCESS\"") != std::string::npos;
}
bool IsFailureReply(const Reply& r) {
  return r.http_status == 409 && r.body.find("FAILURE") != std::string::npos;
}

bool ReadyWritesGid(const Ready& r, const std::string& gid) {
  return std::any_of(r.writes.begin(), r.writes.end(),
                     [&](const TxnWrite& w) { return w.def->gid == gid; });
}

// ---------------------------------------------------------------------------------------------
// ClassifyResponse

TEST(ClassifyResponse, FollowsDtmResultRules) {
  EXPECT_EQ(ClassifyResponse(200, R"({"dtm_result":"SUCCESS"})"), CallOutcome::kSuccess);
  EXPECT_EQ(ClassifyResponse(200, ""), CallOutcome::kSuccess);
  EXPECT_EQ(ClassifyResponse(409, ""), CallOutcome::kFailure);
  EXPECT_EQ(ClassifyResponse(200, R"({"dtm_result":"FAILURE"})"), CallOutcome::kFailure);
  EXPECT_EQ(ClassifyResponse(425, ""), CallOutcome::kOngoing);
  EXPECT_EQ(ClassifyResponse(200, R"({"dtm_result":"ONGOING"})"), CallOutcome::kOngoing);
  EXPECT_EQ(ClassifyResponse(500, ""), CallOutcome::kError);
  EXPECT_EQ(ClassifyResponse(404, "not found"), CallOutcome::kError);
  EXPECT_EQ(ClassifyResponse(500, "FAILURE"), CallOutcome::kFailure);
}

// ---------------------------------------------------------------------------------------------
// Saga: the happy path

TEST(EngineSaga, SubmitWritesOneCreateBeforeTheFirstActionCall) {
  Driver d;
  RequestId id = d.Submit(SagaBody("g", 2));
  ASSERT_EQ(d.readies.size(), 1u);
  const Ready& r = d.readies[0];
  ASSERT_EQ(r.writes.size(), 1u);
  EXPECT_TRUE(r.writes[0].create);
  EXPECT_EQ(r.writes[0].state.status, GlobalStatus::kSubmitted);
  EXPECT_EQ(r.writes[0].def->create_time, kStart);
  EXPECT_EQ(Ops(r.calls), Strings{"action 01"});
  // The non-wait reply travels with the create write.
  ASSERT_EQ(r.replies.size(), 1u);
  EXPECT_EQ(r.replies[0].request, id);
  EXPECT_TRUE(IsSuccessReply(r.replies[0])) << r.replies[0].body;
  EXPECT_EQ(d.engine().stats().started, 1u);
}

TEST(EngineSaga, SequentialSagaCallsActionsOneByOneInOrder) {
  Driver d;
  d.Submit(SagaBody("g", 3));
  for (const char* op : {"action 01", "action 02", "action 03"}) {
    BranchCall c = d.TakeOnly(op);
    EXPECT_EQ(d.State("g").status, GlobalStatus::kSubmitted);
    d.Answer(c, CallOutcome::kSuccess);
  }
  EXPECT_TRUE(d.NoCalls());
}

TEST(EngineSaga, BranchCallCarriesDtmQueryPayloadHeadersAndTimeout) {
  Driver d;
  d.Submit(SagaBody("g-7", 2,
                    R"("request_timeout": 7, "branch_headers": {"X-Trace": "t1", "Auth": "B x"})"));
  BranchCall c = d.TakeOnly("action 01");
  EXPECT_EQ(c.gid, "g-7");
  EXPECT_EQ(c.url, "http://svc/a0");
  EXPECT_TRUE(c.post);
  EXPECT_EQ(c.body, "p0");
  using Query = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(c.query,
            (Query{{"gid", "g-7"}, {"trans_type", "saga"}, {"branch_id", "01"}, {"op", "action"}}));
  EXPECT_EQ(c.headers, (std::map<std::string, std::string>{{"X-Trace", "t1"}, {"Auth", "B x"}}));
  EXPECT_EQ(c.timeout_ms, 7'000);
  d.Answer(c, CallOutcome::kSuccess);
  BranchCall c2 = d.TakeOnly("action 02");
  EXPECT_EQ(c2.url, "http://svc/a1");
  EXPECT_EQ(c2.body, "p1");
  // A failed step is compensated with the same payload and headers.
  d.Answer(c2, CallOutcome::kFailure);
  BranchCall comp = d.TakeOnly("compensate 02");
  EXPECT_EQ(comp.url, "http://svc/c1");
  EXPECT_EQ(comp.body, "p1");
  EXPECT_TRUE(comp.post);
  EXPECT_EQ(comp.headers.at("X-Trace"), "t1");
}

TEST(EngineSaga, CallTimeoutDefaultsToConfiguredRequestTimeout) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  EXPECT_EQ(d.TakeOnly("action 01").timeout_ms, 3'000);
}

TEST(EngineSaga, AllActionsSucceededWritesSucceed) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  d.now += 10;
  d.SucceedAll();
  const TxnState& s = d.State("g");
  EXPECT_EQ(s.status, GlobalStatus::kSucceed);
  EXPECT_EQ(s.finish_time, kStart + 10);
  for (const auto& st : s.steps) {
    EXPECT_EQ(st.action, BranchStatus::kSucceed);
    EXPECT_EQ(st.compensate, BranchStatus::kPrepared);
  }
  EXPECT_EQ(d.engine().stats().succeeded, 1u);
}

// ---------------------------------------------------------------------------------------------
// Saga: compensation

TEST(EngineSaga, FailureOfStepTwoCompensatesTwoThenOneButNotThree) {
  Driver d;
  d.Submit(SagaBody("g", 3));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kFailure);
  EXPECT_EQ(d.State("g").status, GlobalStatus::kAborting);
  EXPECT_EQ(d.State("g").steps[1].action, BranchStatus::kFailed);
  EXPECT_NE(d.State("g").rollback_reason.find("02"), std::string::npos);
  // The failed step is compensated too, and first.
  d.Answer(d.TakeOnly("compensate 02"), CallOutcome::kSuccess);
  EXPECT_EQ(d.State("g").steps[1].compensate, BranchStatus::kSucceed);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_TRUE(d.NoCalls());
  const TxnState& s = d.State("g");
  EXPECT_EQ(s.status, GlobalStatus::kFailed);
  EXPECT_EQ(s.rollback_time, kStart);
  EXPECT_EQ(s.steps[2].action, BranchStatus::kPrepared);
  EXPECT_EQ(s.steps[2].compensate, BranchStatus::kPrepared);
  EXPECT_EQ(d.engine().stats().failed, 1u);
}

TEST(EngineSaga, StepNeverStartedIsNotCompensated) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
  for (const Ready& r : d.readies) {
    for (const auto& c : r.calls) EXPECT_NE(QueryParam(c, "branch_id"), "02") << OpOf(c);
  }
}

TEST(EngineSaga, EmptyCompensateUrlCountsAsAnImmediateSuccess) {
  Driver d;
  d.Submit(R"({"gid": "g", "trans_type": "saga",
    "steps": [{"action": "http://svc/a0"}, {"action": "http://svc/a1", "compensate": "http://svc/c1"}],
    "payloads": ["", ""]})");
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kFailure);
  d.Answer(d.TakeOnly("compensate 02"), CallOutcome::kSuccess);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
  EXPECT_EQ(d.State("g").steps[0].compensate, BranchStatus::kSucceed);
}

TEST(EngineSaga, ConcurrentSagaRunsIndependentStepsInOneReadyAndRespectsOrders) {
  Driver d;
  d.Submit(ConcurrentSagaBody("g", 3, R"({"2":[0,1]})"));
  ASSERT_EQ(d.readies.size(), 1u);
  auto calls = d.TakeCalls();
  ASSERT_EQ(Sorted(Ops(calls)), (Strings{"action 01", "action 02"}));
  const BranchCall& first = OpOf(calls[0]) == "action 01" ? calls[0] : calls[1];
  const BranchCall& second = OpOf(calls[0]) == "action 01" ? calls[1] : calls[0];
  d.Answer(second, CallOutcome::kSuccess);
  EXPECT_TRUE(d.NoCalls()) << "step 3 waits for step 1";
  d.Answer(first, CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 03"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineSaga, ConcurrentSagaCompensatesRespectingReverseOrders) {
  Driver d;
  d.Submit(ConcurrentSagaBody("g", 3, R"({"2":[0]})"));
  for (const auto& c : d.TakeCalls()) d.Answer(c, CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 03"), CallOutcome::kFailure);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  // Step 2 has no dependants and goes at once; step 1 waits for step 3, which depends on it.
  auto comps = d.TakeCalls();
  ASSERT_EQ(Sorted(Ops(comps)), (Strings{"compensate 02", "compensate 03"}));
  const BranchCall& c2 = OpOf(comps[0]) == "compensate 02" ? comps[0] : comps[1];
  const BranchCall& c3 = OpOf(comps[0]) == "compensate 02" ? comps[1] : comps[0];
  d.Answer(c2, CallOutcome::kSuccess);
  EXPECT_TRUE(d.NoCalls()) << "step 1 is compensated only after step 3";
  d.Answer(c3, CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, ConcurrentSagaCompensatesOnlyOnceNoActionIsInFlight) {
  Driver d;
  d.Submit(ConcurrentSagaBody("g", 2, "{}"));
  auto calls = d.TakeCalls();
  ASSERT_EQ(calls.size(), 2u);
  d.Answer(calls[0], CallOutcome::kFailure);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  EXPECT_TRUE(d.NoCalls()) << "the other action's answer decides whether it applied";
  d.Answer(calls[1], CallOutcome::kSuccess);
  EXPECT_EQ(Sorted(Ops(d.TakeCalls())), (Strings{"compensate 01", "compensate 02"}));
}

TEST(EngineSaga, CompensationAnsweringFailureIsRetriedAndNeverGivesUp) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  BranchCall comp = d.TakeOnly("compensate 01");
  for (int i = 0; i < 20; ++i) {
    d.Answer(comp, CallOutcome::kFailure);
    EXPECT_TRUE(d.NoCalls());
    EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
    auto wake = d.engine().NextWakeup();
    ASSERT_TRUE(wake.has_value()) << "attempt " << i;
    d.Tick(*wake);
    comp = d.TakeOnly("compensate 01");
  }
  d.Answer(comp, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

// ---------------------------------------------------------------------------------------------
// Saga: retries, timeouts, limits, alerts

TEST(EngineSaga, TemporaryErrorIsRetriedOnlyAfterBackoff) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kError);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.State("g").steps[0].action, BranchStatus::kPrepared);
  auto wake = d.engine().NextWakeup();
  ASSERT_TRUE(wake.has_value());
  EXPECT_GE(*wake, d.now + 750);
  EXPECT_LE(*wake, d.now + 1250);
  d.Tick(*wake - 1);
  EXPECT_TRUE(d.NoCalls());
  d.Tick(*wake);
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
  EXPECT_EQ(d.engine().stats().branch_errors, 1u);
}

TEST(EngineSaga, BackoffDoublesPerConsecutiveErrorUpToTheCap) {
  Driver d;  // base 1 s, cap 8 s, +-25% jitter
  d.Submit(SagaBody("g", 1));
  BranchCall call = d.TakeOnly("action 01");
  for (int64_t nominal : {1'000, 2'000, 4'000, 8'000, 8'000, 8'000}) {
    d.Answer(call, CallOutcome::kError);
    auto wake = d.engine().NextWakeup();
    ASSERT_TRUE(wake.has_value());
    EXPECT_GE(*wake - d.now, nominal - nominal / 4) << "nominal " << nominal;
    EXPECT_LE(*wake - d.now, nominal + nominal / 4) << "nominal " << nominal;
    d.Tick(*wake);
    call = d.TakeOnly("action 01");
  }
}

TEST(EngineSaga, RetryIntervalOptionSetsTheBackoffBase) {
  Driver d;
  d.Submit(SagaBody("g", 1, R"("retry_interval": 3)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kError);
  auto wake = d.engine().NextWakeup();
  ASSERT_TRUE(wake.has_value());
  EXPECT_GE(*wake - d.now, 2'250);
  EXPECT_LE(*wake - d.now, 3'750);
}

TEST(EngineSaga, OngoingIsPolledAgainAfterTheOngoingInterval) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kOngoing);
  EXPECT_EQ(d.engine().NextWakeup(), d.now + 5'000);
  TimeMs due = d.now + 5'000;
  d.Tick(due - 1);
  EXPECT_TRUE(d.NoCalls());
  d.Tick(due);
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineSaga, TimeoutToFailAbortsASubmittedSaga) {
  Driver d;
  d.Submit(SagaBody("g", 2, R"("timeout_to_fail": 3)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kOngoing);
  EXPECT_EQ(d.engine().NextWakeup(), kStart + 3'000);
  d.Tick(kStart + 2'999);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSubmitted);
  d.Tick(kStart + 3'000);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  EXPECT_NE(d.State("g").rollback_reason.find("timeout"), std::string::npos);
  // Step 2 answered ONGOING: it may have applied, so it is compensated before step 1.
  d.Answer(d.TakeOnly("compensate 02"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, TimeoutToFailWaitsForTheInFlightActionBeforeCompensating) {
  Driver d;
  d.Submit(SagaBody("g", 1, R"("timeout_to_fail": 1)"));
  BranchCall action = d.TakeOnly("action 01");
  d.Tick(kStart + 1'000);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  EXPECT_TRUE(d.NoCalls());
  d.Answer(action, CallOutcome::kSuccess);
  EXPECT_EQ(d.State("g").steps[0].action, BranchStatus::kSucceed);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, RetryLimitOnAnActionAbortsTheSaga) {
  Driver d;
  d.Submit(SagaBody("g", 2, R"("retry_limit": 2)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kError);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSubmitted);
  d.Tick(*d.engine().NextWakeup());
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kError);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  EXPECT_NE(d.State("g").rollback_reason.find("retry_limit"), std::string::npos);
  d.Answer(d.TakeOnly("compensate 02"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, ConfiguredRetryLimitAppliesWhenTheSagaSetsNone) {
  EngineConfig config = TestConfig();
  config.retry_limit = 1;
  Driver d(config);
  d.Submit(SagaBody("g", 1));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kError);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
}

TEST(EngineSaga, RetryLimitOnACompensationParksItWithAnAlert) {
  Driver d;
  d.Submit(SagaBody("g", 1, R"("retry_limit": 2)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kError);
  EXPECT_TRUE(d.alerts.empty());
  d.Tick(*d.engine().NextWakeup());
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kError);
  ASSERT_EQ(d.alerts.size(), 1u);
  EXPECT_EQ(d.alerts[0].gid, "g");
  EXPECT_EQ(d.alerts[0].branch_id, "01");
  EXPECT_EQ(d.alerts[0].op, "compensate");
  EXPECT_EQ(d.alerts[0].url, "http://svc/c0");
  EXPECT_NE(d.alerts[0].message.find("retry_limit"), std::string::npos);
  // Parked: a compensation is never given up, but nothing runs until an operator says so.
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  EXPECT_EQ(d.engine().NextWakeup(), std::nullopt);
  d.Tick(d.now + 3'600'000);
  EXPECT_TRUE(d.NoCalls());
}

TEST(EngineSaga, ResetCronTimeUnparksAndRetriesNow) {
  Driver d;
  d.Submit(SagaBody("g", 1, R"("retry_limit": 1)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kError);
  ASSERT_EQ(d.alerts.size(), 1u);
  d.Tick(d.now + 60'000);
  RequestId id = d.ResetCron(/*later_than_ms=*/0, /*limit=*/10);
  Reply r = d.ReplyTo(id);
  EXPECT_EQ(r.http_status, 200);
  json body = json::parse(r.body, nullptr, false);
  EXPECT_EQ(body.value("succeed_count", -1), 1);
  EXPECT_EQ(body.value("has_remaining", true), false);
  d.Tick(d.now);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, ResetCronTimeMovesLateRetriesForwardUpToTheLimit) {
  EngineConfig config = TestConfig();
  config.retry_interval_ms = 60'000;
  config.max_retry_interval_ms = 60'000;
  Driver d(config);
  d.Submit(SagaBody("a", 1));
  BranchCall a = d.TakeOnly("action 01");
  d.Submit(SagaBody("b", 1));
  BranchCall b = d.TakeOnly("action 01");
  d.Answer(a, CallOutcome::kError);
  d.Answer(b, CallOutcome::kError);
  // Both retries are at least 45 s away: later than 10 s.
  RequestId id = d.ResetCron(/*later_than_ms=*/10'000, /*limit=*/1);
  json body = json::parse(d.ReplyTo(id).body, nullptr, false);
  EXPECT_EQ(body.value("succeed_count", -1), 1);
  EXPECT_EQ(body.value("has_remaining", false), true);
  d.Tick(d.now);
  EXPECT_EQ(d.TakeCalls().size(), 1u);
}

TEST(EngineSaga, AlertAfterConsecutiveFailuresIsSentOnce) {
  EngineConfig config = TestConfig();
  config.alert_after_failures = 3;
  Driver d(config);
  d.Submit(SagaBody("g", 1));
  BranchCall call = d.TakeOnly("action 01");
  for (int i = 1; i <= 5; ++i) {
    d.Answer(call, CallOutcome::kError);
    EXPECT_EQ(d.alerts.size(), i >= 3 ? 1u : 0u) << "after " << i << " errors";
    d.Tick(*d.engine().NextWakeup());
    call = d.TakeOnly("action 01");
  }
  ASSERT_EQ(d.alerts.size(), 1u);
  EXPECT_EQ(d.alerts[0].branch_id, "01");
  EXPECT_EQ(d.alerts[0].op, "action");
  EXPECT_EQ(d.alerts[0].url, "http://svc/a0");
  EXPECT_EQ(d.alerts[0].consecutive_failures, 3);
  d.Answer(call, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineSaga, ActionErrorArrivingWhileAbortingDoesNotParkCompensation) {
  Driver d;
  d.Submit(SagaBody("g", 2, R"("retry_limit": 1, "custom_data": "{\"concurrent\":true}")"));
  auto calls = d.TakeCalls();
  ASSERT_EQ(Ops(calls), (Strings{"action 01", "action 02"}));
  d.Answer(calls[0], CallOutcome::kFailure);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kAborting);
  d.Answer(calls[1], CallOutcome::kError);
  EXPECT_EQ(Sorted(Ops(d.TakeCalls())), (Strings{"compensate 01", "compensate 02"}));
}

// ---------------------------------------------------------------------------------------------
// Saga: wait_result

TEST(EngineSaga, WaitResultRepliesOnlyWhenSucceeded) {
  Driver d;
  RequestId id = d.Submit(SagaBody("g", 1, R"("wait_result": true)"));
  EXPECT_TRUE(d.RepliesTo(id).empty());
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSubmitted);
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  Reply r = d.ReplyTo(id);
  EXPECT_TRUE(IsSuccessReply(r)) << r.body;
  // Sent in the Ready that makes `succeed` durable.
  const Ready& last = d.readies.back();
  ASSERT_EQ(last.writes.size(), 1u);
  EXPECT_EQ(last.writes[0].state.status, GlobalStatus::kSucceed);
  EXPECT_EQ(last.replies.size(), 1u);
}

TEST(EngineSaga, WaitResultReplies409WhenFailed) {
  Driver d;
  RequestId id = d.Submit(SagaBody("g", 1, R"("wait_result": true)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  EXPECT_TRUE(d.RepliesTo(id).empty()) << "aborting is not an outcome yet";
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  Reply r = d.ReplyTo(id);
  EXPECT_TRUE(IsFailureReply(r)) << r.http_status << " " << r.body;
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, WaitResultReplies425AfterTheWaitTimeout) {
  Driver d;
  RequestId id = d.Submit(SagaBody("g", 1, R"("wait_result": true)"));
  BranchCall action = d.TakeOnly("action 01");
  EXPECT_EQ(d.engine().NextWakeup(), kStart + 10'000);
  d.Tick(kStart + 9'999);
  EXPECT_TRUE(d.RepliesTo(id).empty());
  d.Tick(kStart + 10'000);
  Reply r = d.ReplyTo(id);
  EXPECT_EQ(r.http_status, 425);
  EXPECT_NE(r.body.find("ONGOING"), std::string::npos);
  d.Answer(action, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
  EXPECT_EQ(d.RepliesTo(id).size(), 1u) << "one reply per request";
}

// ---------------------------------------------------------------------------------------------
// Saga: repeated and conflicting requests

TEST(EngineSaga, DuplicateSubmitWithSameContentIsIdempotent) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  BranchCall action = d.TakeOnly("action 01");
  size_t readies = d.readies.size();
  RequestId again = d.Submit(SagaBody("g", 2));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(again)));
  ASSERT_EQ(d.readies.size(), readies + 1);
  EXPECT_TRUE(d.readies.back().writes.empty()) << "no second create";
  EXPECT_TRUE(d.NoCalls()) << "the in-flight action is not called twice";
  EXPECT_EQ(d.engine().stats().started, 1u);
  d.Answer(action, CallOutcome::kSuccess);
  EXPECT_EQ(Ops(d.TakeCalls()), Strings{"action 02"});
}

TEST(EngineSaga, SubmitOfAUsedGidWithDifferentContentIs409) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  BranchCall action = d.TakeOnly("action 01");
  RequestId fewer = d.Submit(SagaBody("g", 1));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(fewer))) << d.ReplyTo(fewer).body;
  std::string other_payload = SagaBody("g", 2);
  other_payload.replace(other_payload.find("\"p1\""), 4, "\"px\"");
  RequestId changed = d.Submit(other_payload);
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(changed)));
  RequestId msg = d.Submit(MsgBody("g", 2));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(msg)));
  // The original transaction is untouched.
  EXPECT_EQ(d.State("g").status, GlobalStatus::kSubmitted);
  EXPECT_EQ(d.store.records["g"].def.payloads[1], "p1");
  d.Answer(action, CallOutcome::kSuccess);
  EXPECT_EQ(Ops(d.TakeCalls()), Strings{"action 02"});
}

TEST(EngineSaga, SubmitWhileAbortingOrAfterFailedIs409) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  BranchCall comp = d.TakeOnly("compensate 01");
  RequestId while_aborting = d.Submit(SagaBody("g", 1));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(while_aborting)));
  d.Answer(comp, CallOutcome::kSuccess);
  ASSERT_EQ(d.Status("g"), GlobalStatus::kFailed);
  RequestId after = d.Submit(SagaBody("g", 1));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(after)));
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineSaga, AbortOfASubmittedSagaIsRejected) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  RequestId id = d.Abort("g");
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(id)));
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSubmitted);
}

TEST(EngineSaga, RequestsForUnknownGidsAreAnsweredWithoutWrites) {
  Driver d;
  EXPECT_EQ(d.ReplyTo(d.Abort("nope")).http_status, 404);
  EXPECT_EQ(d.ReplyTo(d.ForceStop("nope")).http_status, 404);
  // A msg submit without steps needs an earlier prepare.
  EXPECT_EQ(d.ReplyTo(d.Submit(R"({"gid": "nope", "trans_type": "msg"})")).http_status, 400);
  EXPECT_TRUE(d.store.records.empty());
  for (const Ready& r : d.readies) EXPECT_TRUE(r.writes.empty());
}

TEST(EngineSaga, StoreReadErrorIsATemporaryErrorAndChangesNothing) {
  Driver d;
  d.store.fail = Unavailable("disk on fire");
  RequestId id = d.Submit(SagaBody("g", 1));
  Reply r = d.ReplyTo(id);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.body.find("FAILURE"), std::string::npos) << "clients must retry: " << r.body;
  EXPECT_TRUE(d.store.records.empty());
  EXPECT_TRUE(d.NoCalls());
  d.store.fail = Status::Ok();
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Submit(SagaBody("g", 1)))));
  EXPECT_EQ(Ops(d.TakeCalls()), Strings{"action 01"});
}

TEST(EngineSaga, ForceStopFailsTheSagaAndLaterOutcomesAreIgnored) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  BranchCall action = d.TakeOnly("action 01");
  RequestId id = d.ForceStop("g");
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(id)));
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
  EXPECT_EQ(d.State("g").rollback_reason, "force stopped");
  size_t readies = d.readies.size();
  d.Answer(action, CallOutcome::kSuccess);
  EXPECT_EQ(d.readies.size(), readies);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.State("g").steps[0].action, BranchStatus::kPrepared);
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.ForceStop("g"))));
}

TEST(EngineSaga, UnknownAndStaleCallIdsAreIgnored) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  BranchCall action = d.TakeOnly("action 01");
  for (CallId bogus : {CallId{0}, action.id + 1, CallId{999'999}}) {
    d.engine().OnCallDone(bogus, CallOutcome::kSuccess, d.now);
    EXPECT_FALSE(d.engine().HasReady()) << bogus;
  }
  EXPECT_EQ(d.engine().stats().inflight_calls, 1u);
  d.Answer(action, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineSaga, AnsweringOneCallTwiceIsHarmless) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  BranchCall action = d.TakeOnly("action 01");
  d.Answer(action, CallOutcome::kSuccess);
  BranchCall next = d.TakeOnly("action 02");
  size_t readies = d.readies.size();
  d.Answer(action, CallOutcome::kSuccess);
  d.Answer(action, CallOutcome::kFailure);
  EXPECT_EQ(d.readies.size(), readies);
  EXPECT_TRUE(d.NoCalls());
  d.Answer(next, CallOutcome::kSuccess);
  d.Answer(next, CallOutcome::kFailure);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineSaga, FinishedTransactionsAreEvictedAndAnsweredFromTheStore) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  d.SucceedAll();
  ASSERT_EQ(d.Status("g"), GlobalStatus::kSucceed);
  EXPECT_EQ(d.engine().stats().active, 0u);
  EXPECT_EQ(d.engine().NextWakeup(), std::nullopt);
  int loads = d.store.loads;
  RequestId same = d.Submit(SagaBody("g", 1));
  EXPECT_GT(d.store.loads, loads) << "answered from the store";
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(same)));
  EXPECT_TRUE(d.readies.back().writes.empty());
  EXPECT_TRUE(d.NoCalls());
  RequestId different = d.Submit(SagaBody("g", 2));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(different)));
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineSaga, FinishedTransactionLoadedFromTheStoreIsNotKeptInMemory) {
  Driver d;
  d.Submit(SagaBody("g", 1));
  d.SucceedAll();
  ASSERT_EQ(d.engine().stats().active, 0u);
  d.Submit(SagaBody("g", 1));
  EXPECT_EQ(d.engine().stats().active, 0u);
}

TEST(EngineSaga, EventsDuringAnOutstandingReadyGoIntoTheNextOne) {
  Driver d;
  auto req = ParseTxnRequest(ApiOp::kSubmit, SagaBody("a", 1));
  ASSERT_TRUE(req.ok());
  d.engine().HandleRequest(1, std::move(*req), d.now);
  ASSERT_TRUE(d.engine().HasReady());
  Ready first = d.engine().TakeReady();
  EXPECT_FALSE(d.engine().HasReady());
  auto req2 = ParseTxnRequest(ApiOp::kSubmit, SagaBody("b", 1));
  ASSERT_TRUE(req2.ok());
  d.engine().HandleRequest(2, std::move(*req2), d.now);
  EXPECT_FALSE(d.engine().HasReady()) << "one Ready outstanding at a time";
  EXPECT_TRUE(ReadyWritesGid(first, "a"));
  EXPECT_FALSE(ReadyWritesGid(first, "b"));
  d.engine().Advance();
  ASSERT_TRUE(d.engine().HasReady());
  Ready second = d.engine().TakeReady();
  EXPECT_TRUE(ReadyWritesGid(second, "b"));
  EXPECT_FALSE(ReadyWritesGid(second, "a"));
  EXPECT_EQ(Ops(second.calls), Strings{"action 01"});
  ASSERT_EQ(second.replies.size(), 1u);
  EXPECT_EQ(second.replies[0].request, 2u);
  d.engine().Advance();
}

TEST(EngineSaga, ManySagasInterleavedNeverCallBeforeTheirWrite) {
  // The Driver checks every Ready; this drives many transactions through mixed outcomes.
  Driver d;
  Rand rand(7);
  for (int i = 0; i < 20; ++i) {
    d.Submit(i % 3 == 0 ? ConcurrentSagaBody("s" + std::to_string(i), 3, R"({"2":[0]})")
                        : SagaBody("s" + std::to_string(i), 3));
  }
  const CallOutcome outcomes[] = {CallOutcome::kSuccess, CallOutcome::kSuccess,
                                  CallOutcome::kFailure, CallOutcome::kOngoing,
                                  CallOutcome::kError};
  for (int round = 0; round < 500; ++round) {
    auto calls = d.TakeCalls();
    if (calls.empty()) {
      auto wake = d.engine().NextWakeup();
      if (!wake) break;
      d.Tick(std::max(*wake, d.now));
      continue;
    }
    for (const auto& c : calls) {
      // Compensations eventually succeed; actions get any outcome.
      CallOutcome o = outcomes[rand.Uniform(5)];
      if (round > 200 && o != CallOutcome::kFailure) o = CallOutcome::kSuccess;
      d.Answer(c, o);
    }
  }
  for (int i = 0; i < 20; ++i) {
    auto s = d.Status("s" + std::to_string(i));
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(IsFinal(*s)) << "s" << i << " is " << GlobalStatusName(*s);
    const TxnRecord& rec = d.store.records["s" + std::to_string(i)];
    for (size_t k = 0; k < rec.state.steps.size(); ++k) {
      if (*s == GlobalStatus::kSucceed) {
        EXPECT_EQ(rec.state.steps[k].action, BranchStatus::kSucceed);
      } else if (rec.state.steps[k].action != BranchStatus::kPrepared) {
        EXPECT_EQ(rec.state.steps[k].compensate, BranchStatus::kSucceed) << "s" << i << " " << k;
      }
    }
  }
  EXPECT_EQ(d.engine().stats().active, 0u);
}

// ---------------------------------------------------------------------------------------------
// msg

TEST(EngineMsg, PrepareWritesPreparedAndCallsNothing) {
  Driver d;
  RequestId id = d.Prepare(MsgBody("m", 2));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(id)));
  ASSERT_EQ(d.readies.size(), 1u);
  ASSERT_EQ(d.readies[0].writes.size(), 1u);
  EXPECT_TRUE(d.readies[0].writes[0].create);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kPrepared);
  d.Tick(kStart + 34'999);
  EXPECT_TRUE(d.NoCalls()) << "no delivery before submit, no check-back before the timeout";
}

TEST(EngineMsg, SubmitDeliversStepsInOrderAndRetriesFailure) {
  Driver d;
  d.Prepare(MsgBody("m", 2));
  RequestId id = d.Submit(R"({"gid": "m", "trans_type": "msg"})");
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(id)));
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSubmitted);
  BranchCall first = d.TakeOnly("action 01");
  EXPECT_EQ(first.url, "http://svc/m0");
  EXPECT_EQ(first.body, "q0");
  EXPECT_EQ(QueryParam(first, "trans_type"), "msg");
  // A delivered message must arrive: FAILURE is retried like a temporary error.
  d.Answer(first, CallOutcome::kFailure);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSubmitted);
  auto wake = d.engine().NextWakeup();
  ASSERT_TRUE(wake.has_value());
  EXPECT_GE(*wake - d.now, 750);
  d.Tick(*wake);
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSucceed);
}

TEST(EngineMsg, SubmitWithoutPrepareDeliversAtOnce) {
  Driver d;
  d.Submit(MsgBody("m", 1));
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSubmitted);
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSucceed);
}

TEST(EngineMsg, PrepareIsIdempotentAndRejectedAfterSubmit) {
  Driver d;
  d.Prepare(MsgBody("m", 1));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Prepare(MsgBody("m", 1)))));
  EXPECT_EQ(d.engine().stats().started, 1u);
  d.Submit(MsgBody("m", 1));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Prepare(MsgBody("m", 1)))));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Prepare(MsgBody("m", 2)))));
}

TEST(EngineMsg, CheckBackAfterTimeoutIsAGetWithoutBody) {
  Driver d;
  d.Prepare(MsgBody("m", 1, R"("branch_headers": {"X-A": "1"})"));
  EXPECT_EQ(d.engine().NextWakeup(), kStart + 35'000);
  d.Tick(kStart + 35'000);
  BranchCall c = d.TakeOnly("msg 00");
  EXPECT_EQ(c.url, "http://svc/query");
  EXPECT_FALSE(c.post);
  EXPECT_EQ(c.body, "");
  EXPECT_EQ(QueryParam(c, "gid"), "m");
  EXPECT_EQ(QueryParam(c, "trans_type"), "msg");
  EXPECT_EQ(c.headers.at("X-A"), "1");
}

TEST(EngineMsg, CheckBackSuccessSubmitsAndDelivers) {
  Driver d;
  d.Prepare(MsgBody("m", 2));
  d.Tick(kStart + 35'000);
  d.Answer(d.TakeOnly("msg 00"), CallOutcome::kSuccess);
  // The submitted write and the first delivery travel together.
  const Ready& r = d.readies.back();
  ASSERT_EQ(r.writes.size(), 1u);
  EXPECT_EQ(r.writes[0].state.status, GlobalStatus::kSubmitted);
  EXPECT_EQ(Ops(r.calls), Strings{"action 01"});
  d.SucceedAll();
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSucceed);
}

TEST(EngineMsg, CheckBackFailureFailsTheMessage) {
  Driver d;
  d.Prepare(MsgBody("m", 1));
  d.Tick(kStart + 35'000);
  d.Answer(d.TakeOnly("msg 00"), CallOutcome::kFailure);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kFailed);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.State("m").steps[0].action, BranchStatus::kPrepared);
}

TEST(EngineMsg, CheckBackOngoingAsksAgainLater) {
  Driver d;
  d.Prepare(MsgBody("m", 1));
  d.Tick(kStart + 35'000);
  d.Answer(d.TakeOnly("msg 00"), CallOutcome::kOngoing);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kPrepared);
  EXPECT_EQ(d.engine().NextWakeup(), d.now + 5'000);
  d.Tick(d.now + 4'999);
  EXPECT_TRUE(d.NoCalls());
  d.Tick(d.now + 1);
  d.Answer(d.TakeOnly("msg 00"), CallOutcome::kSuccess);
  EXPECT_EQ(Ops(d.TakeCalls()), Strings{"action 01"});
}

TEST(EngineMsg, CheckBackErrorIsRetriedAfterBackoff) {
  Driver d;
  d.Prepare(MsgBody("m", 1));
  d.Tick(kStart + 35'000);
  d.Answer(d.TakeOnly("msg 00"), CallOutcome::kError);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kPrepared);
  auto wake = d.engine().NextWakeup();
  ASSERT_TRUE(wake.has_value());
  EXPECT_GE(*wake - d.now, 750);
  EXPECT_LE(*wake - d.now, 1'250);
  d.Tick(*wake);
  EXPECT_EQ(Ops(d.TakeCalls()), Strings{"msg 00"});
}

TEST(EngineMsg, TimeoutToFailSetsTheCheckBackTime) {
  Driver d;
  d.Prepare(MsgBody("m", 1, R"("timeout_to_fail": 5)"));
  EXPECT_EQ(d.engine().NextWakeup(), kStart + 5'000);
  d.Tick(kStart + 4'999);
  EXPECT_TRUE(d.NoCalls());
  d.Tick(kStart + 5'000);
  EXPECT_EQ(Ops(d.TakeCalls()), Strings{"msg 00"});
}

TEST(EngineMsg, AbortOfAPreparedMsgFailsIt) {
  Driver d;
  d.Prepare(MsgBody("m", 1));
  RequestId id = d.Abort("m");
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(id)));
  EXPECT_EQ(d.Status("m"), GlobalStatus::kFailed);
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Abort("m")))) << "abort is idempotent";
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Submit(MsgBody("m", 1)))));
  d.Tick(kStart + 100'000);
  EXPECT_TRUE(d.NoCalls());
}

TEST(EngineMsg, AbortOfASubmittedMsgIsRejected) {
  Driver d;
  d.Submit(MsgBody("m", 1));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Abort("m"))));
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSubmitted);
}

TEST(EngineMsg, SubmitDuringACheckBackWinsAndTheLateAnswerIsIgnored) {
  Driver d;
  d.Prepare(MsgBody("m", 1));
  d.Tick(kStart + 35'000);
  BranchCall check = d.TakeOnly("msg 00");
  d.Submit(R"({"gid": "m", "trans_type": "msg"})");
  BranchCall deliver = d.TakeOnly("action 01");
  d.Answer(check, CallOutcome::kFailure);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSubmitted);
  d.Answer(deliver, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSucceed);
}

TEST(EngineMsg, DeliveryRetryLimitParksWithAnAlert) {
  Driver d;
  d.Submit(MsgBody("m", 1, R"("retry_limit": 1)"));
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kFailure);
  ASSERT_EQ(d.alerts.size(), 1u);
  EXPECT_EQ(d.alerts[0].op, "action");
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSubmitted) << "a message is never given up";
  EXPECT_EQ(d.engine().NextWakeup(), std::nullopt);
  d.ResetCron(0, 10);
  d.Tick(d.now);
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("m"), GlobalStatus::kSucceed);
}

// ---------------------------------------------------------------------------------------------
// Recovery

// A record as the store would hold it for `body`, created at kStart.
TxnRecord Record(ApiOp op, const std::string& body, GlobalStatus status,
                 std::vector<StepState> steps) {
  auto req = ParseTxnRequest(op, body);
  EXPECT_TRUE(req.ok()) << req.status().ToString();
  TxnRecord rec;
  if (!req.ok()) return rec;
  rec.def = req->def;
  rec.def.create_time = kStart;
  rec.state.status = status;
  steps.resize(rec.def.steps.size());
  rec.state.steps = std::move(steps);
  rec.state.update_time = kStart;
  return rec;
}

StepState Succeeded() { return StepState{BranchStatus::kSucceed, BranchStatus::kPrepared, 1, 0}; }

TEST(EngineRecovery, SagaResumesAtTheFirstUnfinishedStepOnTheNextTick) {
  Driver d;
  d.now = kStart + 500;
  d.store.records["g"] = Record(ApiOp::kSubmit, SagaBody("g", 3), GlobalStatus::kSubmitted,
                                {Succeeded(), StepState{}});
  d.Restart();
  EXPECT_EQ(d.engine().stats().active, 1u);
  EXPECT_EQ(d.engine().NextWakeup(), d.now);
  EXPECT_FALSE(d.engine().HasReady());
  d.Tick(d.now);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 03"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineRecovery, AbortingSagaCompensatesTheStepThatMayHaveRunButNotLaterOnes) {
  Driver d;
  // Step 1 succeeded; step 2 was never recorded, so its action may have run before the crash.
  d.store.records["g"] = Record(ApiOp::kSubmit, SagaBody("g", 3), GlobalStatus::kAborting,
                                {Succeeded(), StepState{}, StepState{}});
  d.Restart();
  d.Tick(d.now);
  d.Answer(d.TakeOnly("compensate 02"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
  EXPECT_EQ(d.State("g").steps[2].compensate, BranchStatus::kPrepared);
}

TEST(EngineRecovery, AbortingSagaSkipsCompensationsAlreadyRecorded) {
  Driver d;
  StepState compensated{BranchStatus::kFailed, BranchStatus::kSucceed, 1, 2};
  d.store.records["g"] = Record(ApiOp::kSubmit, SagaBody("g", 3), GlobalStatus::kAborting,
                                {Succeeded(), compensated, StepState{}});
  d.Restart();
  d.Tick(d.now);
  d.Answer(d.TakeOnly("compensate 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kFailed);
}

TEST(EngineRecovery, CrashBeforeTheBatchIsDurableRepeatsTheOperation) {
  Driver d;
  d.Submit(SagaBody("g", 2));
  BranchCall action = d.TakeOnly("action 01");
  d.engine().OnCallDone(action.id, CallOutcome::kSuccess, d.now);
  Ready lost = d.TakeUnpersisted();
  EXPECT_EQ(Ops(lost.calls), Strings{"action 02"});
  d.Restart();
  d.Tick(d.now);
  // At least once: step 1's success was never durable, so it is called again.
  d.Answer(d.TakeOnly("action 01"), CallOutcome::kSuccess);
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

TEST(EngineRecovery, PreparedMsgIsCheckedBackAndSubmittedMsgIsDelivered) {
  Driver d;
  d.now = kStart + 40'000;
  d.store.records["old"] = Record(ApiOp::kPrepare, MsgBody("old", 1), GlobalStatus::kPrepared, {});
  d.store.records["sub"] =
      Record(ApiOp::kSubmit, MsgBody("sub", 2), GlobalStatus::kSubmitted, {Succeeded()});
  d.Restart();
  d.Tick(d.now);
  auto calls = d.TakeCalls();
  Strings got;
  for (const auto& c : calls) got.push_back(c.gid + " " + OpOf(c));
  EXPECT_EQ(Sorted(got), (Strings{"old msg 00", "sub action 02"}));
}

TEST(EngineRecovery, PreparedMsgIsNotCheckedBackBeforeItsTimeout) {
  Driver d;
  d.now = kStart + 1'000;
  d.store.records["m"] = Record(ApiOp::kPrepare, MsgBody("m", 1), GlobalStatus::kPrepared, {});
  d.Restart();
  d.Tick(d.now);
  EXPECT_TRUE(d.NoCalls());
  EXPECT_EQ(d.engine().NextWakeup(), kStart + 35'000);
}

TEST(EngineRecovery, FinishedRecordsAreNotTakenOver) {
  Driver d;
  d.store.records["done"] =
      Record(ApiOp::kSubmit, SagaBody("done", 1), GlobalStatus::kSucceed, {Succeeded()});
  d.Restart();
  std::vector<TxnRecord> finished = {d.store.records["done"]};
  d.engine().Recover(finished, d.now);
  EXPECT_EQ(d.engine().stats().active, 0u);
  EXPECT_EQ(d.engine().NextWakeup(), std::nullopt);
}

TEST(EngineRecovery, UnfinishedRecordFoundByARequestIsTakenOver) {
  Driver d;
  d.store.records["g"] = Record(ApiOp::kSubmit, SagaBody("g", 2), GlobalStatus::kSubmitted,
                                {Succeeded(), StepState{}});
  d.RestartWithoutRecover();
  RequestId id = d.Submit(SagaBody("g", 2));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(id)));
  EXPECT_EQ(d.engine().stats().started, 0u) << "not created again";
  d.Answer(d.TakeOnly("action 02"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("g"), GlobalStatus::kSucceed);
}

}  // namespace
}  // namespace dtx::coord

namespace dtx::coord {
namespace {

std::string TccBranch(const std::string& gid, const std::string& id) {
  return json{{"gid", gid},
              {"trans_type", "tcc"},
              {"branch_id", id},
              {"data", "{\"b\":\"" + id + "\"}"},
              {"confirm", "http://svc/confirm" + id},
              {"cancel", "http://svc/cancel" + id}}
      .dump();
}

std::string Plain(const std::string& gid, const std::string& type) {
  return json{{"gid", gid}, {"trans_type", type}}.dump();
}

TEST(EngineTcc, SubmitConfirmsEveryRegisteredBranchWithItsDataThenSucceeds) {
  Driver d;
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Prepare(Plain("t", "tcc")))));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Register(TccBranch("t", "01")))));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Register(TccBranch("t", "02")))));
  EXPECT_TRUE(d.NoCalls()) << "nothing is called while prepared";
  EXPECT_EQ(d.State("t").branches.size(), 2u);
  d.Submit(Plain("t", "tcc"));
  auto calls = d.TakeCalls();
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& c : calls) {
    EXPECT_EQ(QueryParam(c, "op"), "confirm");
    EXPECT_EQ(QueryParam(c, "trans_type"), "tcc");
    const std::string id = QueryParam(c, "branch_id");
    EXPECT_EQ(c.url, "http://svc/confirm" + id);
    EXPECT_EQ(c.body, "{\"b\":\"" + id + "\"}");
    EXPECT_TRUE(c.post);
  }
  d.Answer(calls[0], CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kSubmitted);
  d.Answer(calls[1], CallOutcome::kFailure);  // a confirm must succeed: retried
  EXPECT_EQ(d.Status("t"), GlobalStatus::kSubmitted);
  EXPECT_TRUE(d.NoCalls());
  d.Tick(d.now + 60'000);
  auto retry = d.TakeOnly("confirm " + QueryParam(calls[1], "branch_id"));
  d.Answer(retry, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kSucceed);
}

TEST(EngineTcc, AbortCancelsEveryBranchAndNeverConfirms) {
  Driver d;
  d.Prepare(Plain("t", "tcc"));
  d.Register(TccBranch("t", "01"));
  d.Register(TccBranch("t", "02"));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Abort("t"))));
  EXPECT_EQ(d.Status("t"), GlobalStatus::kAborting);
  auto calls = d.TakeCalls();
  EXPECT_EQ(Sorted(Ops(calls)), (Strings{"cancel 01", "cancel 02"}));
  for (const auto& c : calls) EXPECT_EQ(c.url, "http://svc/cancel" + QueryParam(c, "branch_id"));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Submit(Plain("t", "tcc")))));
  for (const auto& c : calls) d.Answer(c, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kFailed);
}

TEST(EngineTcc, PreparedPastItsTimeoutIsAbortedAndCancelled) {
  Driver d;
  d.Prepare(Plain("t", "tcc"));
  d.Register(TccBranch("t", "01"));
  auto wake = d.engine().NextWakeup();
  ASSERT_TRUE(wake.has_value());
  EXPECT_EQ(*wake, d.now + TestConfig().prepared_timeout_ms);
  d.Tick(*wake - 1);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kPrepared);
  d.Tick(*wake);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kAborting);
  d.Answer(d.TakeOnly("cancel 01"), CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kFailed);
}

TEST(EngineTcc, RegisterBranchIsIdempotentRejectsConflictsAndLateRegistrations) {
  Driver d;
  EXPECT_EQ(d.ReplyTo(d.Register(TccBranch("t", "01"))).http_status, 404);
  d.Prepare(Plain("t", "tcc"));
  d.Register(TccBranch("t", "01"));
  EXPECT_TRUE(IsSuccessReply(d.ReplyTo(d.Register(TccBranch("t", "01")))));
  std::string other = json{
      {"gid", "t"},
      {"trans_type", "tcc"},
      {"branch_id", "01"},
      {"confirm", "http://svc/elsewhere"},
      {"cancel",
       "http://svc/x"}}.dump();
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Register(other))));
  EXPECT_EQ(d.State("t").branches.size(), 1u);
  d.Submit(Plain("t", "tcc"));
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Register(TccBranch("t", "02")))))
      << "no branch joins after the decision";
  EXPECT_EQ(d.State("t").branches.size(), 1u);
  std::string xa =
      json{{"gid", "t"}, {"trans_type", "xa"}, {"branch_id", "03"}, {"url", "http://svc/xa"}}
          .dump();
  EXPECT_TRUE(IsFailureReply(d.ReplyTo(d.Register(xa))));
}

TEST(EngineTcc, SubmitWithoutPrepareIsRejectedAndCreatesNothing) {
  Driver d;
  EXPECT_EQ(d.ReplyTo(d.Submit(Plain("t", "tcc"))).http_status, 400);
  EXPECT_FALSE(d.Status("t").has_value());
}

TEST(EngineTcc, ATransactionWithoutBranchesSucceedsOnSubmit) {
  Driver d;
  d.Prepare(Plain("t", "tcc"));
  d.Submit(Plain("t", "tcc"));
  EXPECT_EQ(d.Status("t"), GlobalStatus::kSucceed);
}

TEST(EngineTcc, RecoveryResumesConfirmsOfASubmittedTransaction) {
  Driver d;
  d.Prepare(Plain("t", "tcc"));
  d.Register(TccBranch("t", "01"));
  d.Register(TccBranch("t", "02"));
  d.Submit(Plain("t", "tcc"));
  auto calls = d.TakeCalls();
  d.Answer(calls[0], CallOutcome::kSuccess);
  d.Restart();
  d.Tick(d.now);
  auto again = d.TakeCalls();
  ASSERT_EQ(again.size(), 1u) << "only the unconfirmed branch is confirmed again";
  EXPECT_EQ(QueryParam(again[0], "branch_id"), QueryParam(calls[1], "branch_id"));
  EXPECT_EQ(QueryParam(again[0], "op"), "confirm");
  d.Answer(again[0], CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("t"), GlobalStatus::kSucceed);
}

TEST(EngineXa, SubmitCommitsAndAbortRollsBackThroughTheBranchUrl) {
  Driver d;
  auto branch = [](const std::string& gid) {
    return json{{"gid", gid}, {"trans_type", "xa"}, {"branch_id", "01"}, {"url", "http://db/xa"}}
        .dump();
  };
  d.Prepare(Plain("a", "xa"));
  d.Register(branch("a"));
  d.Submit(Plain("a", "xa"));
  auto commit = d.TakeOnly("commit 01");
  EXPECT_EQ(commit.url, "http://db/xa");
  EXPECT_EQ(QueryParam(commit, "trans_type"), "xa");
  d.Answer(commit, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("a"), GlobalStatus::kSucceed);

  d.Prepare(Plain("b", "xa"));
  d.Register(branch("b"));
  d.Abort("b");
  auto rollback = d.TakeOnly("rollback 01");
  EXPECT_EQ(rollback.url, "http://db/xa");
  d.Answer(rollback, CallOutcome::kSuccess);
  EXPECT_EQ(d.Status("b"), GlobalStatus::kFailed);
}

}  // namespace
}  // namespace dtx::coord
