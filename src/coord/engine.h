// The transaction engine: an I/O-free, clock-free state machine that decides what the
// coordinator does. Events go in (API requests, branch call outcomes, ticks); a Ready comes
// out saying what to persist, which branches to call, which requests to answer.
//
// The contract with whoever drives it (the asio runtime, or the simulator):
//   1. Feed events: Handle*(), OnCallDone(), Tick(). Each takes `now` from the driver's clock.
//   2. When HasReady(), take the Ready, make its `writes` durable as ONE synced batch, and only
//      then perform its `calls`, send its `replies` and `alerts`. A crash before the batch is
//      durable must lose the batch's effects entirely (the engine's successor never sees them).
//   3. Call Advance() once the batch is durable. Only one Ready is outstanding at a time; events
//      may keep arriving while it is being persisted and go into the next Ready.
//   4. Deliver every call's outcome with OnCallDone() (a timeout or transport error is kError).
// The engine never acts on state that is not yet durable: every call and reply in a Ready is
// justified by writes in that Ready or earlier ones.
//
// After a restart, construct a new Engine and Recover() it with the store's unfinished records.
//
// Thread-safety: none; drive it from a single thread or strand.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/rand.h"
#include "base/status.h"
#include "coord/request.h"
#include "coord/txn.h"

namespace dtx::coord {

struct EngineConfig {
  // Base retry interval after a temporary branch error (DTM's RetryInterval), doubled per
  // consecutive error up to max_retry_interval_ms, with +-25% jitter.
  int64_t retry_interval_ms = 10'000;
  int64_t max_retry_interval_ms = 300'000;
  // Interval between polls of a branch that answered ONGOING.
  int64_t ongoing_interval_ms = 10'000;
  // How long a msg may stay prepared before dtxd checks it back (DTM's TimeoutToFail).
  int64_t msg_timeout_ms = 35'000;
  // How long a tcc or xa transaction may stay prepared before dtxd aborts it (DTM's
  // TimeoutToFail), unless the transaction sets timeout_to_fail.
  int64_t prepared_timeout_ms = 35'000;
  // Per-call HTTP timeout when the transaction sets no request_timeout.
  int64_t request_timeout_ms = 3'000;
  // How long a wait_result submit waits before answering ONGOING.
  int64_t wait_result_timeout_ms = 10'000;
  // Consecutive temporary errors of one branch operation before an alert (0 = never).
  int64_t alert_after_failures = 5;
  // Default retry_limit (0 = unlimited). See docs/dtm-compatibility.md for what happens at it.
  int64_t retry_limit = 0;
  Limits limits;
};

using RequestId = uint64_t;
using CallId = uint64_t;

// An HTTP call to a participant (or a msg check-back).
struct BranchCall {
  CallId id = 0;
  std::string gid;
  std::string url;
  bool post = true;  // POST with body, or GET without (query_prepared)
  std::string body;
  // Query parameters appended to url: gid, trans_type, branch_id, op.
  std::vector<std::pair<std::string, std::string>> query;
  std::map<std::string, std::string> headers;
  int64_t timeout_ms = 3'000;
};

// The participant's answer, classified by DTM's rules (see ClassifyResponse()).
enum class CallOutcome { kSuccess, kFailure, kOngoing, kError };

// DTM's rules: 425 or a body containing "ONGOING" -> kOngoing; 409 or a body containing
// "FAILURE" -> kFailure; any other non-200 -> kError; 200 -> kSuccess.
CallOutcome ClassifyResponse(int http_status, std::string_view body);

// A reply to an API request: HTTP status plus a JSON body.
struct Reply {
  RequestId request = 0;
  int http_status = 200;
  std::string body;
};

// A branch operation kept failing; the runtime logs it and posts it to the alert webhook.
struct Alert {
  std::string gid;
  std::string branch_id;
  std::string op;
  std::string url;
  int64_t consecutive_failures = 0;
  std::string message;
};

// One transaction's new durable state. `def` is always set (it names the transaction); `create`
// marks the first write, the only one whose def the store must persist.
struct TxnWrite {
  std::shared_ptr<const TxnDef> def;  // never null
  bool create = false;
  TxnState state;
};

struct Ready {
  std::vector<TxnWrite> writes;  // persist first, as one synced batch
  std::vector<BranchCall> calls;
  std::vector<Reply> replies;
  std::vector<Alert> alerts;
  bool empty() const {
    return writes.empty() && calls.empty() && replies.empty() && alerts.empty();
  }
};

// Read access to durable records of transactions the engine does not hold in memory (finished
// ones). Reads only; must reflect every batch the engine has seen Advance()d.
class TxnReader {
 public:
  virtual ~TxnReader() = default;
  virtual Result<std::optional<TxnRecord>> Load(const std::string& gid) = 0;
};

struct EngineStats {
  uint64_t active = 0;  // transactions held in memory
  uint64_t inflight_calls = 0;
  uint64_t started = 0;  // created since start
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t branch_calls = 0;
  uint64_t branch_errors = 0;  // kError outcomes
};

class Engine {
 public:
  Engine(EngineConfig config, TxnReader& reader, uint64_t seed);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Takes over unfinished transactions after a restart. Work resumes on the next Tick().
  void Recover(std::vector<TxnRecord> unfinished, TimeMs now);

  // An API request that was parsed and validated by ParseTxnRequest(). Its reply arrives in a
  // later Ready (possibly much later, for wait_result).
  void HandleRequest(RequestId id, TxnRequest request, TimeMs now);

  // DTM's resetNextCronTime: transactions whose next attempt is more than `later_than_ms` away
  // (and parked ones) are retried now; at most `limit` of them. Replies with succeed_count and
  // has_remaining.
  void HandleResetCronTime(RequestId id, int64_t later_than_ms, int64_t limit, TimeMs now);

  // The outcome of a call from an earlier Ready. Unknown or stale ids are ignored.
  void OnCallDone(CallId id, CallOutcome outcome, TimeMs now);

  // Time passes: fires due retries, timeouts and check-backs.
  void Tick(TimeMs now);

  bool HasReady() const;
  // REQUIRES: HasReady() and no Ready outstanding.
  Ready TakeReady();
  // The last Ready's writes are durable (and its calls and replies were dispatched).
  void Advance();

  // When the next Tick() has work to do, if ever.
  std::optional<TimeMs> NextWakeup() const;

  EngineStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtx::coord
