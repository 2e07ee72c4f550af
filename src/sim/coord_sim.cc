#include "sim/coord_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "base/rand.h"
#include "coord/engine.h"
#include "coord/request.h"
#include "coord/txn.h"

namespace dtx::sim {
namespace {

using coord::ApiOp;
using coord::BranchCall;
using coord::BranchStatus;
using coord::CallId;
using coord::CallOutcome;
using coord::Engine;
using coord::EngineConfig;
using coord::GlobalStatus;
using coord::Ready;
using coord::Reply;
using coord::RequestId;
using coord::TransType;
using coord::TxnDef;
using coord::TxnRecord;
using coord::TxnWrite;

constexpr TimeMs kNever = std::numeric_limits<TimeMs>::max();
constexpr int kMaxClientAttempts = 60;
constexpr uint64_t kMaxEvents = 2'000'000;
constexpr size_t kMaxViolations = 64;
constexpr TimeMs kResetCronEveryMs = 2'000;
constexpr const char* kQueryPreparedUrl = "http://client.sim/query_prepared";

EngineConfig SimEngineConfig() {
  EngineConfig c;
  c.retry_interval_ms = 50;
  c.max_retry_interval_ms = 800;
  c.ongoing_interval_ms = 100;
  c.msg_timeout_ms = 500;
  c.prepared_timeout_ms = 2'500;
  c.request_timeout_ms = 200;
  c.wait_result_timeout_ms = 1'500;
  c.alert_after_failures = 4;
  c.retry_limit = 0;
  return c;
}

std::string_view OutcomeName(CallOutcome o) {
  switch (o) {
    case CallOutcome::kSuccess:
      return "SUCCESS";
    case CallOutcome::kFailure:
      return "FAILURE";
    case CallOutcome::kOngoing:
      return "ONGOING";
    case CallOutcome::kError:
      return "ERROR";
  }
  return "?";
}

bool SameDef(const TxnDef& a, const TxnDef& b) {
  return a.gid == b.gid && a.type == b.type && a.steps == b.steps && a.payloads == b.payloads &&
         a.query_prepared == b.query_prepared && a.custom_data == b.custom_data &&
         a.options == b.options && a.concurrent == b.concurrent && a.orders == b.orders &&
         a.create_time == b.create_time;
}

// The forward edges of the global status machine; durable writes may skip along them because
// the engine coalesces changes of one transaction within a batch.
bool Reachable(TransType type, GlobalStatus from, GlobalStatus to) {
  if (from == to) return true;
  auto next = [type](GlobalStatus s) -> std::vector<GlobalStatus> {
    switch (s) {
      case GlobalStatus::kPrepared:
        if (type == TransType::kMsg) return {GlobalStatus::kSubmitted, GlobalStatus::kFailed};
        if (type == TransType::kTcc || type == TransType::kXa) {
          return {GlobalStatus::kSubmitted, GlobalStatus::kAborting};
        }
        return {GlobalStatus::kSubmitted};
      case GlobalStatus::kSubmitted:
        if (type == TransType::kSaga) return {GlobalStatus::kSucceed, GlobalStatus::kAborting};
        return {GlobalStatus::kSucceed};
      case GlobalStatus::kAborting:
        return {GlobalStatus::kFailed};
      case GlobalStatus::kSucceed:
      case GlobalStatus::kFailed:
        return {};
    }
    return {};
  };
  // The graph is acyclic with five nodes, so three hops reach everything reachable.
  std::vector<GlobalStatus> frontier = {from};
  for (int hop = 0; hop < 4 && !frontier.empty(); ++hop) {
    std::vector<GlobalStatus> out;
    for (GlobalStatus s : frontier) {
      for (GlobalStatus n : next(s)) {
        if (n == to) return true;
        out.push_back(n);
      }
    }
    frontier = std::move(out);
  }
  return false;
}

enum class LocalTx { kUndecided, kCommitted, kRolledBack };

// What the participants' barrier tables and effect ledgers hold for one step.
struct StepLedger {
  int action_applied = 0;        // times the action's business effect was applied
  int compensate_applied = 0;    // times the compensation's effect was applied
  bool compensate_seen = false;  // the barrier recorded a compensate (empty or not)
  int ongoing_action = -1;       // ONGOING answers still to give; -1 = not drawn yet
  int ongoing_compensate = -1;
};

bool RegistersBranches(TransType t) { return t == TransType::kTcc || t == TransType::kXa; }

enum class TryState { kNotTried, kApplied, kFailed, kRefused };

// One TCC/XA branch: what the client registers and what the participant's barrier and ledger
// hold for it.
struct BranchSpec {
  std::string id;
  std::string data;
  std::string confirm;  // xa: the branch URL
  std::string cancel;   // xa: empty
  bool try_fails = false;
  bool slow_try = false;  // the try reaches the participant late, often after the timeout
  bool late = false;      // registered only after the decision, to check it is refused
  bool register_acked = false;
  TryState try_state = TryState::kNotTried;
  int confirm_applied = 0;
  int cancel_applied = 0;
  bool confirm_seen = false;  // the barrier recorded a confirm/commit
  bool cancel_seen = false;   // the barrier recorded a cancel/rollback (empty or not)
  int ongoing_confirm = -1;
  int ongoing_cancel = -1;
};

struct StepSpec {
  bool fails = false;  // the action answers FAILURE (business failure), consistently
  bool has_compensate = true;
  std::string payload;
};

// One transaction as the client made it, plus the client's and participants' view of it.
struct TxnSpec {
  std::string gid;
  TransType type = TransType::kSaga;
  std::vector<StepSpec> steps;
  bool concurrent = false;
  std::map<int, std::vector<int>> orders;
  bool wait_result = false;
  std::map<std::string, std::string> headers;
  std::string body;
  TimeMs start = 0;

  // Client state.
  bool acked = false;         // a SUCCESS reply to prepare (msg) or submit (saga)
  bool submit_acked = false;  // msg: SUCCESS reply to submit
  bool client_done = false;   // the client's workflow is over
  bool will_commit = false;   // msg: the local transaction tries to commit
  bool dies_before_submit = false;
  LocalTx local = LocalTx::kUndecided;
  bool checkback_success = false;

  // TCC/XA client state.
  std::vector<BranchSpec> branches;  // the late branch, if any, is last
  size_t next_branch = 0;            // the branch the client registers/tries next
  int dies_at = -1;                  // the client dies before registering this branch (n: submit)
  bool abort_acked = false;

  std::vector<StepLedger> ledger;
};

struct PendingRequest {
  int txn = -1;  // -1: an operator's resetNextCronTime
  ApiOp op = ApiOp::kSubmit;
  int attempt = 1;
  TimeMs sent = 0;
  uint64_t incarnation = 0;
  bool answered = false;
  bool lost = false;  // the engine that took it crashed before answering
  int branch = -1;    // registerBranch: index into TxnSpec::branches
};

// The outcome a participant sends back.
struct HttpAnswer {
  int status = 200;
  std::string body;
};

HttpAnswer AnswerSuccess() { return {200, R"({"dtm_result":"SUCCESS"})"}; }
HttpAnswer AnswerFailure() { return {409, R"({"dtm_result":"FAILURE"})"}; }
HttpAnswer AnswerOngoing() { return {425, R"({"dtm_result":"ONGOING"})"}; }
HttpAnswer AnswerServerError() { return {500, "internal server error"}; }

enum class NetFault { kNone, kServerError, kLostReply, kLateReply, kDuplicateReply, kSlowRequest };

class Disk final : public coord::TxnReader {
 public:
  Result<std::optional<TxnRecord>> Load(const std::string& gid) override {
    auto it = records_.find(gid);
    if (it == records_.end()) return std::optional<TxnRecord>();
    return std::optional<TxnRecord>(it->second);
  }
  const TxnRecord* Find(const std::string& gid) const {
    auto it = records_.find(gid);
    return it == records_.end() ? nullptr : &it->second;
  }
  std::map<std::string, TxnRecord>& records() { return records_; }

 private:
  std::map<std::string, TxnRecord> records_;
};

class CoordSim {
 public:
  explicit CoordSim(const SimOptions& o)
      : opts_(o),
        rand_(o.seed),
        branch_rand_(o.seed * 0x9E3779B97F4A7C15ULL + 0x7CC),
        config_(SimEngineConfig()),
        fault_end_(std::max<TimeMs>(o.fault_phase_ms, 10)) {
    report_.seed = o.seed;
  }

  SimReport Run() {
    GenerateTxns();
    ScheduleCrashes();
    Restart();
    Schedule(fault_end_, [this] { ResetCron(); });
    Loop();
    FinalChecks();
    report_.stats.end_time_ms = now_;
    for (const auto& [gid, rec] : disk_.records()) {
      const bool branched = RegistersBranches(rec.def.type);
      if (rec.state.status == GlobalStatus::kSucceed) {
        ++report_.stats.succeeded;
        if (branched) ++report_.stats.branch_txns_succeeded;
      } else if (rec.state.status == GlobalStatus::kFailed) {
        ++report_.stats.failed;
        if (branched) ++report_.stats.branch_txns_failed;
      } else {
        ++report_.stats.unfinished;
      }
    }
    return std::move(report_);
  }

 private:
  struct Event {
    TimeMs t;
    uint64_t seq;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.t != b.t ? a.t > b.t : a.seq > b.seq;
    }
  };

  // ---- infrastructure ----

  void Schedule(TimeMs t, std::function<void()> fn) {
    queue_.push_back(Event{std::max(t, now_), next_seq_++, std::move(fn)});
    std::push_heap(queue_.begin(), queue_.end(), Later());
  }

  template <typename... Args>
  void Trace(fmt::format_string<Args...> f, Args&&... args) {
    if (!opts_.trace) return;
    report_.trace.push_back(fmt::format("t={}ms ", now_) +
                            fmt::format(f, std::forward<Args>(args)...));
  }

  void Violation(const std::string& gid, const std::string& what) {
    std::string v = fmt::format("{}: {} (t={}ms)", gid, what, now_);
    std::string key = gid + ": " + what;
    if (!violation_keys_.insert(key).second) return;
    Trace("VIOLATION {}", v);
    if (report_.violations.size() < kMaxViolations) report_.violations.push_back(std::move(v));
  }

  bool FaultsOn() const { return opts_.faults && now_ < fault_end_; }
  bool CrashesOn() const {
    return opts_.crashes && now_ < fault_end_ && report_.stats.crashes < opts_.max_crashes;
  }
  std::string EngineName() const { return fmt::format("engine#{}", incarnation_); }

  TxnSpec* Spec(const std::string& gid) {
    auto it = by_gid_.find(gid);
    return it == by_gid_.end() ? nullptr : &txns_[it->second];
  }

  void Loop() {
    while (!queue_.empty()) {
      std::pop_heap(queue_.begin(), queue_.end(), Later());
      Event ev = std::move(queue_.back());
      queue_.pop_back();
      if (ev.t > opts_.deadline_ms) {
        now_ = opts_.deadline_ms;
        Violation("run", "virtual deadline reached before every transaction finished");
        return;
      }
      now_ = ev.t;
      ev.fn();
      AfterEvent();
      if (++report_.stats.events > kMaxEvents) {
        Violation("run", fmt::format("event budget of {} exhausted (livelock?)", kMaxEvents));
        return;
      }
      if (Settled()) return;
    }
  }

  bool Settled() const {
    return now_ >= fault_end_ && clients_pending_ == 0 && unfinished_durable_ == 0 &&
           requests_on_wire_ == 0 && engine_ != nullptr && !ready_outstanding_;
  }

  // ---- workload ----

  void GenerateTxns() {
    txns_.reserve(static_cast<size_t>(std::max(opts_.txns, 0)));
    int sagas = 0;
    int msgs = 0;
    for (int i = 0; i < opts_.txns; ++i) {
      TxnSpec s;
      s.type = rand_.Chance(0.6) ? TransType::kSaga : TransType::kMsg;
      s.gid = s.type == TransType::kSaga ? fmt::format("saga-{}", ++sagas)
                                         : fmt::format("msg-{}", ++msgs);
      s.start = rand_.Range(0, fault_end_ * 6 / 10);
      if (s.type == TransType::kSaga) {
        MakeSaga(s);
      } else {
        MakeMsg(s);
      }
      s.ledger.resize(s.steps.size());
      by_gid_[s.gid] = txns_.size();
      txns_.push_back(std::move(s));
      ++clients_pending_;
      size_t idx = txns_.size() - 1;
      Schedule(txns_[idx].start, [this, idx] { StartClient(idx); });
    }
    report_.stats.sagas = sagas;
    report_.stats.msgs = msgs;
    // Drawn from their own stream after the saga/msg workload, which therefore stays the same.
    for (int i = 0; i < opts_.branch_txns; ++i) {
      TxnSpec s;
      s.type = branch_rand_.Chance(0.5) ? TransType::kTcc : TransType::kXa;
      s.gid = s.type == TransType::kTcc ? fmt::format("tcc-{}", ++report_.stats.tccs)
                                        : fmt::format("xa-{}", ++report_.stats.xas);
      s.start = branch_rand_.Range(0, fault_end_ * 6 / 10);
      MakeBranchTxn(s);
      by_gid_[s.gid] = txns_.size();
      txns_.push_back(std::move(s));
      ++clients_pending_;
      size_t idx = txns_.size() - 1;
      Schedule(txns_[idx].start, [this, idx] { StartClient(idx); });
    }
  }

  void MakeBranchTxn(TxnSpec& s) {
    Rand& r = branch_rand_;
    const bool tcc = s.type == TransType::kTcc;
    size_t n = static_cast<size_t>(r.Range(1, 4));
    const bool late = r.Chance(0.15);
    for (size_t i = 0; i < n + (late ? 1 : 0); ++i) {
      BranchSpec b;
      b.id = coord::BranchId(i);
      b.data = fmt::format(R"({{"gid":"{}","branch":{},"amount":{}}})", s.gid, i, r.Range(1, 1000));
      if (tcc) {
        b.confirm = fmt::format("http://svc{}.sim/tcc/confirm", i % 3);
        b.cancel = fmt::format("http://svc{}.sim/tcc/cancel", i % 3);
      } else {
        b.confirm = fmt::format("http://svc{}.sim/xa", i % 3);
      }
      b.try_fails = r.Chance(0.08);
      b.slow_try = r.Chance(0.08);
      b.late = i == n;
      s.branches.push_back(std::move(b));
    }
    if (r.Chance(0.15)) s.dies_at = static_cast<int>(r.Range(0, static_cast<int64_t>(n)));
    nlohmann::json body = {{"gid", s.gid}, {"trans_type", tcc ? "tcc" : "xa"}};
    if (r.Chance(0.1)) body["timeout_to_fail"] = r.Range(1, 3);
    if (r.Chance(0.1)) body["request_timeout"] = 1;
    if (r.Chance(0.1)) body["retry_limit"] = r.Range(2, 5);
    if (r.Chance(0.08)) body["retry_interval"] = 1;
    if (r.Chance(0.15)) {
      s.headers["x-sim-tenant"] = fmt::format("tenant-{}", r.Range(1, 9));
      body["branch_headers"] = s.headers;
    }
    s.body = body.dump();
  }

  // The body of `op` for s; `branch` indexes s.branches for registerBranch.
  std::string RequestBody(const TxnSpec& s, ApiOp op, int branch) const {
    if (!RegistersBranches(s.type) || op == ApiOp::kPrepare) return s.body;
    nlohmann::json body = {{"gid", s.gid}, {"trans_type", coord::TransTypeName(s.type)}};
    if (op == ApiOp::kRegisterBranch && branch >= 0) {
      const BranchSpec& b = s.branches[static_cast<size_t>(branch)];
      body["branch_id"] = b.id;
      body["data"] = b.data;
      if (s.type == TransType::kTcc) {
        body["confirm"] = b.confirm;
        body["cancel"] = b.cancel;
      } else {
        body["url"] = b.confirm;
      }
    }
    return body.dump();
  }

  void MakeSaga(TxnSpec& s) {
    nlohmann::json body;
    size_t n = static_cast<size_t>(rand_.Range(1, 5));
    s.concurrent = rand_.Chance(0.4);
    nlohmann::json steps = nlohmann::json::array();
    nlohmann::json payloads = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
      StepSpec st;
      st.fails = rand_.Chance(0.1);
      st.has_compensate = rand_.Chance(0.93);
      st.payload =
          fmt::format(R"({{"gid":"{}","step":{},"amount":{}}})", s.gid, i, rand_.Range(1, 1000));
      nlohmann::json step = {{"action", fmt::format("http://svc{}.sim/saga/action", i % 3)}};
      if (st.has_compensate) {
        step["compensate"] = fmt::format("http://svc{}.sim/saga/compensate", i % 3);
      }
      steps.push_back(std::move(step));
      payloads.push_back(st.payload);
      s.steps.push_back(std::move(st));
    }
    body["gid"] = s.gid;
    body["trans_type"] = "saga";
    body["steps"] = std::move(steps);
    body["payloads"] = std::move(payloads);
    if (s.concurrent) {
      nlohmann::json orders = nlohmann::json::object();
      for (size_t i = 1; i < n; ++i) {
        for (size_t j = 0; j < i; ++j) {
          if (!rand_.Chance(0.3)) continue;
          s.orders[static_cast<int>(i)].push_back(static_cast<int>(j));
          orders[std::to_string(i)].push_back(j);
        }
      }
      nlohmann::json custom = {{"concurrent", true}, {"orders", std::move(orders)}};
      body["custom_data"] = custom.dump();
    }
    s.wait_result = rand_.Chance(0.3);
    if (s.wait_result) body["wait_result"] = true;
    if (rand_.Chance(0.15)) body["timeout_to_fail"] = rand_.Range(1, 3);
    if (rand_.Chance(0.1)) body["retry_limit"] = rand_.Range(2, 5);
    if (rand_.Chance(0.08)) body["retry_interval"] = 1;
    if (rand_.Chance(0.1)) body["request_timeout"] = 1;
    if (rand_.Chance(0.15)) {
      s.headers["x-sim-tenant"] = fmt::format("tenant-{}", rand_.Range(1, 9));
      body["branch_headers"] = s.headers;
    }
    s.body = body.dump();
  }

  void MakeMsg(TxnSpec& s) {
    nlohmann::json body;
    size_t n = static_cast<size_t>(rand_.Range(1, 4));
    nlohmann::json steps = nlohmann::json::array();
    nlohmann::json payloads = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
      StepSpec st;
      st.has_compensate = false;
      st.payload =
          fmt::format(R"({{"gid":"{}","step":{},"amount":{}}})", s.gid, i, rand_.Range(1, 1000));
      steps.push_back({{"action", fmt::format("http://svc{}.sim/msg/action", i % 3)}});
      payloads.push_back(st.payload);
      s.steps.push_back(std::move(st));
    }
    body["gid"] = s.gid;
    body["trans_type"] = "msg";
    body["steps"] = std::move(steps);
    body["payloads"] = std::move(payloads);
    body["query_prepared"] = kQueryPreparedUrl;
    if (rand_.Chance(0.1)) body["request_timeout"] = 1;
    if (rand_.Chance(0.1)) {
      s.headers["x-sim-tenant"] = fmt::format("tenant-{}", rand_.Range(1, 9));
      body["branch_headers"] = s.headers;
    }
    s.will_commit = rand_.Chance(0.7);
    s.dies_before_submit = rand_.Chance(0.2);
    s.body = body.dump();
  }

  // ---- clients ----

  void StartClient(size_t idx) {
    TxnSpec& s = txns_[idx];
    if (RegistersBranches(s.type)) {
      Trace("client {} starts: {} branches{}{}", s.gid,
            s.branches.size() - (!s.branches.empty() && s.branches.back().late ? 1 : 0),
            s.dies_at >= 0 ? fmt::format(", dies after {}", s.dies_at) : "",
            !s.branches.empty() && s.branches.back().late ? ", late register" : "");
      Send(static_cast<int>(idx), ApiOp::kPrepare, 1);
      return;
    }
    Trace("client {} starts: {} steps{}{}{}", s.gid, s.steps.size(),
          s.concurrent ? ", concurrent" : "", s.wait_result ? ", wait_result" : "",
          s.type == TransType::kMsg ? (s.will_commit ? ", will commit" : ", will not commit") : "");
    Send(static_cast<int>(idx), s.type == TransType::kSaga ? ApiOp::kSubmit : ApiOp::kPrepare, 1);
  }

  // The TCC/XA client's next move after prepare or a branch's try.
  void NextBranch(size_t idx) {
    TxnSpec& s = txns_[idx];
    const size_t n = s.branches.size() - (s.branches.empty() || !s.branches.back().late ? 0 : 1);
    if (s.dies_at >= 0 && s.next_branch == static_cast<size_t>(s.dies_at)) {
      Trace("client {} dies after {} of {} branches, before submit", s.gid, s.next_branch, n);
      ClientDone(s);
      return;
    }
    if (s.next_branch < n) {
      Send(static_cast<int>(idx), ApiOp::kRegisterBranch, 1, static_cast<int>(s.next_branch));
      return;
    }
    Send(static_cast<int>(idx), ApiOp::kSubmit, 1);
  }

  // The branch's first phase, run by the client against the participant, which guards it with
  // the barrier: a try after the branch's cancel is refused (hanging), a repeated try absorbed.
  void Try(size_t idx, size_t branch) {
    TxnSpec& s = txns_[idx];
    BranchSpec& b = s.branches[branch];
    if (b.cancel_seen && !opts_.break_no_barrier) {
      b.try_state = TryState::kRefused;
      Trace("participant {} {}/try refused (hanging: cancel ran first)", s.gid, b.id);
    } else if (b.try_fails) {
      b.try_state = TryState::kFailed;
      Trace("participant {} {}/try FAILURE (business)", s.gid, b.id);
    } else {
      if (disk_.Find(s.gid) == nullptr) {
        Violation(s.gid,
                  fmt::format("branch {} try applied before the transaction was durable", b.id));
      }
      b.try_state = TryState::kApplied;
      Trace("participant {} {}/try applied (reserved)", s.gid, b.id);
    }
    if (b.try_state != TryState::kApplied) {
      Trace("client {} aborts: branch {} try did not apply", s.gid, b.id);
      Send(static_cast<int>(idx), ApiOp::kAbort, 1);
      return;
    }
    ++s.next_branch;
    Schedule(now_ + rand_.Range(0, 200), [this, idx] { NextBranch(idx); });
  }

  // After submit or abort was answered: maybe register one more branch, which must be refused.
  void AfterDecision(size_t idx) {
    TxnSpec& s = txns_[idx];
    if (!s.branches.empty() && s.branches.back().late && !s.branches.back().register_acked &&
        s.next_branch != s.branches.size()) {
      s.next_branch = s.branches.size();
      Send(static_cast<int>(idx), ApiOp::kRegisterBranch, 1,
           static_cast<int>(s.branches.size() - 1));
      return;
    }
    ClientDone(s);
  }

  void OnBranchTxnReply(const PendingRequest& req, CallOutcome outcome) {
    const size_t idx = static_cast<size_t>(req.txn);
    TxnSpec& s = txns_[idx];
    const bool ok = outcome == CallOutcome::kSuccess;
    switch (req.op) {
      case ApiOp::kPrepare:
        if (!ok) {
          ClientDone(s);
          return;
        }
        s.acked = true;
        Schedule(now_ + rand_.Range(0, 200), [this, idx] { NextBranch(idx); });
        return;
      case ApiOp::kRegisterBranch: {
        BranchSpec& b = s.branches[static_cast<size_t>(req.branch)];
        if (b.late) {
          if (ok) Violation(s.gid, fmt::format("branch {} registered after the decision", b.id));
          ClientDone(s);
          return;
        }
        if (!ok) {
          // The transaction was decided meanwhile (prepared timeout): nothing left to do.
          ClientDone(s);
          return;
        }
        b.register_acked = true;
        ++report_.stats.branches_registered;
        const size_t branch = static_cast<size_t>(req.branch);
        const TimeMs delay = b.slow_try ? rand_.Range(1'000, 4'000) : rand_.Range(0, 100);
        Schedule(now_ + delay, [this, idx, branch] { Try(idx, branch); });
        return;
      }
      case ApiOp::kSubmit:
        if (ok) s.submit_acked = true;
        AfterDecision(idx);
        return;
      case ApiOp::kAbort:
        if (ok) {
          s.abort_acked = true;
        } else {
          Violation(s.gid, fmt::format("abort of a prepared {} was refused",
                                       coord::TransTypeName(s.type)));
        }
        AfterDecision(idx);
        return;
      case ApiOp::kForceStop:
        ClientDone(s);
        return;
    }
  }

  void ClientDone(TxnSpec& s) {
    if (s.client_done) return;
    s.client_done = true;
    --clients_pending_;
  }

  void Send(int idx, ApiOp op, int attempt, int branch = -1) {
    ++report_.stats.client_requests;
    TimeMs delay = rand_.Range(0, 5);
    Schedule(now_ + delay,
             [this, idx, op, attempt, branch] { ArriveAtEngine(idx, op, attempt, branch); });
  }

  void ArriveAtEngine(int idx, ApiOp op, int attempt, int branch) {
    TxnSpec& s = txns_[static_cast<size_t>(idx)];
    if (!engine_) {
      Trace("client {} {} refused: coordinator down", s.gid, coord::ApiOpName(op));
      RetryLater(idx, op, attempt, branch);
      return;
    }
    auto parsed = coord::ParseTxnRequest(op, RequestBody(s, op, branch), config_.limits);
    if (!parsed.ok()) {
      Violation(s.gid, "ParseTxnRequest rejected a valid body: " + parsed.status().ToString());
      ClientDone(s);
      return;
    }
    RequestId id = next_request_id_++;
    requests_[id] = PendingRequest{idx, op, attempt, now_, incarnation_, false, false, branch};
    Trace("{} request {} {} {}{} (attempt {})", EngineName(), id, coord::ApiOpName(op), s.gid,
          branch >= 0 ? " branch " + s.branches[static_cast<size_t>(branch)].id : "", attempt);
    engine_->HandleRequest(id, std::move(parsed).value(), now_);
  }

  void RetryLater(int idx, ApiOp op, int attempt, int branch = -1) {
    TxnSpec& s = txns_[static_cast<size_t>(idx)];
    if (attempt >= kMaxClientAttempts) {
      Trace("client {} gives up {} after {} attempts", s.gid, coord::ApiOpName(op), attempt);
      ClientDone(s);
      return;
    }
    Schedule(now_ + rand_.Range(30, 300),
             [this, idx, op, attempt, branch] { Send(idx, op, attempt + 1, branch); });
  }

  void OnClientReply(RequestId id, const Reply& reply) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return;
    const PendingRequest req = it->second;
    if (req.txn < 0) return;
    TxnSpec& s = txns_[static_cast<size_t>(req.txn)];
    CallOutcome outcome = coord::ClassifyResponse(reply.http_status, reply.body);
    Trace("client {} {} reply {} {}", s.gid, coord::ApiOpName(req.op), reply.http_status,
          OutcomeName(outcome));
    const bool temporary = outcome == CallOutcome::kError && reply.http_status >= 500;
    if (temporary) {
      RetryLater(req.txn, req.op, req.attempt, req.branch);
      return;
    }
    if (RegistersBranches(s.type)) {
      // Register and submit may meet a transaction the prepared timeout already aborted, and a
      // late branch must be refused; prepare and abort of a fresh transaction cannot fail.
      if (req.attempt == 1 && (req.op == ApiOp::kPrepare || req.op == ApiOp::kAbort) &&
          outcome != CallOutcome::kSuccess) {
        Violation(s.gid, fmt::format("{} of a valid request was rejected with HTTP {}: {}",
                                     coord::ApiOpName(req.op), reply.http_status, reply.body));
      }
      OnBranchTxnReply(req, outcome);
      return;
    }
    // A first attempt cannot conflict with anything the client did before; only a saga's
    // wait_result submit may legitimately answer FAILURE (the saga failed).
    const bool wait_failure = s.type == TransType::kSaga && s.wait_result &&
                              req.op == ApiOp::kSubmit && outcome == CallOutcome::kFailure;
    if (req.attempt == 1 &&
        (outcome == CallOutcome::kError || (outcome == CallOutcome::kFailure && !wait_failure))) {
      Violation(s.gid, fmt::format("{} of a valid request was rejected with HTTP {}: {}",
                                   coord::ApiOpName(req.op), reply.http_status, reply.body));
    }
    switch (req.op) {
      case ApiOp::kSubmit:
        if (s.type == TransType::kSaga) {
          // With wait_result, FAILURE and ONGOING also mean the saga exists.
          if (outcome == CallOutcome::kSuccess ||
              (s.wait_result && outcome != CallOutcome::kError)) {
            s.acked = true;
          }
        } else if (outcome == CallOutcome::kSuccess) {
          s.submit_acked = true;
        }
        ClientDone(s);
        return;
      case ApiOp::kPrepare:
        if (outcome != CallOutcome::kSuccess) {
          ClientDone(s);
          return;
        }
        s.acked = true;
        {
          size_t idx = static_cast<size_t>(req.txn);
          Schedule(now_ + rand_.Range(0, 900), [this, idx] { LocalTransaction(idx); });
        }
        return;
      default:
        ClientDone(s);
        return;
    }
  }

  // The msg client's local transaction, guarded by the barrier's check-back rule.
  void LocalTransaction(size_t idx) {
    TxnSpec& s = txns_[idx];
    if (s.local == LocalTx::kRolledBack) {
      Trace("client {} local commit refused: check-back answered FAILURE first", s.gid);
      ClientDone(s);
      return;
    }
    if (!s.will_commit) {
      s.local = LocalTx::kRolledBack;
      Trace("client {} local transaction rolls back", s.gid);
      ClientDone(s);
      return;
    }
    s.local = LocalTx::kCommitted;
    if (s.dies_before_submit) {
      Trace("client {} local transaction commits; client dies before submit", s.gid);
      ClientDone(s);
      return;
    }
    Trace("client {} local transaction commits", s.gid);
    Send(static_cast<int>(idx), ApiOp::kSubmit, 1);
  }

  void ResetCron() {
    if (Settled()) return;
    if (engine_) {
      RequestId id = next_request_id_++;
      requests_[id] = PendingRequest{-1, ApiOp::kSubmit, 1, now_, incarnation_, false, false};
      Trace("{} request {} resetNextCronTime", EngineName(), id);
      engine_->HandleResetCronTime(id, 0, 1'000, now_);
    }
    Schedule(now_ + kResetCronEveryMs, [this] { ResetCron(); });
  }

  // ---- the coordinator ----

  void AfterEvent() {
    if (!engine_) return;
    engine_->Tick(now_);
    Pump();
    ScheduleWakeup();
  }

  void ScheduleWakeup() {
    auto next = engine_->NextWakeup();
    if (!next) return;
    TimeMs t = std::max(*next, now_ + 1);
    if (wakeup_at_ != kNever && wakeup_at_ <= t) return;
    wakeup_at_ = t;
    Schedule(t, [this, t] {
      if (wakeup_at_ == t) wakeup_at_ = kNever;
    });
  }

  void Pump() {
    if (ready_outstanding_ || !engine_->HasReady()) return;
    auto ready = std::make_shared<Ready>(engine_->TakeReady());
    ready_outstanding_ = true;
    TimeMs delay = rand_.Range(1, 8);
    Trace("{} ready: {} writes, {} calls, {} replies (durable in {}ms)", EngineName(),
          ready->writes.size(), ready->calls.size(), ready->replies.size(), delay);
    if (opts_.break_persist_before_send) Dispatch(*ready);
    if (opts_.break_register_before_persist) {
      auto& replies = ready->replies;
      auto early = std::stable_partition(replies.begin(), replies.end(), [this](const Reply& r) {
        auto it = requests_.find(r.request);
        return it == requests_.end() || it->second.op != ApiOp::kRegisterBranch;
      });
      for (auto it = early; it != replies.end(); ++it) SendReply(*it);
      replies.erase(early, replies.end());
    }
    uint64_t inc = incarnation_;
    Schedule(now_ + delay, [this, inc, ready] { OnPersisted(inc, *ready); });
    if (CrashesOn() && rand_.Chance(0.015)) {
      Schedule(now_ + rand_.Range(0, delay - 1), [this, inc] {
        if (inc == incarnation_ && engine_) Crash("while a batch was being persisted");
      });
    }
  }

  void OnPersisted(uint64_t inc, const Ready& ready) {
    if (inc != incarnation_ || !engine_) return;
    ApplyWrites(ready.writes);
    ++report_.stats.batches;
    if (CrashesOn() && rand_.Chance(0.01)) {
      Crash("after the batch became durable, before its calls and replies left");
      return;
    }
    if (!opts_.break_persist_before_send) Dispatch(ready);
    engine_->Advance();
    ready_outstanding_ = false;
  }

  void ScheduleCrashes() {
    if (!opts_.crashes) return;
    int n = static_cast<int>(rand_.Range(0, std::max(opts_.max_crashes / 2, 0)));
    for (int i = 0; i < n; ++i) {
      Schedule(rand_.Range(1, fault_end_ - 1), [this] {
        if (engine_ && CrashesOn()) Crash("at a random moment");
      });
    }
  }

  void Crash(const char* when) {
    ++report_.stats.crashes;
    Trace("CRASH {} {}", EngineName(), when);
    engine_.reset();
    ++incarnation_;
    ready_outstanding_ = false;
    wakeup_at_ = kNever;
    for (auto& [id, req] : requests_) {
      if (req.answered || req.lost) continue;
      req.lost = true;
      if (req.txn < 0) continue;
      // The client sees its connection reset and resubmits the same body.
      RetryLater(req.txn, req.op, req.attempt, req.branch);
    }
    Schedule(now_ + rand_.Range(10, 600), [this] { Restart(); });
  }

  void Restart() {
    uint64_t seed = rand_.Next();
    engine_ = std::make_unique<Engine>(config_, disk_, seed);
    std::vector<TxnRecord> unfinished;
    for (const auto& [gid, rec] : disk_.records()) {
      if (!coord::IsFinal(rec.state.status)) unfinished.push_back(rec);
    }
    Trace("{} starts, recovering {} unfinished transactions", EngineName(), unfinished.size());
    engine_->Recover(std::move(unfinished), now_);
  }

  // ---- the disk ----

  void ApplyWrites(const std::vector<TxnWrite>& writes) {
    for (const TxnWrite& w : writes) {
      if (!w.def) {
        Violation("run", "a TxnWrite without def: the write does not say which transaction");
        continue;
      }
      const std::string& gid = w.def->gid;
      if (opts_.break_drop_writes && rand_.Chance(0.05)) {
        Trace("disk DROPS the write of {} ({})", gid, coord::GlobalStatusName(w.state.status));
        continue;
      }
      auto& records = disk_.records();
      auto it = records.find(gid);
      if (it == records.end()) {
        if (!w.create) {
          Violation(gid, "state write for a transaction that was never created");
        }
        CheckCreatedDef(*w.def, w.state);
        if (!Reachable(w.def->type, GlobalStatus::kPrepared, w.state.status) ||
            (w.def->type == TransType::kSaga && w.state.status == GlobalStatus::kPrepared)) {
          Violation(gid,
                    fmt::format("created with status {}", coord::GlobalStatusName(w.state.status)));
        }
        if (!coord::IsFinal(w.state.status)) ++unfinished_durable_;
        Trace("disk {} created: {}", gid, coord::GlobalStatusName(w.state.status));
        records.emplace(gid, TxnRecord{*w.def, w.state});
        continue;
      }
      TxnRecord& rec = it->second;
      if (!SameDef(rec.def, *w.def)) Violation(gid, "the durable def changed after creation");
      CheckTransition(rec, w.state);
      if (rec.state.status != w.state.status) {
        Trace("disk {} {} -> {}", gid, coord::GlobalStatusName(rec.state.status),
              coord::GlobalStatusName(w.state.status));
      }
      if (!coord::IsFinal(rec.state.status) && coord::IsFinal(w.state.status)) {
        --unfinished_durable_;
      }
      if (coord::IsFinal(rec.state.status) && !coord::IsFinal(w.state.status)) {
        ++unfinished_durable_;
      }
      rec.state = w.state;
    }
  }

  void CheckCreatedDef(const TxnDef& def, const coord::TxnState& state) {
    TxnSpec* s = Spec(def.gid);
    if (s == nullptr) {
      Violation(def.gid, "a transaction no client created was persisted");
      return;
    }
    if (def.type != s->type || def.steps.size() != s->steps.size() ||
        def.payloads.size() != s->steps.size()) {
      Violation(def.gid, "the persisted def differs from the client's request");
      return;
    }
    for (size_t i = 0; i < s->steps.size(); ++i) {
      if (def.payloads[i] != s->steps[i].payload) {
        Violation(def.gid, "a persisted payload differs from the client's request");
      }
    }
    if (def.concurrent != s->concurrent || def.orders != s->orders) {
      Violation(def.gid, "the persisted saga orders differ from the client's custom_data");
    }
    if (state.steps.size() != def.steps.size()) {
      Violation(def.gid, "the persisted state has a different number of steps than the def");
    }
    if (!state.branches.empty()) {
      Violation(def.gid, "created with registered branches");
    }
  }

  void CheckTransition(const TxnRecord& rec, const coord::TxnState& next) {
    const std::string& gid = rec.def.gid;
    if (!Reachable(rec.def.type, rec.state.status, next.status)) {
      Violation(gid, fmt::format("durable status went {} -> {}",
                                 coord::GlobalStatusName(rec.state.status),
                                 coord::GlobalStatusName(next.status)));
    }
    if (next.steps.size() != rec.state.steps.size()) {
      Violation(gid, "the number of step states changed");
      return;
    }
    CheckBranchTransition(rec, next);
    for (size_t i = 0; i < next.steps.size(); ++i) {
      const auto& before = rec.state.steps[i];
      const auto& after = next.steps[i];
      if (before.action != BranchStatus::kPrepared && after.action != before.action) {
        Violation(gid, fmt::format("step {} action result changed {} -> {}", coord::BranchId(i),
                                   coord::BranchStatusName(before.action),
                                   coord::BranchStatusName(after.action)));
      }
      if (before.compensate != BranchStatus::kPrepared && after.compensate != before.compensate) {
        Violation(gid, fmt::format("step {} compensate result changed {} -> {}", coord::BranchId(i),
                                   coord::BranchStatusName(before.compensate),
                                   coord::BranchStatusName(after.compensate)));
      }
    }
  }

  // Invariant 11 on the disk: durable branches are append-only, and appends only while prepared.
  void CheckBranchTransition(const TxnRecord& rec, const coord::TxnState& next) {
    const std::string& gid = rec.def.gid;
    const auto& before = rec.state.branches;
    const auto& after = next.branches;
    if (after.size() < before.size()) {
      Violation(gid,
                fmt::format("durable branches shrank from {} to {}", before.size(), after.size()));
      return;
    }
    for (size_t i = 0; i < before.size(); ++i) {
      const auto& b = before[i];
      const auto& a = after[i];
      if (a.branch_id != b.branch_id || a.data != b.data || a.confirm != b.confirm ||
          a.cancel != b.cancel || a.register_time != b.register_time) {
        Violation(gid, fmt::format("durable branch {} changed", b.branch_id));
      }
      if (b.status != BranchStatus::kPrepared && a.status != b.status) {
        Violation(
            gid, fmt::format("branch {} result changed {} -> {}", b.branch_id,
                             coord::BranchStatusName(b.status), coord::BranchStatusName(a.status)));
      }
    }
    if (after.size() > before.size() && rec.state.status != GlobalStatus::kPrepared) {
      Violation(gid, fmt::format("branch {} registered while the durable status was {}",
                                 after[before.size()].branch_id,
                                 coord::GlobalStatusName(rec.state.status)));
    }
    for (const auto& a : after) {
      if (a.status != BranchStatus::kPrepared && next.status == GlobalStatus::kPrepared) {
        Violation(gid,
                  fmt::format("branch {} finished while the transaction is prepared", a.branch_id));
      }
    }
  }

  // ---- dispatching a durable Ready ----

  void Dispatch(const Ready& ready) {
    for (const auto& alert : ready.alerts) {
      ++report_.stats.alerts;
      Trace("{} alert {} {}/{}: {} after {} failures", EngineName(), alert.gid, alert.branch_id,
            alert.op, alert.message, alert.consecutive_failures);
    }
    for (const auto& reply : ready.replies) SendReply(reply);
    for (const auto& call : ready.calls) SendCall(call);
  }

  void SendReply(const Reply& reply) {
    auto it = requests_.find(reply.request);
    if (it == requests_.end()) {
      Violation("run", fmt::format("reply to unknown request {}", reply.request));
      return;
    }
    PendingRequest& req = it->second;
    if (req.answered) {
      Violation("run", fmt::format("request {} answered twice", reply.request));
      return;
    }
    if (req.incarnation != incarnation_) {
      Violation("run", fmt::format("request {} answered by an engine that never received it",
                                   reply.request));
      return;
    }
    req.answered = true;
    if (req.txn < 0) {
      if (reply.http_status != 200) {
        Violation("run", fmt::format("resetNextCronTime answered HTTP {}", reply.http_status));
      }
      return;
    }
    CheckReplyDurable(req, reply);
    // Drawn from the TCC/XA stream, so saga/msg runs stay as they were.
    TxnSpec& s = txns_[static_cast<size_t>(req.txn)];
    if (RegistersBranches(s.type) && FaultsOn() && branch_rand_.Chance(0.08)) {
      ++report_.stats.faults;
      Trace("network loses the reply to request {} ({} {})", reply.request,
            coord::ApiOpName(req.op), s.gid);
      RetryLater(req.txn, req.op, req.attempt, req.branch);
      return;
    }
    RequestId id = reply.request;
    Schedule(now_ + rand_.Range(0, 5), [this, id, reply] { OnClientReply(id, reply); });
  }

  // Invariant 8 and wait_result: what a reply claims must already be durable.
  void CheckReplyDurable(const PendingRequest& req, const Reply& reply) {
    const TxnSpec& s = txns_[static_cast<size_t>(req.txn)];
    CallOutcome outcome = coord::ClassifyResponse(reply.http_status, reply.body);
    const TxnRecord* rec = disk_.Find(s.gid);
    if (outcome == CallOutcome::kSuccess) {
      if (rec == nullptr) {
        Violation(s.gid, fmt::format("{} answered SUCCESS before the transaction was durable",
                                     coord::ApiOpName(req.op)));
        return;
      }
      if (req.op == ApiOp::kSubmit && rec->state.status == GlobalStatus::kPrepared) {
        Violation(s.gid, "submit answered SUCCESS while the durable status was prepared");
      }
      if (RegistersBranches(s.type)) CheckBranchReplyDurable(s, req, *rec);
      if (req.op == ApiOp::kSubmit && s.wait_result &&
          rec->state.status != GlobalStatus::kSucceed) {
        Violation(s.gid, fmt::format("wait_result submit answered SUCCESS while the durable "
                                     "status was {}",
                                     coord::GlobalStatusName(rec->state.status)));
      }
    } else if (outcome == CallOutcome::kFailure && RegistersBranches(s.type) &&
               req.op == ApiOp::kSubmit) {
      if (rec == nullptr || (rec->state.status != GlobalStatus::kFailed &&
                             rec->state.status != GlobalStatus::kAborting)) {
        Violation(s.gid, fmt::format("submit answered FAILURE while the durable status was {}",
                                     rec ? coord::GlobalStatusName(rec->state.status) : "absent"));
      }
    } else if (outcome == CallOutcome::kFailure && req.op == ApiOp::kSubmit && s.wait_result &&
               req.attempt == 1) {
      if (rec == nullptr || (rec->state.status != GlobalStatus::kFailed &&
                             rec->state.status != GlobalStatus::kAborting)) {
        Violation(s.gid, "wait_result submit answered FAILURE but the saga is not durably failed");
      }
    }
  }

  void CheckBranchReplyDurable(const TxnSpec& s, const PendingRequest& req, const TxnRecord& rec) {
    const GlobalStatus st = rec.state.status;
    if (req.op == ApiOp::kRegisterBranch && req.branch >= 0) {
      const std::string& id = s.branches[static_cast<size_t>(req.branch)].id;
      bool held = false;
      for (const auto& b : rec.state.branches) held = held || b.branch_id == id;
      if (!held) {
        Violation(s.gid, fmt::format("registerBranch {} answered SUCCESS before the branch was "
                                     "durable",
                                     id));
      }
    }
    if (req.op == ApiOp::kSubmit && st != GlobalStatus::kSubmitted &&
        st != GlobalStatus::kSucceed) {
      Violation(s.gid, fmt::format("submit answered SUCCESS while the durable status was {}",
                                   coord::GlobalStatusName(st)));
    }
    if (req.op == ApiOp::kAbort && st != GlobalStatus::kAborting && st != GlobalStatus::kFailed) {
      Violation(s.gid, fmt::format("abort answered SUCCESS while the durable status was {}",
                                   coord::GlobalStatusName(st)));
    }
  }

  void SendCall(const BranchCall& call) {
    ++report_.stats.branch_calls;
    ++requests_on_wire_;
    const uint64_t inc = incarnation_;
    const CallId id = call.id;
    const TimeMs timeout = std::max<int64_t>(call.timeout_ms, 1);
    NetFault fault = NetFault::kNone;
    if (FaultsOn()) {
      double r = rand_.NextDouble();
      if (r < 0.06) {
        fault = NetFault::kServerError;
      } else if (r < 0.11) {
        fault = NetFault::kLostReply;
      } else if (r < 0.15) {
        fault = NetFault::kLateReply;
      } else if (r < 0.19) {
        fault = NetFault::kDuplicateReply;
      } else if (r < 0.21) {
        fault = NetFault::kSlowRequest;
      }
    }
    if (fault != NetFault::kNone) ++report_.stats.faults;
    const TimeMs max_delay = FaultsOn() ? 30 : 5;
    TimeMs to_participant = rand_.Range(0, max_delay);
    TimeMs to_engine = rand_.Range(0, max_delay);
    if (fault == NetFault::kSlowRequest) to_participant = timeout + rand_.Range(1, 300);
    if (fault == NetFault::kLateReply) to_engine = timeout + rand_.Range(1, 300);
    const bool lost = fault == NetFault::kLostReply;
    const TimeMs reply_after = lost ? kNever : to_participant + to_engine;

    Trace("{} call {} {} {} {}{}", EngineName(), id, CallLabel(call), call.gid, call.url,
          fault == NetFault::kNone ? "" : fmt::format(" [fault: {}]", FaultName(fault)));

    if (reply_after > timeout) {
      Schedule(now_ + timeout, [this, inc, id] {
        if (inc != incarnation_ || !engine_) return;
        Trace("{} call {} timed out", EngineName(), id);
        engine_->OnCallDone(id, CallOutcome::kError, now_);
      });
    }
    auto shared_call = std::make_shared<BranchCall>(call);
    Schedule(now_ + to_participant, [this, inc, shared_call, fault, to_engine, lost] {
      --requests_on_wire_;
      HttpAnswer answer =
          fault == NetFault::kServerError ? AnswerServerError() : Participant(*shared_call);
      if (lost) {
        Trace("network loses the reply to call {}", shared_call->id);
        return;
      }
      const CallId id = shared_call->id;
      CallOutcome outcome = coord::ClassifyResponse(answer.status, answer.body);
      int copies = fault == NetFault::kDuplicateReply ? 2 : 1;
      for (int c = 0; c < copies; ++c) {
        TimeMs extra = c == 0 ? 0 : rand_.Range(0, 20);
        Schedule(now_ + to_engine + extra, [this, inc, id, outcome] {
          if (inc != incarnation_ || !engine_) {
            Trace("outcome of call {} dropped: its engine is gone", id);
            return;
          }
          Trace("{} outcome call {} {}", EngineName(), id, OutcomeName(outcome));
          engine_->OnCallDone(id, outcome, now_);
        });
      }
    });
  }

  static std::string_view FaultName(NetFault f) {
    switch (f) {
      case NetFault::kNone:
        return "none";
      case NetFault::kServerError:
        return "HTTP 500";
      case NetFault::kLostReply:
        return "reply lost";
      case NetFault::kLateReply:
        return "reply after timeout";
      case NetFault::kDuplicateReply:
        return "reply twice";
      case NetFault::kSlowRequest:
        return "request arrives after timeout";
    }
    return "?";
  }

  static std::string Query(const BranchCall& call, std::string_view key) {
    for (const auto& [k, v] : call.query) {
      if (k == key) return v;
    }
    return {};
  }

  static std::string CallLabel(const BranchCall& call) {
    return Query(call, "branch_id") + "/" + Query(call, "op");
  }

  // ---- participants ----

  HttpAnswer Participant(const BranchCall& call) {
    TxnSpec* s = Spec(call.gid);
    if (s == nullptr) {
      Violation(call.gid, "a branch call for a transaction no client created");
      return {400, "unknown gid"};
    }
    if (Query(call, "gid") != call.gid) {
      Violation(call.gid, "a branch call without the gid query parameter");
    }
    if (Query(call, "trans_type") != coord::TransTypeName(s->type)) {
      Violation(call.gid, "a branch call without the right trans_type query parameter");
    }
    for (const auto& [k, v] : s->headers) {
      auto it = call.headers.find(k);
      if (it == call.headers.end() || it->second != v) {
        Violation(call.gid, "a branch call without the transaction's branch_headers");
      }
    }
    const std::string op = Query(call, "op");
    if (s->type == TransType::kMsg && (!call.post || call.url == kQueryPreparedUrl)) {
      return CheckBack(*s, call);
    }
    if (RegistersBranches(s->type)) return SecondPhase(*s, call, op);
    const std::string branch = Query(call, "branch_id");
    size_t step = 0;
    bool ok = branch.size() >= 2 && branch.size() <= 6;
    for (char c : branch) ok = ok && c >= '0' && c <= '9';
    if (ok) {
      step = static_cast<size_t>(std::stoi(branch));
      ok = step >= 1 && step <= s->steps.size();
    }
    if (!ok) {
      Violation(call.gid, "a branch call with a bad branch_id '" + branch + "'");
      return {400, "bad branch_id"};
    }
    --step;
    if (call.body != s->steps[step].payload) {
      Violation(call.gid,
                fmt::format("branch {} {} got a body that is not its payload", branch, op));
    }
    if (op == "action") return Action(*s, step);
    if (op == "compensate" && s->type == TransType::kSaga) return Compensate(*s, step);
    Violation(call.gid, "a branch call with an unexpected op '" + op + "'");
    return {400, "bad op"};
  }

  int DrawOngoing() { return FaultsOn() && rand_.Chance(0.12) ? rand_.Range(1, 3) : 0; }

  std::vector<int> Predecessors(const TxnSpec& s, size_t step) const {
    std::vector<int> preds;
    if (!s.concurrent) {
      for (size_t j = 0; j < step; ++j) preds.push_back(static_cast<int>(j));
    }
    auto it = s.orders.find(static_cast<int>(step));
    if (it != s.orders.end()) preds.insert(preds.end(), it->second.begin(), it->second.end());
    return preds;
  }

  HttpAnswer Action(TxnSpec& s, size_t step) {
    StepLedger& led = s.ledger[step];
    const std::string& gid = s.gid;
    const std::string branch = coord::BranchId(step);
    if (led.ongoing_action < 0) led.ongoing_action = DrawOngoing();
    if (led.ongoing_action > 0) {
      --led.ongoing_action;
      Trace("participant {} {}/action ONGOING", gid, branch);
      return AnswerOngoing();
    }
    if (!opts_.break_no_barrier) {
      if (led.compensate_seen) {
        // Hanging: the compensation ran first, so the barrier refuses the late action.
        Trace("participant {} {}/action refused (hanging: compensation ran first)", gid, branch);
        return AnswerSuccess();
      }
      if (led.action_applied > 0) {
        Trace("participant {} {}/action duplicate absorbed", gid, branch);
        return AnswerSuccess();
      }
    }
    if (s.steps[step].fails) {
      Trace("participant {} {}/action FAILURE (business)", gid, branch);
      return AnswerFailure();
    }
    const TxnRecord* rec = disk_.Find(gid);
    if (rec == nullptr) {
      Violation(gid,
                fmt::format("step {} action applied before the transaction was durable", branch));
    } else if (s.type == TransType::kSaga) {
      // A step without a compensate URL gets no compensate call, so no barrier row can refuse
      // its late action: applying after the failure is inherent, not the engine's doing.
      if (rec->state.status == GlobalStatus::kFailed && s.steps[step].has_compensate) {
        Violation(gid,
                  fmt::format("step {} action applied after the saga was recorded failed", branch));
      } else if (rec->state.status == GlobalStatus::kPrepared) {
        Violation(gid, fmt::format("step {} action applied while the saga was prepared", branch));
      }
      for (int j : Predecessors(s, step)) {
        if (s.ledger[static_cast<size_t>(j)].action_applied == 0) {
          Violation(gid, fmt::format("step {} action applied before step {}'s action", branch,
                                     coord::BranchId(static_cast<size_t>(j))));
        }
      }
    } else {
      if (rec->state.status == GlobalStatus::kPrepared ||
          rec->state.status == GlobalStatus::kFailed) {
        Violation(gid, fmt::format("msg step {} delivered while the durable status was {}", branch,
                                   coord::GlobalStatusName(rec->state.status)));
      }
      if (s.local != LocalTx::kCommitted) {
        Violation(gid, fmt::format("msg step {} delivered although the local transaction did "
                                   "not commit",
                                   branch));
      }
    }
    ++led.action_applied;
    Trace("participant {} {}/action applied", gid, branch);
    return AnswerSuccess();
  }

  HttpAnswer Compensate(TxnSpec& s, size_t step) {
    StepLedger& led = s.ledger[step];
    const std::string& gid = s.gid;
    const std::string branch = coord::BranchId(step);
    const TxnRecord* rec = disk_.Find(gid);
    if (rec == nullptr || (rec->state.status != GlobalStatus::kAborting &&
                           rec->state.status != GlobalStatus::kFailed)) {
      Violation(gid,
                fmt::format("step {} compensate arrived while the durable status was {}", branch,
                            rec ? coord::GlobalStatusName(rec->state.status) : "absent"));
    }
    if (led.ongoing_compensate < 0) led.ongoing_compensate = DrawOngoing();
    if (led.ongoing_compensate > 0) {
      --led.ongoing_compensate;
      Trace("participant {} {}/compensate ONGOING", gid, branch);
      return AnswerOngoing();
    }
    if (!opts_.break_no_barrier && led.compensate_seen) {
      Trace("participant {} {}/compensate duplicate absorbed", gid, branch);
      return AnswerSuccess();
    }
    // Reverse order: a step that depends on this one and whose action applied must have been
    // compensated already.
    for (size_t i = 0; i < s.steps.size(); ++i) {
      // A step without a compensate URL is compensated by definition (nothing to undo).
      if (i == step || !s.steps[i].has_compensate || s.ledger[i].action_applied == 0 ||
          s.ledger[i].compensate_seen) {
        continue;
      }
      auto preds = Predecessors(s, i);
      if (std::find(preds.begin(), preds.end(), static_cast<int>(step)) != preds.end()) {
        Violation(gid, fmt::format("step {} compensated before dependent step {}", branch,
                                   coord::BranchId(i)));
      }
    }
    led.compensate_seen = true;
    if (led.action_applied == 0 && !opts_.break_no_barrier) {
      Trace("participant {} {}/compensate empty (action never applied)", gid, branch);
      return AnswerSuccess();
    }
    if (led.action_applied == 0) {
      Violation(gid, fmt::format("step {} compensation applied without its action", branch));
    }
    ++led.compensate_applied;
    Trace("participant {} {}/compensate applied", gid, branch);
    return AnswerSuccess();
  }

  // A TCC confirm/cancel or XA commit/rollback, guarded by the barrier.
  HttpAnswer SecondPhase(TxnSpec& s, const BranchCall& call, const std::string& op) {
    const std::string& gid = s.gid;
    const std::string id = Query(call, "branch_id");
    BranchSpec* b = nullptr;
    for (auto& cand : s.branches) {
      if (cand.id == id && !cand.late) b = &cand;
    }
    if (b == nullptr) {
      Violation(gid, "a second-phase call for branch '" + id + "' the client never registered");
      return {400, "unknown branch"};
    }
    const bool tcc = s.type == TransType::kTcc;
    const bool commit = op == (tcc ? "confirm" : "commit");
    if (!commit && op != (tcc ? "cancel" : "rollback")) {
      Violation(gid, "a branch call with an unexpected op '" + op + "'");
      return {400, "bad op"};
    }
    const std::string& want_url = commit || !tcc ? b->confirm : b->cancel;
    if (call.url != want_url) {
      Violation(gid, fmt::format("branch {} {} went to '{}'", id, op, call.url));
    }
    if (call.body != b->data) {
      Violation(gid, fmt::format("branch {} {} got a body that is not its data", id, op));
    }
    const TxnRecord* rec = disk_.Find(gid);
    const GlobalStatus st = rec ? rec->state.status : GlobalStatus::kPrepared;
    const bool status_ok =
        rec != nullptr && (commit ? (st == GlobalStatus::kSubmitted || st == GlobalStatus::kSucceed)
                                  : (st == GlobalStatus::kAborting || st == GlobalStatus::kFailed));
    if (!status_ok) {
      Violation(gid, fmt::format("branch {} {} arrived while the durable status was {}", id, op,
                                 rec ? coord::GlobalStatusName(st) : "absent"));
    }
    int& ongoing = commit ? b->ongoing_confirm : b->ongoing_cancel;
    if (ongoing < 0) ongoing = DrawOngoing();
    if (ongoing > 0) {
      --ongoing;
      Trace("participant {} {}/{} ONGOING", gid, id, op);
      return AnswerOngoing();
    }
    if (FaultsOn() && rand_.Chance(0.05)) {
      Trace("participant {} {}/{} FAILURE (must be retried)", gid, id, op);
      return AnswerFailure();
    }
    if (commit ? b->cancel_seen : b->confirm_seen) {
      Violation(gid, fmt::format("branch {} got {} after {}", id, op,
                                 commit ? "its cancel" : "its confirm"));
    }
    bool& seen = commit ? b->confirm_seen : b->cancel_seen;
    if (seen && !opts_.break_no_barrier) {
      Trace("participant {} {}/{} duplicate absorbed", gid, id, op);
      return AnswerSuccess();
    }
    seen = true;
    if (b->try_state != TryState::kApplied) {
      if (commit) {
        Violation(gid, fmt::format("branch {} {} although its try never applied", id, op));
      }
      if (!opts_.break_no_barrier) {
        Trace("participant {} {}/{} empty (try never applied)", gid, id, op);
        return AnswerSuccess();
      }
    }
    ++(commit ? b->confirm_applied : b->cancel_applied);
    Trace("participant {} {}/{} applied", gid, id, op);
    return AnswerSuccess();
  }

  HttpAnswer CheckBack(TxnSpec& s, const BranchCall& call) {
    if (call.url != kQueryPreparedUrl) {
      Violation(s.gid, "check-back went to '" + call.url + "', not query_prepared");
    }
    const TxnRecord* rec = disk_.Find(s.gid);
    if (rec == nullptr) Violation(s.gid, "check-back for a msg that is not durable");
    if (FaultsOn() && rand_.Chance(0.1)) {
      Trace("client {} check-back ONGOING", s.gid);
      return AnswerOngoing();
    }
    if (FaultsOn() && rand_.Chance(0.08)) {
      Trace("client {} check-back HTTP 500", s.gid);
      return AnswerServerError();
    }
    switch (s.local) {
      case LocalTx::kCommitted:
        s.checkback_success = true;
        Trace("client {} check-back SUCCESS (local transaction committed)", s.gid);
        return AnswerSuccess();
      case LocalTx::kRolledBack:
        Trace("client {} check-back FAILURE (local transaction rolled back)", s.gid);
        return AnswerFailure();
      case LocalTx::kUndecided:
        // The barrier inserts a rollback marker, so a later local commit is refused.
        s.local = LocalTx::kRolledBack;
        Trace("client {} check-back FAILURE (local transaction not committed; now refused)", s.gid);
        return AnswerFailure();
    }
    return AnswerServerError();
  }

  // ---- the verdict ----

  void FinalChecks() {
    for (auto& s : txns_) {
      const TxnRecord* rec = disk_.Find(s.gid);
      if (s.acked && rec == nullptr) {
        Violation(s.gid, "the client got SUCCESS but the store does not hold the transaction");
      }
      if (rec != nullptr && !coord::IsFinal(rec->state.status)) {
        Violation(s.gid, fmt::format("unfinished at the end: status {}",
                                     coord::GlobalStatusName(rec->state.status)));
      }
      const GlobalStatus status = rec ? rec->state.status : GlobalStatus::kPrepared;
      if (s.type == TransType::kSaga) {
        CheckSagaEffects(s, rec != nullptr, status);
      } else if (RegistersBranches(s.type)) {
        CheckBranchEffects(s, rec);
      } else {
        CheckMsgEffects(s, rec != nullptr, status);
      }
    }
    for (const auto& [id, req] : requests_) {
      if (req.answered || req.lost) continue;
      if (now_ - req.sent > config_.wait_result_timeout_ms + 1'000) {
        Violation(req.txn >= 0 ? txns_[static_cast<size_t>(req.txn)].gid : "run",
                  fmt::format("request {} was never answered", id));
      }
    }
  }

  void CheckSagaEffects(const TxnSpec& s, bool durable, GlobalStatus status) {
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const StepLedger& led = s.ledger[i];
      const std::string branch = coord::BranchId(i);
      if (!durable) {
        if (led.action_applied > 0 || led.compensate_applied > 0) {
          Violation(s.gid, fmt::format("step {} has effects but the saga is not durable", branch));
        }
        continue;
      }
      if (led.action_applied > 1) {
        Violation(s.gid,
                  fmt::format("step {} action applied {} times", branch, led.action_applied));
      }
      if (led.compensate_applied > 1) {
        Violation(s.gid, fmt::format("step {} compensation applied {} times", branch,
                                     led.compensate_applied));
      }
      if (status == GlobalStatus::kSucceed) {
        if (led.action_applied != 1) {
          Violation(s.gid, fmt::format("saga succeeded but step {} action applied {} times", branch,
                                       led.action_applied));
        }
        if (led.compensate_seen) {
          Violation(s.gid, fmt::format("saga succeeded but step {} was compensated", branch));
        }
      } else if (status == GlobalStatus::kFailed && s.steps[i].has_compensate &&
                 led.action_applied != led.compensate_applied) {
        Violation(s.gid, fmt::format("saga failed but step {} has net effect {} (applied {}, "
                                     "compensated {})",
                                     branch, led.action_applied - led.compensate_applied,
                                     led.action_applied, led.compensate_applied));
      }
    }
  }

  // Invariants 9 and 11 at the end of the run.
  void CheckBranchEffects(const TxnSpec& s, const TxnRecord* rec) {
    const GlobalStatus status = rec ? rec->state.status : GlobalStatus::kPrepared;
    if (s.submit_acked && status != GlobalStatus::kSucceed) {
      Violation(s.gid, fmt::format("submit was acknowledged but the transaction ended {}",
                                   rec ? coord::GlobalStatusName(status) : "absent"));
    }
    if (s.abort_acked && status != GlobalStatus::kFailed) {
      Violation(s.gid, fmt::format("abort was acknowledged but the transaction ended {}",
                                   rec ? coord::GlobalStatusName(status) : "absent"));
    }
    for (const auto& b : s.branches) {
      bool durable = false;
      for (const auto& rb : rec ? rec->state.branches : std::vector<coord::RegisteredBranch>()) {
        durable = durable || rb.branch_id == b.id;
      }
      if (b.late) {
        if (durable) Violation(s.gid, fmt::format("late branch {} is durable", b.id));
        continue;
      }
      if (b.register_acked && !durable) {
        Violation(s.gid,
                  fmt::format("registerBranch {} was acknowledged but the branch is lost", b.id));
      }
      if (b.confirm_applied > 1 || b.cancel_applied > 1) {
        Violation(s.gid, fmt::format("branch {} confirmed {} times, cancelled {} times", b.id,
                                     b.confirm_applied, b.cancel_applied));
      }
      if (b.confirm_seen && b.cancel_seen) {
        Violation(s.gid, fmt::format("branch {} was both confirmed and cancelled", b.id));
      }
      if (status == GlobalStatus::kSucceed) {
        if (durable && b.confirm_applied != 1) {
          Violation(s.gid, fmt::format("succeeded but branch {} confirmed {} times", b.id,
                                       b.confirm_applied));
        }
        if (b.cancel_seen) {
          Violation(s.gid, fmt::format("succeeded but branch {} was cancelled", b.id));
        }
      } else if (status == GlobalStatus::kFailed) {
        if (b.confirm_seen) {
          Violation(s.gid, fmt::format("failed but branch {} was confirmed", b.id));
        }
        if (b.try_state == TryState::kApplied && b.cancel_applied != 1) {
          Violation(s.gid, fmt::format("failed but branch {}'s applied try was cancelled {} times",
                                       b.id, b.cancel_applied));
        }
      } else if (b.try_state == TryState::kApplied && rec == nullptr) {
        Violation(s.gid,
                  fmt::format("branch {} try applied but the transaction is not durable", b.id));
      }
    }
  }

  void CheckMsgEffects(const TxnSpec& s, bool durable, GlobalStatus status) {
    const bool must_deliver = s.submit_acked || s.checkback_success;
    if (must_deliver && status != GlobalStatus::kSucceed) {
      Violation(s.gid, fmt::format("msg was {} but ended {}",
                                   s.submit_acked ? "submitted" : "confirmed by check-back",
                                   durable ? coord::GlobalStatusName(status) : "absent"));
    }
    if (durable && status == GlobalStatus::kFailed && s.local == LocalTx::kCommitted) {
      Violation(s.gid, "msg failed although its local transaction committed");
    }
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const StepLedger& led = s.ledger[i];
      const std::string branch = coord::BranchId(i);
      if (s.local != LocalTx::kCommitted && led.action_applied > 0) {
        Violation(s.gid, fmt::format("step {} applied although the local transaction did not "
                                     "commit",
                                     branch));
      }
      if (status == GlobalStatus::kSucceed && durable && led.action_applied != 1) {
        Violation(s.gid, fmt::format("msg succeeded but step {} applied {} times", branch,
                                     led.action_applied));
      }
      if (led.action_applied > 1) {
        Violation(s.gid, fmt::format("step {} applied {} times", branch, led.action_applied));
      }
    }
  }

  const SimOptions opts_;
  Rand rand_;
  Rand branch_rand_;  // the TCC/XA workload, apart so the saga/msg workload does not change
  const EngineConfig config_;
  const TimeMs fault_end_;
  SimReport report_;
  std::set<std::string> violation_keys_;

  std::vector<Event> queue_;
  uint64_t next_seq_ = 0;
  TimeMs now_ = 0;

  std::vector<TxnSpec> txns_;
  std::map<std::string, size_t> by_gid_;
  int clients_pending_ = 0;

  Disk disk_;
  int unfinished_durable_ = 0;

  std::unique_ptr<Engine> engine_;
  uint64_t incarnation_ = 1;
  bool ready_outstanding_ = false;
  TimeMs wakeup_at_ = kNever;
  std::map<RequestId, PendingRequest> requests_;
  RequestId next_request_id_ = 1;
  int requests_on_wire_ = 0;
};

}  // namespace

SimReport RunCoordSim(const SimOptions& options) { return CoordSim(options).Run(); }

std::string FormatStats(const SimReport& r) {
  const SimStats& s = r.stats;
  return fmt::format(
      "seed {}: {} txns ({} saga, {} msg, {} tcc, {} xa): {} succeed, {} failed, {} unfinished; "
      "{} crashes, {} batches, {} branch calls, {} registered branches, {} faults, {} client "
      "requests, {} alerts; {} events, ended at t={}ms",
      r.seed, s.sagas + s.msgs + s.tccs + s.xas, s.sagas, s.msgs, s.tccs, s.xas, s.succeeded,
      s.failed, s.unfinished, s.crashes, s.batches, s.branch_calls, s.branches_registered, s.faults,
      s.client_requests, s.alerts, s.events, s.end_time_ms);
}

std::string ReplayCommand(const SimOptions& o) {
  std::string cmd = fmt::format("dtxsim coord --seed {}", o.seed);
  SimOptions defaults;
  if (o.txns != defaults.txns) cmd += fmt::format(" --txns {}", o.txns);
  if (o.branch_txns != defaults.branch_txns) {
    cmd += fmt::format(" --branch-txns {}", o.branch_txns);
  }
  if (!o.crashes) cmd += " --no-crashes";
  if (!o.faults) cmd += " --no-faults";
  if (o.fault_phase_ms != defaults.fault_phase_ms) {
    cmd += fmt::format(" --fault-phase-ms {}", o.fault_phase_ms);
  }
  if (o.break_persist_before_send) cmd += " --break-persist-before-send";
  if (o.break_drop_writes) cmd += " --break-drop-writes";
  if (o.break_no_barrier) cmd += " --break-no-barrier";
  if (o.break_register_before_persist) cmd += " --break-register-before-persist";
  return cmd + " --trace";
}

}  // namespace dtx::sim
