#include <utility>  // before Asio, see the project notes on Boost 1.74

#include "dtx/participant.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "dtx/client.h"
#include "runtime/http.h"

namespace dtx::sdk {

namespace asio = boost::asio;
using nlohmann::json;

BranchResult::BranchResult(const Status& status)
    : kind_(status.ok()                             ? Kind::kSuccess
            : status.code() == StatusCode::kAborted ? Kind::kFailure
                                                    : Kind::kRetry),
      message_(status.message()) {}

int BranchResult::http_status() const {
  switch (kind_) {
    case Kind::kSuccess:
      return 200;
    case Kind::kFailure:
      return 409;
    case Kind::kOngoing:
      return 425;
    case Kind::kRetry:
      return 500;
  }
  return 500;
}

std::optional<std::string> BranchRequest::QueryParam(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

namespace {

runtime::HttpResponse JsonResponse(int status, const json& body) {
  runtime::HttpResponse r;
  r.status = status;
  // Replacement instead of an exception: a handler's message may hold invalid UTF-8.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

runtime::HttpResponse MessageResponse(int status, const std::string& message) {
  return JsonResponse(status, json{{"message", message}});
}

runtime::HttpResponse ToHttp(const BranchResult& result) {
  switch (result.kind()) {
    case BranchResult::Kind::kSuccess:
      return JsonResponse(200, json{{"dtm_result", "SUCCESS"}});
    case BranchResult::Kind::kFailure:
      return JsonResponse(409, json{{"dtm_result", "FAILURE"}, {"message", result.message()}});
    case BranchResult::Kind::kOngoing:
      return JsonResponse(425, json{{"dtm_result", "ONGOING"}, {"message", result.message()}});
    case BranchResult::Kind::kRetry:
      break;
  }
  return MessageResponse(500, result.message());
}

// An IPv6 literal needs brackets inside a URL.
std::string HostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string CurrentExceptionMessage() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

// A worker's lazily opened store and XA resource.
class WorkerStore {
 public:
  WorkerStore(const StoreFactory& factory, const XaFactory& xa_factory)
      : factory_(factory), xa_factory_(xa_factory) {}

  Result<BarrierStore*> Get() {
    if (store_) return store_.get();
    if (!factory_) return FailedPrecondition("no store_factory configured");
    auto opened = factory_();
    if (!opened.ok()) {
      return Status(opened.status().code(),
                    "opening the barrier store: " + opened.status().message());
    }
    if (!*opened) return Internal("opening the barrier store: store_factory returned null");
    store_ = std::move(*opened);
    return store_.get();
  }

  // A lost connection is not repaired by every backend: the next call opens a fresh store.
  void Note(const Status& s) {
    if (s.code() == StatusCode::kUnavailable) store_.reset();
  }

  Result<XaResource*> Xa() {
    if (xa_) return xa_.get();
    if (!xa_factory_) return FailedPrecondition("no xa_factory configured");
    auto opened = xa_factory_();
    if (!opened.ok()) {
      return Status(opened.status().code(),
                    "opening the XA resource: " + opened.status().message());
    }
    if (!*opened) return Internal("opening the XA resource: xa_factory returned null");
    xa_ = std::move(*opened);
    return xa_.get();
  }
  void NoteXa(const Status& s) {
    if (s.code() == StatusCode::kUnavailable) xa_.reset();
  }

 private:
  const StoreFactory& factory_;
  const XaFactory& xa_factory_;
  std::unique_ptr<BarrierStore> store_;
  std::unique_ptr<XaResource> xa_;
};

// Ten years: far beyond any useful interval, far below a steady_clock overflow.
constexpr int64_t kMaxPurgeIntervalS = 10LL * 365 * 24 * 3600;

enum class RouteKind { kBranch, kBarrier, kQueryPrepared, kPlain, kXaPhase1, kXaPhase2 };

struct Route {
  RouteKind kind;
  BranchFn branch;
  BarrierBusiness barrier;  // also the business of kXaPhase1
  PlainFn plain;
  std::string phase2_path;  // kXaPhase1: where dtxd calls back
};

Status CheckOptions(const BranchServerOptions& o) {
  if (o.worker_threads < 1 || o.worker_threads > 256) {
    return InvalidArgument("worker_threads must be in 1..256, got " +
                           std::to_string(o.worker_threads));
  }
  if (o.max_queued_requests < 1 || o.max_queued_requests > 1'000'000) {
    return InvalidArgument("max_queued_requests must be in 1..1000000, got " +
                           std::to_string(o.max_queued_requests));
  }
  if (o.max_body_bytes == 0) return InvalidArgument("max_body_bytes must be > 0");
  if (o.host.empty()) return InvalidArgument("host is empty");
  if (o.barrier_purge_interval_s < 0 || o.barrier_purge_interval_s > kMaxPurgeIntervalS) {
    return InvalidArgument("barrier_purge_interval_s must be in 0.." +
                           std::to_string(kMaxPurgeIntervalS) + ", got " +
                           std::to_string(o.barrier_purge_interval_s));
  }
  if (o.barrier_purge_age_s < 0) {
    return InvalidArgument("barrier_purge_age_s must be >= 0, got " +
                           std::to_string(o.barrier_purge_age_s));
  }
  if (o.xa_recovery_interval_s < 0 || o.xa_recovery_interval_s > kMaxPurgeIntervalS) {
    return InvalidArgument("xa_recovery_interval_s must be in 0.." +
                           std::to_string(kMaxPurgeIntervalS) + ", got " +
                           std::to_string(o.xa_recovery_interval_s));
  }
  if (!o.advertised_url.empty())
    DTX_RETURN_IF_ERROR(ValidateUrl(o.advertised_url, "advertised_url"));
  return Status::Ok();
}

}  // namespace

class BranchServer::Impl {
 public:
  explicit Impl(BranchServerOptions options) : options_(std::move(options)) {}
  ~Impl() { Stop(); }

  void Add(std::string path, Route route) {
    std::lock_guard lock(mu_);
    if (state_ != State::kNew) return;
    if (!route_error_.ok()) return;
    if (path.empty() || path.front() != '/') {
      route_error_ = InvalidArgument("route path '" + path + "' must start with '/'");
    } else if (routes_.count(path) != 0) {
      route_error_ = InvalidArgument("route path '" + path + "' is registered twice");
    } else if ((route.kind == RouteKind::kBranch && !route.branch) ||
               ((route.kind == RouteKind::kBarrier || route.kind == RouteKind::kXaPhase1) &&
                !route.barrier) ||
               (route.kind == RouteKind::kPlain && !route.plain)) {
      route_error_ = InvalidArgument("route '" + path + "' has an empty handler");
    } else {
      routes_.emplace(std::move(path), std::move(route));
    }
  }

  Status Start() {
    std::lock_guard lock(mu_);
    if (state_ != State::kNew) {
      return FailedPrecondition(state_ == State::kRunning ? "BranchServer is already started"
                                                          : "BranchServer was stopped");
    }
    DTX_RETURN_IF_ERROR(CheckOptions(options_));
    DTX_RETURN_IF_ERROR(route_error_);
    bool has_xa = false;
    for (const auto& [path, route] : routes_) {
      if ((route.kind == RouteKind::kBarrier || route.kind == RouteKind::kQueryPrepared) &&
          !options_.store_factory) {
        return InvalidArgument("route '" + path + "' needs a store_factory");
      }
      if (route.kind == RouteKind::kXaPhase1 || route.kind == RouteKind::kXaPhase2) {
        if (!options_.xa_factory)
          return InvalidArgument("route '" + path + "' needs an xa_factory");
        if (options_.dtxd_url.empty())
          return InvalidArgument("route '" + path + "' needs a dtxd_url");
        has_xa = true;
      }
    }
    if (has_xa) {
      dtxd_ = std::make_unique<DtxClient>(options_.dtxd_url);
      if (!dtxd_->status().ok()) {
        return InvalidArgument("dtxd_url: " + dtxd_->status().message());
      }
    }
    runtime::HttpServerOptions http;
    http.host = options_.host;
    http.port = options_.port;
    http.max_body_bytes = options_.max_body_bytes;
    auto server = runtime::HttpServer::Start(
        io_, http, [this](runtime::HttpRequest&& req, runtime::Responder respond) {
          OnRequest(std::move(req), std::move(respond));
        });
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    port_ = server_->port();
    advertised_ = options_.advertised_url.empty()
                      ? "http://" + HostForUrl(options_.host) + ":" + std::to_string(port_.load())
                      : options_.advertised_url;
    while (!advertised_.empty() && advertised_.back() == '/') advertised_.pop_back();
    state_ = State::kRunning;
    for (int i = 0; i < options_.worker_threads; ++i) {
      workers_.emplace_back([this] { WorkerLoop(); });
    }
    if (options_.barrier_purge_interval_s > 0 && options_.store_factory) ArmPurgeTimer();
    if (has_xa && options_.xa_recovery_interval_s > 0) ArmRecoveryTimer(0);
    io_thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      if (state_ != State::kRunning) {
        state_ = State::kStopped;
        return;
      }
      state_ = State::kStopped;
    }
    // Workers stop taking jobs before the listener closes, so once a client sees the port closed
    // no queued request starts any more.
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    server_->Stop();
    for (auto& w : workers_) w.join();
    workers_.clear();
    // Their responders must go while the io_context still exists; the stopped server ignores them.
    queue_.clear();
    work_.reset();
    io_.stop();
    io_thread_.join();
    server_.reset();
  }

  uint16_t port() const { return port_.load(); }

  uint64_t rows_purged() const { return rows_purged_.load(); }
  uint64_t recovery_runs() const { return recovery_runs_.load(); }
  Status last_recovery_error() const {
    std::lock_guard lock(purge_mu_);
    return last_recovery_error_;
  }
  Status last_purge_error() const {
    std::lock_guard lock(purge_mu_);
    return last_purge_error_;
  }

 private:
  enum class State { kNew, kRunning, kStopped };
  using Job = std::function<void(WorkerStore&)>;

  // Runs on the io thread: only cheap work here, the handlers run on the workers.
  void OnRequest(runtime::HttpRequest&& http, runtime::Responder respond) {
    auto it = routes_.find(http.path);
    if (it == routes_.end()) {
      respond(MessageResponse(404, "no route for path '" + http.path + "'"));
      return;
    }
    const Route& route = it->second;
    BranchRequest req;
    req.method = std::move(http.method);
    req.path = std::move(http.path);
    req.query = std::move(http.query);
    req.body = std::move(http.body);
    if (route.kind == RouteKind::kBranch || route.kind == RouteKind::kBarrier ||
        route.kind == RouteKind::kXaPhase1 || route.kind == RouteKind::kXaPhase2) {
      auto info = BranchCallInfo::FromQuery(req.query);
      if (!info.ok()) {
        respond(MessageResponse(400, info.status().message()));
        return;
      }
      req.info = std::move(*info);
    } else if (route.kind == RouteKind::kQueryPrepared) {
      auto gid = req.QueryParam("gid");
      if (!gid) {
        respond(MessageResponse(400, "query parameter 'gid' is missing"));
        return;
      }
      if (Status s = ValidateGid(*gid); !s.ok()) {
        respond(MessageResponse(400, s.message()));
        return;
      }
      req.info.gid = *gid;
    }
    Job job = [this, &route, req = std::move(req), respond](WorkerStore& store) {
      respond(Run(route, req, store));
    };
    if (!Enqueue(std::move(job))) {
      respond(MessageResponse(503, "too many requests waiting for a worker (" +
                                       std::to_string(options_.max_queued_requests) + ")"));
    }
  }

  bool Enqueue(Job job) {
    {
      std::lock_guard lock(queue_mu_);
      if (stopping_ || queue_.size() >= options_.max_queued_requests) return false;
      queue_.push_back(std::move(job));
    }
    queue_cv_.notify_one();
    return true;
  }

  runtime::HttpResponse Run(const Route& route, const BranchRequest& req, WorkerStore& store) {
    try {
      switch (route.kind) {
        case RouteKind::kBranch:
          return ToHttp(route.branch(req));
        case RouteKind::kBarrier:
          return ToHttp(RunBarrier(route, req, store));
        case RouteKind::kQueryPrepared:
          return ToHttp(RunQueryPrepared(req, store));
        case RouteKind::kXaPhase1:
          return ToHttp(RunXaPhase1(route, req, store));
        case RouteKind::kXaPhase2:
          return ToHttp(RunXaPhase2(req, store));
        case RouteKind::kPlain: {
          PlainResponse plain = route.plain(req);
          runtime::HttpResponse r;
          r.status = plain.status;
          r.content_type = std::move(plain.content_type);
          r.body = std::move(plain.body);
          return r;
        }
      }
    } catch (...) {
      return MessageResponse(500,
                             "handler of '" + req.path + "' threw: " + CurrentExceptionMessage());
    }
    return MessageResponse(500, "unknown route kind");
  }

  static BranchResult RunBarrier(const Route& route, const BranchRequest& req, WorkerStore& ws) {
    auto store = ws.Get();
    if (!store.ok()) {
      ws.Note(store.status());
      return BranchResult::Retry(store.status().message());
    }
    Barrier barrier(req.info);
    Status s = barrier.Call(**store, [&](LocalTx& tx) { return route.barrier(tx, req); });
    ws.Note(s);
    return BranchResult(s);
  }

  static BranchResult RunQueryPrepared(const BranchRequest& req, WorkerStore& ws) {
    auto store = ws.Get();
    if (!store.ok()) {
      ws.Note(store.status());
      return BranchResult::Retry(store.status().message());
    }
    Status s = QueryPrepared(**store, req.info.gid);
    ws.Note(s);
    return BranchResult(s);
  }

  BranchResult RunXaPhase1(const Route& route, const BranchRequest& req, WorkerStore& ws) {
    if (req.info.trans_type != kTransXa || req.info.op != kOpAction) {
      return BranchResult::Failure("an XA branch call needs trans_type=xa&op=action");
    }
    auto xa = ws.Xa();
    if (!xa.ok()) {
      ws.NoteXa(xa.status());
      return BranchResult::Retry(xa.status().message());
    }
    const XaBranch branch{req.info.gid, req.info.branch_id};
    Status s = (*xa)->RunAndPrepare(branch, [&](LocalTx& tx) { return route.barrier(tx, req); });
    ws.NoteXa(s);
    if (!s.ok()) return BranchResult(s);
    // DTM's XA: the participant registers its prepared branch itself.
    Status reg = dtxd_->CallApi("registerBranch", json{{"gid", branch.gid},
                                                       {"trans_type", "xa"},
                                                       {"branch_id", branch.branch_id},
                                                       {"data", req.body},
                                                       {"url", advertised_ + route.phase2_path}});
    if (!reg.ok()) {
      // The initiator sees FAILURE and aborts, so dtxd never commits this branch: undo it now
      // (RecoverInDoubt finishes it if this fails too).
      Status undo = (*xa)->Rollback(branch);
      ws.NoteXa(undo);
      return BranchResult::Failure("registerBranch: " + reg.ToString());
    }
    return BranchResult::Success();
  }

  static BranchResult RunXaPhase2(const BranchRequest& req, WorkerStore& ws) {
    if (req.info.trans_type != kTransXa ||
        (req.info.op != kOpCommit && req.info.op != kOpRollback)) {
      return BranchResult::Failure("an XA second phase needs trans_type=xa&op=commit|rollback");
    }
    auto xa = ws.Xa();
    if (!xa.ok()) {
      ws.NoteXa(xa.status());
      return BranchResult::Retry(xa.status().message());
    }
    const XaBranch branch{req.info.gid, req.info.branch_id};
    Status s = req.info.op == kOpCommit ? (*xa)->Commit(branch) : (*xa)->Rollback(branch);
    ws.NoteXa(s);
    // The second phase must finish: any error is retried by dtxd, never a FAILURE.
    if (!s.ok()) return BranchResult::Retry(s.ToString());
    return BranchResult::Success();
  }

  // On the io thread, like the purge timer.
  void ArmRecoveryTimer(int64_t seconds) {
    recovery_timer_.expires_after(std::chrono::seconds(seconds));
    recovery_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (!recovery_pending_.exchange(true)) {
        if (!Enqueue([this](WorkerStore& store) { Recover(store); })) recovery_pending_ = false;
      }
      ArmRecoveryTimer(options_.xa_recovery_interval_s);
    });
  }

  void Recover(WorkerStore& ws) {
    recovery_pending_ = false;
    Status error;
    try {
      auto xa = ws.Xa();
      if (xa.ok()) {
        auto report = RecoverInDoubt(**xa, *dtxd_);
        error = report.ok() ? Status::Ok() : report.status();
      } else {
        error = xa.status();
      }
    } catch (...) {
      error = Internal("XA recovery threw: " + CurrentExceptionMessage());
    }
    ws.NoteXa(error);
    ++recovery_runs_;
    std::lock_guard lock(purge_mu_);
    last_recovery_error_ = error;
  }

  void WorkerLoop() {
    WorkerStore store(options_.store_factory, options_.xa_factory);
    for (;;) {
      Job job;
      {
        std::unique_lock lock(queue_mu_);
        queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        job(store);
      } catch (...) {
        // Run() catches the handlers' exceptions; only a failing allocation lands here. The job's
        // responder, if unanswered, answers 500 when destroyed.
      }
    }
  }

  // On the io thread. A purge is queued like a request, so the worker that takes it uses its own
  // store; a full queue skips this round rather than delaying requests.
  void ArmPurgeTimer() {
    purge_timer_.expires_after(std::chrono::seconds(options_.barrier_purge_interval_s));
    purge_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (!purge_pending_.exchange(true)) {
        if (!Enqueue([this](WorkerStore& store) { Purge(store); })) purge_pending_ = false;
      }
      ArmPurgeTimer();
    });
  }

  void Purge(WorkerStore& ws) {
    purge_pending_ = false;
    Status error;
    try {
      auto store = ws.Get();
      if (store.ok()) {
        auto removed = PurgeBarriers(**store, options_.barrier_purge_age_s);
        if (removed.ok()) {
          rows_purged_ += *removed;
        } else {
          error = removed.status();
        }
      } else {
        error = store.status();
      }
    } catch (...) {
      error = Internal("barrier purge threw: " + CurrentExceptionMessage());
    }
    ws.Note(error);
    std::lock_guard lock(purge_mu_);
    last_purge_error_ = error;
  }

  const BranchServerOptions options_;

  // Declared first so that it is destroyed last: the server's connections live inside it.
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  asio::steady_timer purge_timer_{io_};
  asio::steady_timer recovery_timer_{io_};

  mutable std::mutex mu_;  // state_, routes_ before Start, route_error_
  State state_ = State::kNew;
  // Frozen at Start, then read by the io thread and (through Job references) the workers.
  std::map<std::string, Route> routes_;
  Status route_error_;

  std::unique_ptr<runtime::HttpServer> server_;
  std::atomic<uint16_t> port_{0};
  std::thread io_thread_;
  std::vector<std::thread> workers_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;

  std::unique_ptr<DtxClient> dtxd_;  // set at Start when there are XA routes
  std::string advertised_;
  std::atomic<bool> recovery_pending_{false};
  std::atomic<uint64_t> recovery_runs_{0};
  Status last_recovery_error_;  // guarded by purge_mu_

  std::atomic<bool> purge_pending_{false};
  std::atomic<uint64_t> rows_purged_{0};
  mutable std::mutex purge_mu_;
  Status last_purge_error_;
};

BranchServer::BranchServer(BranchServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

BranchServer::~BranchServer() { impl_->Stop(); }

BranchServer& BranchServer::Handle(std::string path, BranchFn fn) {
  impl_->Add(std::move(path), Route{RouteKind::kBranch, std::move(fn), {}, {}, {}});
  return *this;
}

BranchServer& BranchServer::HandleWithBarrier(std::string path, BarrierBusiness fn) {
  impl_->Add(std::move(path), Route{RouteKind::kBarrier, {}, std::move(fn), {}, {}});
  return *this;
}

BranchServer& BranchServer::HandleQueryPrepared(std::string path) {
  impl_->Add(std::move(path), Route{RouteKind::kQueryPrepared, {}, {}, {}, {}});
  return *this;
}

BranchServer& BranchServer::HandlePlain(std::string path, PlainFn fn) {
  impl_->Add(std::move(path), Route{RouteKind::kPlain, {}, {}, std::move(fn), {}});
  return *this;
}

BranchServer& BranchServer::HandleXa(std::string phase1_path, std::string phase2_path,
                                     BarrierBusiness fn) {
  impl_->Add(std::move(phase1_path),
             Route{RouteKind::kXaPhase1, {}, std::move(fn), {}, phase2_path});
  impl_->Add(std::move(phase2_path), Route{RouteKind::kXaPhase2, {}, {}, {}, {}});
  return *this;
}

Status BranchServer::Start() { return impl_->Start(); }
uint16_t BranchServer::port() const { return impl_->port(); }
void BranchServer::Stop() { impl_->Stop(); }
uint64_t BranchServer::barrier_rows_purged() const { return impl_->rows_purged(); }
Status BranchServer::last_purge_error() const { return impl_->last_purge_error(); }
uint64_t BranchServer::xa_recovery_runs() const { return impl_->recovery_runs(); }
Status BranchServer::last_xa_recovery_error() const { return impl_->last_recovery_error(); }

// ---------------------------------------------------------------------------------------------

class BarrierPurger::Impl {
 public:
  Impl(std::unique_ptr<BarrierStore> store, int64_t interval_s, int64_t age_s)
      : store_(std::move(store)), interval_(interval_s), age_s_(age_s) {
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<size_t> PurgeNow() {
    std::lock_guard lock(store_mu_);
    Result<size_t> removed = PurgeBarriers(*store_, age_s_);
    std::lock_guard stats(mu_);
    if (removed.ok()) {
      rows_purged_ += *removed;
      last_error_ = Status::Ok();
    } else {
      last_error_ = removed.status();
    }
    return removed;
  }

  uint64_t rows_purged() const {
    std::lock_guard lock(mu_);
    return rows_purged_;
  }
  Status last_error() const {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  void Loop() {
    auto next = std::chrono::steady_clock::now() + interval_;
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (cv_.wait_until(lock, next, [&] { return stop_; })) return;
      lock.unlock();
      (void)PurgeNow();
      lock.lock();
      next = std::chrono::steady_clock::now() + interval_;
    }
  }

  std::mutex store_mu_;  // serialises purges on store_
  std::unique_ptr<BarrierStore> store_;
  const std::chrono::seconds interval_;
  const int64_t age_s_;

  mutable std::mutex mu_;  // stop_ and the counters
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t rows_purged_ = 0;
  Status last_error_;
  std::thread thread_;
};

BarrierPurger::BarrierPurger(std::unique_ptr<BarrierStore> store, int64_t interval_s,
                             int64_t age_s) {
  if (!store) {
    status_ = InvalidArgument("BarrierPurger: store is null");
  } else if (interval_s <= 0 || interval_s > kMaxPurgeIntervalS) {
    status_ =
        InvalidArgument("BarrierPurger: interval_s must be in 1.." +
                        std::to_string(kMaxPurgeIntervalS) + ", got " + std::to_string(interval_s));
  } else if (age_s < 0) {
    status_ = InvalidArgument("BarrierPurger: age_s must be >= 0, got " + std::to_string(age_s));
  } else {
    impl_ = std::make_unique<Impl>(std::move(store), interval_s, age_s);
  }
}

BarrierPurger::~BarrierPurger() = default;

Result<size_t> BarrierPurger::PurgeNow() {
  if (!impl_) return status_;
  return impl_->PurgeNow();
}

uint64_t BarrierPurger::rows_purged() const { return impl_ ? impl_->rows_purged() : 0; }

Status BarrierPurger::last_error() const { return impl_ ? impl_->last_error() : status_; }

}  // namespace dtx::sdk
