#include "coord/engine.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cassert>

namespace dtx::coord {
namespace {

using nlohmann::json;

// kBranch is the second phase of a registered TCC/XA branch (confirm|cancel, commit|rollback).
enum class OpKind { kAction, kCompensate, kCheckBack, kBranch };

std::string_view OpName(OpKind k) {
  switch (k) {
    case OpKind::kAction:
      return "action";
    case OpKind::kCompensate:
      return "compensate";
    case OpKind::kCheckBack:
      return "msg";
    case OpKind::kBranch:
      return "branch";
  }
  return "unknown";
}

// TCC and XA transactions get their branches from registerBranch, not from steps.
bool RegistersBranches(TransType type) { return type == TransType::kTcc || type == TransType::kXa; }

// Volatile bookkeeping of one branch operation; rebuilt empty after a restart.
struct OpRuntime {
  CallId inflight = 0;
  int64_t errors = 0;
  TimeMs next_attempt = 0;
};

struct Waiter {
  RequestId request;
  TimeMs deadline;
};

Reply MakeReply(RequestId id, int status, json body) {
  return Reply{id, status, body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

Reply Success(RequestId id) { return MakeReply(id, 200, {{"dtm_result", "SUCCESS"}}); }

// 409 and the word FAILURE tell DTM SDKs not to retry.
Reply Failure(RequestId id, const std::string& message, int status = 409) {
  return MakeReply(id, status, {{"dtm_result", "FAILURE"}, {"message", message}});
}

Reply Ongoing(RequestId id, const std::string& message) {
  return MakeReply(id, 425, {{"dtm_result", "ONGOING"}, {"message", message}});
}

// Anything but 200/409/425 without the result words: DTM SDKs retry it.
Reply TemporaryError(RequestId id, const std::string& message) {
  return MakeReply(id, 503, {{"message", message}});
}

}  // namespace

CallOutcome ClassifyResponse(int http_status, std::string_view body) {
  if (http_status == 425 || body.find("ONGOING") != std::string_view::npos) {
    return CallOutcome::kOngoing;
  }
  if (http_status == 409 || body.find("FAILURE") != std::string_view::npos) {
    return CallOutcome::kFailure;
  }
  if (http_status != 200) return CallOutcome::kError;
  return CallOutcome::kSuccess;
}

class Engine::Impl {
 public:
  Impl(EngineConfig config, TxnReader& reader, uint64_t seed)
      : config_(std::move(config)), reader_(reader), rand_(seed) {}

  struct Txn {
    std::shared_ptr<const TxnDef> def;
    TxnState state;
    bool create_pending = false;
    bool dirty = false;
    bool parked = false;  // retry_limit reached: no automatic attempts until resetCronTime
    std::vector<OpRuntime> action_rt;
    std::vector<OpRuntime> compensate_rt;
    OpRuntime check_rt;
    std::vector<Waiter> waiters;
    TimeMs timer_at = -1;  // key in timers_, or -1
  };

  struct CallRef {
    std::string gid;
    OpKind kind;
    size_t step;
  };

  // ---- events ----

  void Recover(std::vector<TxnRecord> records, TimeMs now) {
    for (auto& rec : records) {
      if (IsFinal(rec.state.status) || txns_.count(rec.def.gid)) continue;
      Adopt(std::move(rec), now);
    }
  }

  void HandleRequest(RequestId id, TxnRequest req, TimeMs now) {
    auto found = Find(req.def.gid, now);
    if (!found.ok()) {
      pending_.replies.push_back(TemporaryError(id, found.status().ToString()));
      return;
    }
    Txn* t = *found;
    switch (req.op) {
      case ApiOp::kPrepare:
      case ApiOp::kSubmit:
        return PrepareOrSubmit(id, std::move(req), t, now);
      case ApiOp::kAbort:
        return Abort(id, req, t, now);
      case ApiOp::kForceStop:
        return ForceStop(id, req, t, now);
      case ApiOp::kRegisterBranch:
        return RegisterBranch(id, std::move(req), t, now);
    }
  }

  void HandleResetCronTime(RequestId id, int64_t later_than_ms, int64_t limit, TimeMs now) {
    int64_t count = 0;
    bool remaining = false;
    for (auto& [gid, t] : txns_) {
      if (IsFinal(t->state.status)) continue;
      bool late = t->parked || (t->timer_at >= 0 && t->timer_at > now + later_than_ms);
      if (!late) continue;
      if (count >= limit) {
        remaining = true;
        break;
      }
      ++count;
      t->parked = false;
      auto reset = [&](OpRuntime& rt) {
        rt.next_attempt = now;
        rt.errors = 0;
      };
      for (auto& rt : t->action_rt) reset(rt);
      for (auto& rt : t->compensate_rt) reset(rt);
      reset(t->check_rt);
      ScheduleAt(*t, now);
    }
    pending_.replies.push_back(MakeReply(
        id, 200,
        {{"dtm_result", "SUCCESS"}, {"succeed_count", count}, {"has_remaining", remaining}}));
  }

  void OnCallDone(CallId id, CallOutcome outcome, TimeMs now) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    CallRef ref = std::move(it->second);
    calls_.erase(it);
    auto tit = txns_.find(ref.gid);
    if (tit == txns_.end()) return;
    Txn& t = *tit->second;
    OpRuntime& rt = Runtime(t, ref.kind, ref.step);
    if (rt.inflight != id) return;
    rt.inflight = 0;
    if (IsFinal(t.state.status)) return;
    if (outcome == CallOutcome::kError) ++stats_.branch_errors;

    switch (ref.kind) {
      case OpKind::kAction:
        OnActionDone(t, ref.step, outcome, rt, now);
        break;
      case OpKind::kCompensate:
        OnRetriedOpDone(t, ref.kind, ref.step, outcome, rt, now, [&] {
          t.state.steps[ref.step].compensate = BranchStatus::kSucceed;
          t.state.steps[ref.step].compensate_finish_time = now;
        });
        break;
      case OpKind::kCheckBack:
        OnCheckBackDone(t, outcome, rt, now);
        break;
      case OpKind::kBranch:
        OnRetriedOpDone(t, ref.kind, ref.step, outcome, rt, now, [&] {
          t.state.branches[ref.step].status = BranchStatus::kSucceed;
          t.state.branches[ref.step].finish_time = now;
        });
        break;
    }
    Process(t, now);
  }

  void Tick(TimeMs now) {
    while (!timers_.empty() && timers_.begin()->first <= now) {
      Txn* t = timers_.begin()->second;
      timers_.erase(timers_.begin());
      t->timer_at = -1;
      Process(*t, now);
    }
  }

  // ---- output ----

  bool HasReady() const { return !outstanding_ && (!dirty_.empty() || !pending_.empty()); }

  Ready TakeReady() {
    assert(!outstanding_);
    Ready ready = std::move(pending_);
    pending_ = Ready();
    for (Txn* t : dirty_) {
      ready.writes.push_back(TxnWrite{t->def, t->create_pending, t->state});
      t->create_pending = false;
      t->dirty = false;
      if (IsFinal(t->state.status)) evict_.push_back(t->def->gid);
    }
    dirty_.clear();
    outstanding_ = true;
    return ready;
  }

  void Advance() {
    outstanding_ = false;
    // A finished transaction's final state is now durable; the store answers for it from here on.
    for (const auto& gid : evict_) {
      auto it = txns_.find(gid);
      if (it == txns_.end()) continue;
      Txn& t = *it->second;
      if (!IsFinal(t.state.status) || t.dirty) continue;
      Unschedule(t);
      txns_.erase(it);
    }
    evict_.clear();
  }

  std::optional<TimeMs> NextWakeup() const {
    if (timers_.empty()) return std::nullopt;
    return timers_.begin()->first;
  }

  EngineStats stats() const {
    EngineStats s = stats_;
    s.active = txns_.size();
    s.inflight_calls = calls_.size();
    return s;
  }

 private:
  // ---- lookup and creation ----

  Result<Txn*> Find(const std::string& gid, TimeMs now) {
    auto it = txns_.find(gid);
    if (it != txns_.end()) return it->second.get();
    auto loaded = reader_.Load(gid);
    if (!loaded.ok()) return loaded.status();
    if (!loaded->has_value()) return static_cast<Txn*>(nullptr);
    // A durable unfinished record that Recover() did not hand over is taken over for good; a
    // finished one only for this request, then dropped again at the next Advance().
    Txn* t = Adopt(std::move(**loaded), now);
    if (IsFinal(t->state.status)) evict_.push_back(t->def->gid);
    return t;
  }

  // Holds `rec` in memory with empty volatile bookkeeping.
  Txn* Insert(TxnRecord rec) {
    auto t = std::make_unique<Txn>();
    size_t n = rec.def.steps.size();
    rec.state.steps.resize(n);
    t->def = std::make_shared<const TxnDef>(std::move(rec.def));
    t->state = std::move(rec.state);
    t->action_rt.resize(std::max(n, t->state.branches.size()));
    t->compensate_rt.resize(n);
    Txn* raw = t.get();
    txns_.emplace(raw->def->gid, std::move(t));
    return raw;
  }

  // A durable record: the next Tick() resumes it.
  Txn* Adopt(TxnRecord rec, TimeMs now) {
    Txn* t = Insert(std::move(rec));
    if (!IsFinal(t->state.status)) ScheduleAt(*t, now);
    return t;
  }

  Txn* Create(TxnDef def, GlobalStatus status, TimeMs now) {
    def.create_time = now;
    TxnRecord rec;
    rec.def = std::move(def);
    rec.state.status = status;
    Txn* t = Insert(std::move(rec));
    t->create_pending = true;
    MarkDirty(*t, now);
    ++stats_.started;
    return t;
  }

  static bool SameContent(const TxnDef& have, const TxnRequest& req) {
    const TxnDef& want = req.def;
    if (have.type != want.type) return false;
    if (req.has_steps && (have.steps != want.steps || have.payloads != want.payloads)) return false;
    if (!want.custom_data.empty() && want.custom_data != have.custom_data) return false;
    if (!want.query_prepared.empty() && want.query_prepared != have.query_prepared) return false;
    return true;
  }

  // ---- API operations ----

  void PrepareOrSubmit(RequestId id, TxnRequest req, Txn* t, TimeMs now) {
    const bool submit = req.op == ApiOp::kSubmit;
    if (t == nullptr) {
      if (RegistersBranches(req.def.type) ? submit : (!req.has_steps || req.def.steps.empty())) {
        pending_.replies.push_back(
            Failure(id,
                    "transaction " + req.def.gid + " was not prepared" +
                        (RegistersBranches(req.def.type) ? "" : " and has no steps"),
                    400));
        return;
      }
      bool wait = submit && req.def.options.wait_result;
      t = Create(std::move(req.def), submit ? GlobalStatus::kSubmitted : GlobalStatus::kPrepared,
                 now);
      if (wait) {
        t->waiters.push_back({id, now + config_.wait_result_timeout_ms});
      } else {
        pending_.replies.push_back(Success(id));
      }
      Process(*t, now);
      return;
    }
    if (!SameContent(*t->def, req)) {
      pending_.replies.push_back(Failure(
          id, "gid " + req.def.gid + " is already used by a transaction with different content"));
      return;
    }
    const GlobalStatus status = t->state.status;
    const std::string status_name(GlobalStatusName(status));
    if (!submit) {
      if (status == GlobalStatus::kPrepared) {
        pending_.replies.push_back(Success(id));
      } else {
        pending_.replies.push_back(
            Failure(id, "current status '" + status_name + "', cannot prepare"));
      }
      return;
    }
    switch (status) {
      case GlobalStatus::kPrepared:
        t->state.status = GlobalStatus::kSubmitted;
        MarkDirty(*t, now);
        break;
      case GlobalStatus::kSubmitted:
        break;
      case GlobalStatus::kSucceed:
        pending_.replies.push_back(Success(id));
        return;
      case GlobalStatus::kAborting:
      case GlobalStatus::kFailed:
        pending_.replies.push_back(
            Failure(id, "current status '" + status_name + "', cannot submit"));
        return;
    }
    if (req.def.options.wait_result) {
      t->waiters.push_back({id, now + config_.wait_result_timeout_ms});
    } else {
      pending_.replies.push_back(Success(id));
    }
    Process(*t, now);
  }

  void Abort(RequestId id, const TxnRequest& req, Txn* t, TimeMs now) {
    if (t == nullptr) {
      pending_.replies.push_back(Failure(id, "transaction " + req.def.gid + " not found", 404));
      return;
    }
    if (req.has_trans_type && req.def.type != t->def->type) {
      pending_.replies.push_back(
          Failure(id, "trans_type does not match transaction " + t->def->gid));
      return;
    }
    const GlobalStatus status = t->state.status;
    if (t->def->type == TransType::kMsg && status == GlobalStatus::kPrepared) {
      Finish(*t, GlobalStatus::kFailed, "aborted by the application", now);
      pending_.replies.push_back(Success(id));
      return;
    }
    if (RegistersBranches(t->def->type) && status == GlobalStatus::kPrepared) {
      BeginAbort(*t, "aborted by the application", now);
      pending_.replies.push_back(Success(id));
      Process(*t, now);
      return;
    }
    if (status == GlobalStatus::kAborting || status == GlobalStatus::kFailed) {
      pending_.replies.push_back(Success(id));
      return;
    }
    pending_.replies.push_back(Failure(
        id, "current status '" + std::string(GlobalStatusName(status)) + "', cannot abort"));
  }

  void RegisterBranch(RequestId id, TxnRequest req, Txn* t, TimeMs now) {
    if (t == nullptr) {
      pending_.replies.push_back(Failure(id, "transaction " + req.def.gid + " not found", 404));
      return;
    }
    if (req.def.type != t->def->type) {
      pending_.replies.push_back(
          Failure(id, "trans_type does not match transaction " + t->def->gid));
      return;
    }
    auto& branches = t->state.branches;
    RegisteredBranch& b = req.branch;
    for (const auto& have : branches) {
      if (have.branch_id != b.branch_id) continue;
      if (have.confirm == b.confirm && have.cancel == b.cancel && have.data == b.data) {
        pending_.replies.push_back(Success(id));
      } else {
        pending_.replies.push_back(
            Failure(id, "branch " + b.branch_id + " is already registered with different content"));
      }
      return;
    }
    if (t->state.status != GlobalStatus::kPrepared) {
      pending_.replies.push_back(Failure(id, "current status '" +
                                                 std::string(GlobalStatusName(t->state.status)) +
                                                 "', cannot register branch"));
      return;
    }
    if (branches.size() >= config_.limits.max_steps) {
      pending_.replies.push_back(Failure(
          id, "too many branches (limit " + std::to_string(config_.limits.max_steps) + ")", 400));
      return;
    }
    b.status = BranchStatus::kPrepared;
    b.finish_time = 0;
    b.register_time = now;
    branches.push_back(std::move(b));
    t->action_rt.resize(branches.size());
    MarkDirty(*t, now);
    pending_.replies.push_back(Success(id));
  }

  void ForceStop(RequestId id, const TxnRequest& req, Txn* t, TimeMs now) {
    if (t == nullptr) {
      pending_.replies.push_back(Failure(id, "transaction " + req.def.gid + " not found", 404));
      return;
    }
    if (IsFinal(t->state.status)) {
      pending_.replies.push_back(Failure(id, "current status '" +
                                                 std::string(GlobalStatusName(t->state.status)) +
                                                 "', cannot force stop"));
      return;
    }
    Finish(*t, GlobalStatus::kFailed, "force stopped", now);
    pending_.replies.push_back(Success(id));
  }

  // ---- call outcomes ----

  void OnActionDone(Txn& t, size_t step, CallOutcome outcome, OpRuntime& rt, TimeMs now) {
    StepState& s = t.state.steps[step];
    const bool saga = t.def->type == TransType::kSaga;
    switch (outcome) {
      case CallOutcome::kSuccess:
        rt.errors = 0;
        s.action = BranchStatus::kSucceed;
        s.action_finish_time = now;
        MarkDirty(t, now);
        return;
      case CallOutcome::kFailure:
        if (saga) {
          s.action = BranchStatus::kFailed;
          s.action_finish_time = now;
          MarkDirty(t, now);
          if (t.state.status == GlobalStatus::kSubmitted) {
            BeginAbort(t, "branch " + BranchId(step) + " action answered FAILURE", now);
          }
          return;
        }
        // A msg step must be delivered: FAILURE is just another reason to retry.
        OnTemporaryError(t, OpKind::kAction, step, rt, now);
        return;
      case CallOutcome::kOngoing:
        rt.next_attempt = now + config_.ongoing_interval_ms;
        return;
      case CallOutcome::kError:
        OnTemporaryError(t, OpKind::kAction, step, rt, now);
        return;
    }
  }

  // Operations that must eventually succeed (compensate, msg delivery): FAILURE is retried too.
  template <typename OnSuccess>
  void OnRetriedOpDone(Txn& t, OpKind kind, size_t step, CallOutcome outcome, OpRuntime& rt,
                       TimeMs now, OnSuccess on_success) {
    switch (outcome) {
      case CallOutcome::kSuccess:
        rt.errors = 0;
        on_success();
        MarkDirty(t, now);
        return;
      case CallOutcome::kOngoing:
        rt.next_attempt = now + config_.ongoing_interval_ms;
        return;
      case CallOutcome::kFailure:
      case CallOutcome::kError:
        OnTemporaryError(t, kind, step, rt, now);
        return;
    }
  }

  void OnCheckBackDone(Txn& t, CallOutcome outcome, OpRuntime& rt, TimeMs now) {
    if (t.state.status != GlobalStatus::kPrepared) return;
    switch (outcome) {
      case CallOutcome::kSuccess:
        rt.errors = 0;
        t.state.status = GlobalStatus::kSubmitted;
        MarkDirty(t, now);
        return;
      case CallOutcome::kFailure:
        Finish(t, GlobalStatus::kFailed, "check-back answered FAILURE", now);
        return;
      case CallOutcome::kOngoing:
        rt.next_attempt = now + config_.ongoing_interval_ms;
        return;
      case CallOutcome::kError:
        OnTemporaryError(t, OpKind::kCheckBack, 0, rt, now);
        return;
    }
  }

  void OnTemporaryError(Txn& t, OpKind kind, size_t step, OpRuntime& rt, TimeMs now) {
    ++rt.errors;
    rt.next_attempt = now + Backoff(t, rt.errors);
    const std::string url = Url(t, kind, step);
    if (config_.alert_after_failures > 0 && rt.errors == config_.alert_after_failures) {
      pending_.alerts.push_back(Alert{t.def->gid, WireBranchId(t, kind, step),
                                      std::string(WireOp(t, kind)), url, rt.errors,
                                      "branch operation keeps failing"});
    }
    int64_t limit =
        t.def->options.retry_limit > 0 ? t.def->options.retry_limit : config_.retry_limit;
    if (limit <= 0 || rt.errors < limit) return;
    if (kind == OpKind::kAction && t.def->type == TransType::kSaga) {
      // An aborting saga never retries its actions, so there is nothing to park.
      if (t.state.status == GlobalStatus::kSubmitted) {
        BeginAbort(t,
                   "branch " + BranchId(step) + " action failed " + std::to_string(rt.errors) +
                       " times (retry_limit)",
                   now);
      }
      return;
    }
    t.parked = true;
    pending_.alerts.push_back(Alert{t.def->gid, WireBranchId(t, kind, step),
                                    std::string(WireOp(t, kind)), url, rt.errors,
                                    "retry_limit reached: parked until resetNextCronTime"});
  }

  int64_t Backoff(const Txn& t, int64_t errors) {
    int64_t base = t.def->options.retry_interval_s > 0 ? t.def->options.retry_interval_s * 1000
                                                       : config_.retry_interval_ms;
    base = std::max<int64_t>(base, 1);
    int64_t interval = base;
    for (int64_t i = 1; i < errors && interval < config_.max_retry_interval_ms; ++i) interval *= 2;
    interval = std::min(interval, std::max(config_.max_retry_interval_ms, base));
    // +-25% jitter keeps retries of many transactions from hitting a recovering service at once.
    int64_t spread = interval / 2;
    return interval - interval / 4 +
           (spread > 0 ? static_cast<int64_t>(rand_.Uniform(spread + 1)) : 0);
  }

  // ---- the per-transaction scheduler ----

  void Process(Txn& t, TimeMs now) {
    if (!IsFinal(t.state.status) && !t.parked) {
      switch (t.def->type) {
        case TransType::kSaga:
          ProcessSaga(t, now);
          break;
        case TransType::kMsg:
          ProcessMsg(t, now);
          break;
        case TransType::kTcc:
        case TransType::kXa:
          ProcessBranches(t, now);
          break;
      }
    }
    AnswerWaiters(t, now);
    Schedule(t, now);
  }

  bool CanRun(const Txn& t, size_t i) const {
    const auto& steps = t.state.steps;
    if (!t.def->concurrent) {
      for (size_t j = 0; j < i; ++j) {
        if (steps[j].action != BranchStatus::kSucceed) return false;
      }
    }
    auto it = t.def->orders.find(static_cast<int>(i));
    if (it != t.def->orders.end()) {
      for (int j : it->second) {
        if (steps[j].action != BranchStatus::kSucceed) return false;
      }
    }
    return true;
  }

  // Whether step i's action may have been invoked. An action is only ever called when CanRun()
  // holds, and recorded successes never revert, so CanRun() now over-approximates every past call:
  // compensating all such steps never misses an applied action, even across restarts.
  bool NeedsCompensation(const Txn& t, size_t i) const {
    return t.state.steps[i].action != BranchStatus::kPrepared || CanRun(t, i);
  }

  bool CompensationAllowed(const Txn& t, size_t i) const {
    const size_t n = t.state.steps.size();
    auto done = [&](size_t j) {
      return !NeedsCompensation(t, j) || t.state.steps[j].compensate == BranchStatus::kSucceed;
    };
    if (!t.def->concurrent) {
      for (size_t j = i + 1; j < n; ++j) {
        if (!done(j)) return false;
      }
    }
    for (const auto& [j, preds] : t.def->orders) {
      if (std::find(preds.begin(), preds.end(), static_cast<int>(i)) != preds.end() &&
          !done(static_cast<size_t>(j))) {
        return false;
      }
    }
    return true;
  }

  void ProcessSaga(Txn& t, TimeMs now) {
    const size_t n = t.state.steps.size();
    if (t.state.status == GlobalStatus::kSubmitted) {
      bool all_succeeded = true;
      for (const auto& step : t.state.steps) {
        if (step.action != BranchStatus::kSucceed) all_succeeded = false;
      }
      if (all_succeeded) {
        Finish(t, GlobalStatus::kSucceed, "", now);
        return;
      }
      if (t.def->options.timeout_to_fail_s > 0 &&
          now >= t.def->create_time + t.def->options.timeout_to_fail_s * 1000) {
        BeginAbort(t, "timeout after " + std::to_string(t.def->options.timeout_to_fail_s) + " s",
                   now);
      } else {
        for (size_t i = 0; i < n; ++i) {
          if (t.state.steps[i].action == BranchStatus::kPrepared && CanRun(t, i)) {
            MaybeCall(t, OpKind::kAction, i, now);
          }
        }
      }
    }
    if (t.state.status != GlobalStatus::kAborting) return;
    // Compensate only once no action is in flight: its answer decides whether it applied.
    for (const auto& rt : t.action_rt) {
      if (rt.inflight != 0) return;
    }
    bool all_done = false;
    // Steps with an empty compensate URL complete at once, which may unblock others: repeat.
    for (bool progressed = true; progressed;) {
      progressed = false;
      all_done = true;
      for (size_t k = n; k-- > 0;) {
        if (!NeedsCompensation(t, k) || t.state.steps[k].compensate == BranchStatus::kSucceed) {
          continue;
        }
        all_done = false;
        if (!CompensationAllowed(t, k)) continue;
        if (t.def->steps[k].compensate.empty()) {
          t.state.steps[k].compensate = BranchStatus::kSucceed;
          t.state.steps[k].compensate_finish_time = now;
          MarkDirty(t, now);
          progressed = true;
          continue;
        }
        MaybeCall(t, OpKind::kCompensate, k, now);
      }
    }
    if (all_done) Finish(t, GlobalStatus::kFailed, "", now);
  }

  void ProcessMsg(Txn& t, TimeMs now) {
    if (t.state.status == GlobalStatus::kPrepared) {
      int64_t timeout = t.def->options.timeout_to_fail_s > 0
                            ? t.def->options.timeout_to_fail_s * 1000
                            : config_.msg_timeout_ms;
      if (now >= t.def->create_time + timeout) MaybeCall(t, OpKind::kCheckBack, 0, now);
      return;
    }
    if (t.state.status != GlobalStatus::kSubmitted) return;
    for (size_t i = 0; i < t.state.steps.size(); ++i) {
      if (t.state.steps[i].action == BranchStatus::kSucceed) continue;
      MaybeCall(t, OpKind::kAction, i, now);
      return;
    }
    Finish(t, GlobalStatus::kSucceed, "", now);
  }

  int64_t PreparedTimeoutMs(const Txn& t) const {
    return t.def->options.timeout_to_fail_s > 0 ? t.def->options.timeout_to_fail_s * 1000
                                                : config_.prepared_timeout_ms;
  }

  // TCC and XA: the application registered the branches and ran their first phase itself; the
  // global decision picks one second-phase operation for all of them, retried until it succeeds.
  void ProcessBranches(Txn& t, TimeMs now) {
    if (t.state.status == GlobalStatus::kPrepared) {
      if (now >= t.def->create_time + PreparedTimeoutMs(t)) {
        BeginAbort(t, "timeout after " + std::to_string(PreparedTimeoutMs(t) / 1000) + " s", now);
      } else {
        return;
      }
    }
    bool all_done = true;
    for (size_t i = 0; i < t.state.branches.size(); ++i) {
      if (t.state.branches[i].status == BranchStatus::kSucceed) continue;
      all_done = false;
      MaybeCall(t, OpKind::kBranch, i, now);
    }
    if (!all_done) return;
    Finish(
        t,
        t.state.status == GlobalStatus::kSubmitted ? GlobalStatus::kSucceed : GlobalStatus::kFailed,
        "", now);
  }

  void MaybeCall(Txn& t, OpKind kind, size_t step, TimeMs now) {
    OpRuntime& rt = Runtime(t, kind, step);
    if (rt.inflight != 0 || rt.next_attempt > now) return;
    const TxnDef& def = *t.def;
    BranchCall call;
    call.id = ++next_call_id_;
    call.gid = def.gid;
    call.url = Url(t, kind, step);
    call.post = kind != OpKind::kCheckBack;
    if (kind == OpKind::kBranch) {
      call.body = t.state.branches[step].data;
    } else if (call.post) {
      call.body = def.payloads[step];
    }
    call.query = {{"gid", def.gid},
                  {"trans_type", std::string(TransTypeName(def.type))},
                  {"branch_id", WireBranchId(t, kind, step)},
                  {"op", std::string(WireOp(t, kind))}};
    call.headers = def.options.branch_headers;
    call.timeout_ms = def.options.request_timeout_s > 0 ? def.options.request_timeout_s * 1000
                                                        : config_.request_timeout_ms;
    rt.inflight = call.id;
    calls_.emplace(call.id, CallRef{def.gid, kind, step});
    ++stats_.branch_calls;
    pending_.calls.push_back(std::move(call));
  }

  void BeginAbort(Txn& t, std::string reason, TimeMs now) {
    t.state.status = GlobalStatus::kAborting;
    t.state.rollback_reason = std::move(reason);
    MarkDirty(t, now);
  }

  void Finish(Txn& t, GlobalStatus status, std::string reason, TimeMs now) {
    t.state.status = status;
    if (!reason.empty()) t.state.rollback_reason = std::move(reason);
    if (status == GlobalStatus::kSucceed) {
      t.state.finish_time = now;
      ++stats_.succeeded;
    } else {
      t.state.rollback_time = now;
      ++stats_.failed;
    }
    t.parked = false;
    MarkDirty(t, now);
    AnswerWaiters(t, now);
  }

  void AnswerWaiters(Txn& t, TimeMs now) {
    if (t.waiters.empty()) return;
    const GlobalStatus status = t.state.status;
    auto keep = t.waiters.begin();
    for (auto& w : t.waiters) {
      if (status == GlobalStatus::kSucceed) {
        pending_.replies.push_back(Success(w.request));
      } else if (status == GlobalStatus::kFailed) {
        pending_.replies.push_back(
            Failure(w.request, "transaction failed: " + t.state.rollback_reason));
      } else if (w.deadline <= now) {
        pending_.replies.push_back(
            Ongoing(w.request, "transaction is still " + std::string(GlobalStatusName(status))));
      } else {
        *keep++ = w;
      }
    }
    t.waiters.erase(keep, t.waiters.end());
  }

  // ---- timers ----

  // The earliest future time at which something time-driven can happen to t.
  std::optional<TimeMs> NextEvent(const Txn& t, TimeMs now) const {
    std::optional<TimeMs> next;
    auto consider = [&](TimeMs at) {
      if (at > now && (!next || at < *next)) next = at;
    };
    for (const auto& w : t.waiters) consider(w.deadline);
    if (IsFinal(t.state.status) || t.parked) return next;
    const TxnDef& def = *t.def;
    if (RegistersBranches(def.type) && t.state.status == GlobalStatus::kPrepared) {
      consider(def.create_time + PreparedTimeoutMs(t));
      return next;
    }
    if (def.type == TransType::kMsg && t.state.status == GlobalStatus::kPrepared) {
      int64_t timeout = def.options.timeout_to_fail_s > 0 ? def.options.timeout_to_fail_s * 1000
                                                          : config_.msg_timeout_ms;
      consider(std::max(def.create_time + timeout, t.check_rt.next_attempt));
      return next;
    }
    if (def.type == TransType::kSaga && t.state.status == GlobalStatus::kSubmitted &&
        def.options.timeout_to_fail_s > 0) {
      consider(def.create_time + def.options.timeout_to_fail_s * 1000);
    }
    for (const auto& rt : t.action_rt) {
      if (rt.inflight == 0) consider(rt.next_attempt);
    }
    for (const auto& rt : t.compensate_rt) {
      if (rt.inflight == 0) consider(rt.next_attempt);
    }
    return next;
  }

  void Schedule(Txn& t, TimeMs now) {
    Unschedule(t);
    auto at = NextEvent(t, now);
    if (!at) return;
    t.timer_at = *at;
    timers_.emplace(*at, &t);
  }

  // Makes the next Tick(at or later) process t.
  void ScheduleAt(Txn& t, TimeMs at) {
    Unschedule(t);
    t.timer_at = at;
    timers_.emplace(at, &t);
  }

  void Unschedule(Txn& t) {
    if (t.timer_at < 0) return;
    auto range = timers_.equal_range(t.timer_at);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == &t) {
        timers_.erase(it);
        break;
      }
    }
    t.timer_at = -1;
  }

  // ---- helpers ----

  OpRuntime& Runtime(Txn& t, OpKind kind, size_t step) {
    switch (kind) {
      case OpKind::kAction:
        return t.action_rt[step];
      case OpKind::kCompensate:
        return t.compensate_rt[step];
      case OpKind::kCheckBack:
        return t.check_rt;
      case OpKind::kBranch:
        return t.action_rt[step];
    }
    return t.check_rt;
  }

  // DTM's branch_id and op query parameters of a call.
  static std::string WireBranchId(const Txn& t, OpKind kind, size_t step) {
    if (kind == OpKind::kCheckBack) return "00";
    if (kind == OpKind::kBranch) return t.state.branches[step].branch_id;
    return BranchId(step);
  }

  static std::string_view WireOp(const Txn& t, OpKind kind) {
    if (kind != OpKind::kBranch) return OpName(kind);
    const bool commit = t.state.status == GlobalStatus::kSubmitted;
    if (t.def->type == TransType::kXa) return commit ? "commit" : "rollback";
    return commit ? "confirm" : "cancel";
  }

  static std::string Url(const Txn& t, OpKind kind, size_t step) {
    switch (kind) {
      case OpKind::kBranch: {
        const RegisteredBranch& b = t.state.branches[step];
        const bool cancel =
            t.state.status != GlobalStatus::kSubmitted && t.def->type == TransType::kTcc;
        return cancel ? b.cancel : b.confirm;
      }
      case OpKind::kAction:
        return t.def->steps[step].action;
      case OpKind::kCompensate:
        return t.def->steps[step].compensate;
      case OpKind::kCheckBack:
        return t.def->query_prepared;
    }
    return {};
  }

  void MarkDirty(Txn& t, TimeMs now) {
    t.state.update_time = now;
    if (t.dirty) return;
    t.dirty = true;
    dirty_.push_back(&t);
  }

  EngineConfig config_;
  TxnReader& reader_;
  Rand rand_;
  std::unordered_map<std::string, std::unique_ptr<Txn>> txns_;
  std::multimap<TimeMs, Txn*> timers_;
  std::unordered_map<CallId, CallRef> calls_;
  std::vector<Txn*> dirty_;
  std::vector<std::string> evict_;
  Ready pending_;
  bool outstanding_ = false;
  CallId next_call_id_ = 0;
  EngineStats stats_;
};

Engine::Engine(EngineConfig config, TxnReader& reader, uint64_t seed)
    : impl_(std::make_unique<Impl>(std::move(config), reader, seed)) {}
Engine::~Engine() = default;

void Engine::Recover(std::vector<TxnRecord> unfinished, TimeMs now) {
  impl_->Recover(std::move(unfinished), now);
}
void Engine::HandleRequest(RequestId id, TxnRequest request, TimeMs now) {
  impl_->HandleRequest(id, std::move(request), now);
}
void Engine::HandleResetCronTime(RequestId id, int64_t later_than_ms, int64_t limit, TimeMs now) {
  impl_->HandleResetCronTime(id, later_than_ms, limit, now);
}
void Engine::OnCallDone(CallId id, CallOutcome outcome, TimeMs now) {
  impl_->OnCallDone(id, outcome, now);
}
void Engine::Tick(TimeMs now) { impl_->Tick(now); }
bool Engine::HasReady() const { return impl_->HasReady(); }
Ready Engine::TakeReady() { return impl_->TakeReady(); }
void Engine::Advance() { impl_->Advance(); }
std::optional<TimeMs> Engine::NextWakeup() const { return impl_->NextWakeup(); }
EngineStats Engine::stats() const { return impl_->stats(); }

}  // namespace dtx::coord
