// The client side of the dtx C++ SDK: builders that drive global transactions against dtxd (or
// any DTM-compatible coordinator) over its HTTP protocol (`/api/dtmsvr/...`).
//
// Every call is synchronous: it blocks until dtxd answers or ClientOptions::timeout_ms passes.
// Errors are Status values, mapped from dtxd's answers the way DTM's SDKs classify them:
//   kInvalidArgument    bad input caught before sending anything (empty gid, bad URL, ...), or a
//                       400 from dtxd (its message is kept); never retry.
//   kAborted            409 or a body containing FAILURE: the transaction (or a TCC try) failed.
//   kUnavailable        425 or a body containing ONGOING (message "ongoing ..."): still running;
//                       or a transport error / any other status: temporary, retry the same call.
//   kDeadlineExceeded   the call timed out after the request was sent: the outcome is unknown.
// dtxd's calls are idempotent (same gid, same content), so retrying a call is safe.
//
// Thread-safety: DtxClient is thread-safe (its calls may run from several threads). A Saga, Msg,
// Tcc or Xa object is used from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dtx/status.h"

namespace dtx::sdk {

struct ClientOptions {
  // Bound of every call to dtxd (and of a TCC try). A submit with WaitResult waits for the
  // whole transaction, up to dtxd's wait_result_timeout_ms: keep this above that.
  int64_t timeout_ms = 10'000;
};

// A connection to one dtxd. It owns an io thread and a keep-alive connection pool.
class DtxClient {
 public:
  // `dtxd_url` is the base URL, e.g. "http://127.0.0.1:36789" (a trailing '/' is ignored). An
  // invalid URL or a non-positive timeout does not throw: status() reports it and every call
  // returns it (kInvalidArgument) without sending anything.
  explicit DtxClient(std::string dtxd_url, ClientOptions options = {});
  ~DtxClient();
  DtxClient(const DtxClient&) = delete;
  DtxClient& operator=(const DtxClient&) = delete;

  // OK, or why the constructor's arguments are unusable.
  const Status& status() const { return status_; }
  const std::string& url() const { return base_url_; }

  // A fresh gid from dtxd (`newGid`).
  Result<std::string> NewGid();
  // `query?gid=`: {"transaction": {...} or null, "branches": [...]}.
  Result<nlohmann::json> Query(const std::string& gid);

  // POSTs `body` to /api/dtmsvr/<route> and maps the answer (see the file comment).
  Status CallApi(const std::string& route, const nlohmann::json& body);

  // The answer of one HTTP call, or its transport error.
  struct Reply {
    int http_status = 0;
    std::string body;
  };
  // One blocking HTTP call to any absolute http URL (used for TCC tries).
  Result<Reply> Http(const std::string& method, const std::string& url, std::string body);

 private:
  class Io;
  Status status_;
  std::string base_url_;
  ClientOptions options_;
  std::unique_ptr<Io> io_;
};

// Maps an HTTP answer to a Status as described in the file comment (200 without FAILURE or
// ONGOING in the body is OK). `what` names the call in error messages.
Status StatusFromHttp(int http_status, const std::string& body, const std::string& what);

// Checks a gid the way dtxd does: 1..128 printable ASCII characters without spaces.
Status ValidateGid(const std::string& gid);
// Checks an absolute http:// URL with a host (https is refused: dtxd cannot call it yet).
Status ValidateUrl(const std::string& url, const std::string& what);

// A saga: steps with an action and a compensation, submitted in one call. Builder methods
// record the first invalid argument; Submit then returns it without sending anything.
class Saga {
 public:
  Saga(DtxClient& client, std::string gid);

  // Adds a step. `compensate_url` may be empty (nothing to undo). `payload` is sent as the body
  // of both calls (usually JSON).
  Saga& Add(const std::string& action_url, const std::string& compensate_url, std::string payload);
  // Runs steps concurrently, subject to AddBranchOrder.
  Saga& EnableConcurrent();
  // Step `step` (0-based) runs only after every step in `before`. Needs EnableConcurrent.
  Saga& AddBranchOrder(int step, std::vector<int> before);
  // Submit answers only when the saga finished: OK if it succeeded, kAborted if it failed,
  // kUnavailable ("ongoing") if it is still running after dtxd's wait_result_timeout_ms.
  Saga& WaitResult(bool wait);
  // Options in seconds (0 = dtxd's default). Negative values are invalid.
  Saga& TimeoutToFail(int64_t seconds);
  Saga& RetryInterval(int64_t seconds);
  Saga& RequestTimeout(int64_t seconds);
  // A header dtxd adds to every branch call.
  Saga& BranchHeader(const std::string& name, const std::string& value);

  // The body Submit sends (for logging and tests).
  nlohmann::json Body() const;
  Status Submit();

 private:
  DtxClient& client_;
  std::string gid_;
  Status error_;
  nlohmann::json steps_ = nlohmann::json::array();
  std::vector<std::string> payloads_;
  bool concurrent_ = false;
  std::map<int, std::vector<int>> orders_;
  bool wait_result_ = false;
  int64_t timeout_to_fail_ = 0;
  int64_t retry_interval_ = 0;
  int64_t request_timeout_ = 0;
  std::map<std::string, std::string> branch_headers_;
};

// A two-phase message: Prepare (with the check-back URL), the local transaction, Submit; dtxd
// then delivers every step in order until each succeeds.
class Msg {
 public:
  Msg(DtxClient& client, std::string gid);

  Msg& Add(const std::string& action_url, std::string payload);

  // Registers the prepared message; `query_prepared_url` answers dtxd's check-back (see
  // sdk::QueryPrepared in barrier.h).
  Status Prepare(const std::string& query_prepared_url);
  // Asks dtxd to deliver the steps (also valid without a Prepare: a one-shot message).
  Status Submit();
  // Drops a prepared message.
  Status Abort();

  // Prepare, run `local_tx` (the application's local transaction, e.g. through
  // sdk::CallMsgLocal with the barrier), then: Submit if it returned OK; Abort if it returned
  // kAborted (a definite failure; the result is still kAborted); otherwise return its status
  // and leave the decision to dtxd's check-back of `query_prepared_url`. A failing Prepare
  // returns before `local_tx` runs.
  Status DoAndSubmit(const std::string& query_prepared_url,
                     const std::function<Status()>& local_tx);

  nlohmann::json Body() const;

 private:
  DtxClient& client_;
  std::string gid_;
  Status error_;
  nlohmann::json steps_ = nlohmann::json::array();
  std::vector<std::string> payloads_;
  std::string query_prepared_;
};

// A TCC transaction. Usage:
//   Status s = Tcc::Run(client, gid, [&](Tcc& tcc) -> Status {
//     auto r = tcc.CallBranch(payload, try_url, confirm_url, cancel_url);
//     return r.status();   // OK or the try's error
//   });
class Tcc {
 public:
  // Prepares the transaction, runs `body`, then submits (dtxd confirms every branch) if it
  // returned OK, or aborts (dtxd cancels every registered branch) otherwise. A failed body means
  // the transaction is never submitted, so its result is a definite failure: kAborted carrying the
  // body's error (kInvalidArgument stays as is); a failed abort call is appended to the message
  // (dtxd's prepared timeout aborts the transaction anyway). Errors of prepare and submit are
  // returned as they are (see the file comment).
  static Status Run(DtxClient& client, const std::string& gid,
                    const std::function<Status(Tcc&)>& body);

  // Registers the next branch ("01", "02", ...) with its confirm/cancel URLs and `payload` as
  // their body, then POSTs the try: try_url?gid=..&trans_type=tcc&branch_id=..&op=try with the
  // payload. Returns the try's response body; a FAILURE/409 answer is kAborted, other errors as
  // in the file comment.
  Result<std::string> CallBranch(const std::string& payload, const std::string& try_url,
                                 const std::string& confirm_url, const std::string& cancel_url);

  const std::string& gid() const { return gid_; }

 private:
  Tcc(DtxClient& client, std::string gid) : client_(client), gid_(std::move(gid)) {}
  DtxClient& client_;
  std::string gid_;
  int next_branch_ = 1;
};

// An XA global transaction. Two styles:
//  - DTM's (recommended): Xa::Run prepares the global transaction, runs `body`, which calls each
//    participant with CallBranch; the participant runs its local branch, prepares it (see
//    sdk::XaResource in xa.h) and registers it with dtxd itself, giving its own commit/rollback
//    URL. Run then submits (dtxd commits every registered branch) or aborts (rolls them back).
//      Status s = Xa::Run(client, gid, [&](Xa& xa) -> Status {
//        return xa.CallBranch(payload, "http://svc-a/xa/debit").status();
//      });
//  - Manual: Prepare, RegisterBranch for branches the application prepared itself, Submit/Abort.
class Xa {
 public:
  Xa(DtxClient& client, std::string gid);

  // Prepare, `body`, then Submit if it returned OK, else Abort; results as for Tcc::Run.
  static Status Run(DtxClient& client, const std::string& gid,
                    const std::function<Status(Xa&)>& body);

  // Calls the next branch ("01", "02", ...): POSTs `payload` to
  // url?gid=..&trans_type=xa&branch_id=..&op=action. The participant prepares its local branch
  // and registers it with dtxd before answering. Returns the response body; FAILURE/409 is
  // kAborted, other errors as in the file comment.
  Result<std::string> CallBranch(const std::string& payload, const std::string& url);

  Status Prepare();
  // Registers the next branch ("01", "02", ...): dtxd calls `url` with op=commit or
  // op=rollback and `data` as the body. Returns the branch id.
  Result<std::string> RegisterBranch(const std::string& url, const std::string& data);
  Status Submit();
  Status Abort();

 private:
  DtxClient& client_;
  std::string gid_;
  Status error_;
  int next_branch_ = 1;
};

}  // namespace dtx::sdk
