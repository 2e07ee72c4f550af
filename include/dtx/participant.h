// The participant side of the dtx C++ SDK: an embeddable HTTP server that maps dtxd's branch calls
// (saga action/compensate, tcc try/confirm/cancel, xa commit/rollback, msg actions and the msg
// check-back) to C++ functions, and answers with DTM's result codes.
//
//   sdk::BranchServer server({.port = 8081, .store_factory = [] { return OpenMyStore(); }});
//   server.HandleWithBarrier("/api/trans-out", [](sdk::LocalTx& tx, const sdk::BranchRequest& r) {
//     return tx.Exec("UPDATE account SET balance = balance - $1 WHERE id = $2", {...}).status();
//   });
//   server.HandleQueryPrepared("/api/query-prepared");
//   if (auto s = server.Start(); !s.ok()) ...
//
// Answers (what dtxd does with them):
//   BranchResult::Success()  200 {"dtm_result":"SUCCESS"}          the branch is done
//   BranchResult::Failure()  409 {"dtm_result":"FAILURE",...}      definite failure: roll back
//   BranchResult::Ongoing()  425 {"dtm_result":"ONGOING",...}      not yet: ask again later
//   BranchResult::Retry()    500 {"message":...}                   temporary error: retry
// A Status converts to a BranchResult: OK -> Success, kAborted -> Failure, everything else ->
// Retry (so a lost database connection makes dtxd retry the call rather than fail it).
//
// Handlers block (they run SQL): they run on a pool of worker threads, never on the io thread.
// Each worker thread owns its own BarrierStore, opened on first use by `store_factory` and
// reopened after a kUnavailable error, so handler code never shares a connection between threads.
//
// Thread-safety: register handlers before Start(); Start/Stop/port from any one thread; the purge
// counters from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dtx/barrier.h"
#include "dtx/status.h"
#include "dtx/xa.h"

namespace dtx::sdk {

// What a branch handler answers.
class BranchResult {
 public:
  enum class Kind { kSuccess, kFailure, kOngoing, kRetry };

  static BranchResult Success() { return BranchResult(Kind::kSuccess, ""); }
  static BranchResult Failure(std::string message) { return {Kind::kFailure, std::move(message)}; }
  static BranchResult Ongoing(std::string message) { return {Kind::kOngoing, std::move(message)}; }
  static BranchResult Retry(std::string message) { return {Kind::kRetry, std::move(message)}; }

  // OK -> Success, kAborted -> Failure, anything else -> Retry; the message is the status's.
  BranchResult(const Status& status);  // NOLINT: implicit by design

  Kind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  int http_status() const;  // 200, 409, 425, 500

 private:
  BranchResult(Kind kind, std::string message) : kind_(kind), message_(std::move(message)) {}
  Kind kind_;
  std::string message_;
};

// One incoming call.
struct BranchRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string body;
  // Parsed from the query (trans_type, gid, branch_id, op) for the barrier and branch handlers.
  BranchCallInfo info;

  std::optional<std::string> QueryParam(std::string_view name) const;
};

// A handler that does not run inside the barrier (it may open its own transaction).
using BranchFn = std::function<BranchResult(const BranchRequest&)>;
// Business code run inside the barrier's local transaction (see Barrier::Call).
using BarrierBusiness = std::function<Status(LocalTx&, const BranchRequest&)>;
// Opens one BarrierStore for one worker thread.
using StoreFactory = std::function<Result<std::unique_ptr<BarrierStore>>()>;
// Opens one XaResource for one worker thread (OpenPostgresXa, OpenMariaDbXa).
using XaFactory = std::function<Result<std::unique_ptr<XaResource>>()>;

// A plain HTTP answer for non-branch routes (health, balances, ...).
struct PlainResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};
using PlainFn = std::function<PlainResponse(const BranchRequest&)>;

struct BranchServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;       // 0 = ephemeral; see port() after Start
  int worker_threads = 4;  // 1..256
  // Requests waiting for a worker; when the queue is full a request is answered 503 at once.
  size_t max_queued_requests = 1024;  // 1..1,000,000
  size_t max_body_bytes = 1 << 20;    // > 0; larger bodies get 413
  // Opens the per-thread store used by HandleWithBarrier and HandleQueryPrepared.
  StoreFactory store_factory;
  // Automatic cleanup of barrier rows: every `barrier_purge_interval_s` one worker deletes rows
  // older than `barrier_purge_age_s` (by the database's clock) through its store. An interval of
  // 0 disables it; so does the lack of a store_factory. Both must be >= 0, the interval at most
  // ten years (315360000 s). Keep the age well above the longest global transaction: rows of a
  // running transaction must not go.
  int64_t barrier_purge_interval_s = 3600;
  int64_t barrier_purge_age_s = 7 * 24 * 3600;
  // XA routes (HandleXa): each worker opens its XaResource with `xa_factory`; prepared branches
  // are registered with the dtxd at `dtxd_url`, naming `advertised_url` + the phase-2 path as
  // their commit/rollback URL (default: "http://<host>:<bound port>"; set it when dtxd reaches
  // this server under another address). Every `xa_recovery_interval_s` (0 = never) one worker
  // runs RecoverInDoubt, finishing branches left prepared by a crash; the first run is right
  // after Start.
  XaFactory xa_factory;
  std::string dtxd_url;
  std::string advertised_url;
  int64_t xa_recovery_interval_s = 60;
};

class BranchServer {
 public:
  explicit BranchServer(BranchServerOptions options);
  ~BranchServer();  // Stop()
  BranchServer(const BranchServer&) = delete;
  BranchServer& operator=(const BranchServer&) = delete;

  // Routes are matched on the exact (percent-decoded) path, for any method. Register them before
  // Start(): a path that does not start with '/', a path registered twice or an empty function is
  // reported by Start() (kInvalidArgument); a registration after Start() is ignored.
  //
  // A branch route: the query must carry a valid gid, trans_type, branch_id and op (else 400 and
  // `fn` is not called). An exception thrown by `fn` is answered 500 (dtxd retries the call).
  BranchServer& Handle(std::string path, BranchFn fn);
  // A branch route whose business runs inside Barrier::Call on the worker's store: empty
  // compensations, duplicates and hanging tries are answered without calling `fn` (a refused
  // hanging try answers FAILURE).
  BranchServer& HandleWithBarrier(std::string path, BarrierBusiness fn);
  // The two-phase message check-back: answers from sdk::QueryPrepared (SUCCESS, FAILURE, or
  // Retry when the database cannot be asked). Needs only `gid` in the query (1..128 printable
  // ASCII characters without spaces, as dtxd checks it; else 400).
  BranchServer& HandleQueryPrepared(std::string path);
  // Any other route (no query requirements); runs on a worker too. An exception is answered 500.
  BranchServer& HandlePlain(std::string path, PlainFn fn);
  // An XA branch in DTM's style (see xa.h and Xa::CallBranch in client.h). `phase1_path` takes
  // trans_type=xa&op=action: it runs `fn` inside XaResource::RunAndPrepare on the worker's
  // resource, then registers the prepared branch with dtxd (callback: advertised_url +
  // `phase2_path`) and answers SUCCESS; a refused or failed business answers FAILURE (nothing
  // stays prepared), and a failed registration rolls the branch back and answers FAILURE.
  // `phase2_path` takes op=commit or op=rollback and answers SUCCESS once done, or "retry" (never
  // FAILURE: the second phase must finish). Needs xa_factory and dtxd_url.
  BranchServer& HandleXa(std::string phase1_path, std::string phase2_path, BarrierBusiness fn);

  // Binds and starts the io thread and the workers. Unknown paths answer 404, a full queue 503.
  // Errors: kUnavailable (bind failed), kInvalidArgument (bad options or routes, or a barrier
  // route without a store_factory), kFailedPrecondition (already started, or stopped: a server
  // runs once).
  Status Start();
  // The bound port (after a successful Start; 0 before).
  uint16_t port() const;
  // Stops accepting and closes the connections, lets running handlers finish (their answers are
  // dropped), drops queued requests without running them, joins all threads. dtxd retries what
  // got no answer. Idempotent. REQUIRES: not called from a handler (it joins the workers).
  void Stop();

  // The automatic purge: rows removed so far, and the last run's error (OK if none).
  uint64_t barrier_rows_purged() const;
  Status last_purge_error() const;
  // The automatic XA recovery: runs completed so far, and the last run's error (OK if none).
  uint64_t xa_recovery_runs() const;
  Status last_xa_recovery_error() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Periodic barrier cleanup for applications that do not use BranchServer: a thread that runs
// PurgeBarriers(store, age_s) every interval_s on the store it owns, until destroyed (the
// destructor wakes it at once; it waits only for a purge already running).
// Thread-safety: all methods may be called from any thread.
class BarrierPurger {
 public:
  // REQUIRES: store != nullptr, interval_s in 1..315360000 (ten years), age_s >= 0 (else no thread
  // is started, status() says why with kInvalidArgument and PurgeNow returns that status). The
  // first background run happens interval_s after construction.
  BarrierPurger(std::unique_ptr<BarrierStore> store, int64_t interval_s, int64_t age_s);
  ~BarrierPurger();
  BarrierPurger(const BarrierPurger&) = delete;
  BarrierPurger& operator=(const BarrierPurger&) = delete;

  // Runs one purge now on the caller's thread (serialised with the background runs); counted in
  // rows_purged() and last_error() like a background run. Returns the rows removed.
  Result<size_t> PurgeNow();
  const Status& status() const { return status_; }
  // Rows removed so far, and the last run's error (OK if none).
  uint64_t rows_purged() const;
  Status last_error() const;

  class Impl;

 private:
  Status status_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtx::sdk
