#include <utility>

#include "server/coordinator.h"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <unordered_map>

#include "base/clock.h"
#include "coord/engine.h"
#include "coord/request.h"
#include "coord/store.h"
#include "coord/txn_codec.h"
#include "runtime/http.h"

namespace dtx::server {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using runtime::HttpRequest;
using runtime::HttpResponse;
using runtime::Responder;

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// Client errors carry FAILURE so that DTM SDKs do not retry them.
HttpResponse BadRequest(int status, const std::string& message) {
  return JsonResponse(status, {{"dtm_result", "FAILURE"}, {"message", message}});
}

std::optional<int64_t> ParseCount(const std::optional<std::string>& s) {
  if (!s || s->empty() || s->size() > 12) return std::nullopt;
  int64_t v = 0;
  for (char c : *s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string AppendQuery(const std::string& url,
                        const std::vector<std::pair<std::string, std::string>>& query) {
  std::string out = url;
  char sep = url.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [k, v] : query) {
    out += sep;
    out += runtime::UrlEncode(k);
    out += '=';
    out += runtime::UrlEncode(v);
    sep = '&';
  }
  return out;
}

struct RouteCounters {
  std::map<std::string, uint64_t> requests;
  uint64_t store_batches = 0;
  uint64_t store_records = 0;
  double store_write_seconds = 0;
  uint64_t purged = 0;
  uint64_t alerts = 0;
};

class CoordinatorImpl final : public Coordinator {
 public:
  CoordinatorImpl(asio::io_context& io, Config config)
      : io_(io), config_(std::move(config)), tick_timer_(io), purge_timer_(io) {
    std::random_device rd;
    gid_prefix_ = (static_cast<uint64_t>(rd()) << 16 ^ rd()) & 0xffffffffffffULL;
  }

  ~CoordinatorImpl() override {
    Stop();
    writer_.join();
  }

  Status Init() {
    auto store = coord::OpenRocksStore(config_.data_dir);
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    auto unfinished = store_->LoadUnfinished();
    if (!unfinished.ok()) return unfinished.status();
    engine_ = std::make_unique<coord::Engine>(config_.engine, *store_, gid_prefix_);
    size_t recovered = unfinished->size();
    engine_->Recover(std::move(*unfinished), Now());
    spdlog::info("recovered {} unfinished transactions from {}", recovered, config_.data_dir);

    client_ = std::make_unique<runtime::HttpClient>(io_);
    auto listen = ParseListen(config_.listen);
    if (!listen.ok()) return listen.status();
    runtime::HttpServerOptions options;
    options.host = listen->first;
    options.port = listen->second;
    options.max_body_bytes = config_.max_body_bytes;
    auto server =
        runtime::HttpServer::Start(io_, options, [this](HttpRequest&& req, Responder respond) {
          Route(std::move(req), std::move(respond));
        });
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    spdlog::info("dtxd listening on {}:{} (data dir {})", listen->first, server_->port(),
                 config_.data_dir);
    Pump();
    SchedulePurge();
    return Status::Ok();
  }

  uint16_t port() const override { return server_ ? server_->port() : 0; }

  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    if (server_) server_->Stop();
    tick_timer_.cancel();
    purge_timer_.cancel();
  }

 private:
  TimeMs Now() const { return clock_.NowMs(); }

  // ---- the engine loop: one Ready at a time, its writes synced before anything else ----

  void Pump() {
    while (!stopped_ && !write_inflight_ && engine_->HasReady()) {
      auto ready = std::make_shared<coord::Ready>(engine_->TakeReady());
      if (ready->writes.empty()) {
        Dispatch(*ready);
        engine_->Advance();
        continue;
      }
      write_inflight_ = true;
      asio::post(writer_, [this, ready] {
        auto start = std::chrono::steady_clock::now();
        Status s = store_->Write(ready->writes);
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        asio::post(io_, [this, ready, s, seconds] { OnWritten(*ready, s, seconds); });
      });
    }
    ArmTickTimer();
  }

  void OnWritten(coord::Ready& ready, const Status& s, double seconds) {
    write_inflight_ = false;
    if (!s.ok()) {
      // The engine has moved past state that is not durable; continuing could acknowledge
      // something a restart would not know. Stop hard and let recovery take over.
      spdlog::critical("store write failed, exiting so that recovery restarts from disk: {}",
                       s.ToString());
      spdlog::shutdown();
      std::fflush(nullptr);
      std::_Exit(70);
    }
    counters_.store_batches++;
    counters_.store_records += ready.writes.size();
    counters_.store_write_seconds += seconds;
    Dispatch(ready);
    engine_->Advance();
    Pump();
  }

  void Dispatch(coord::Ready& ready) {
    for (auto& call : ready.calls) SendCall(std::move(call));
    for (auto& reply : ready.replies) {
      auto it = responders_.find(reply.request);
      if (it == responders_.end()) continue;
      HttpResponse r;
      r.status = reply.http_status;
      r.body = std::move(reply.body);
      auto respond = std::move(it->second);
      responders_.erase(it);
      respond(std::move(r));
    }
    for (auto& alert : ready.alerts) SendAlert(alert);
  }

  void SendCall(coord::BranchCall call) {
    runtime::HttpCallSpec spec;
    spec.method = call.post ? "POST" : "GET";
    spec.url = AppendQuery(call.url, call.query);
    spec.headers = std::move(call.headers);
    spec.headers["Content-Type"] = "application/json";
    spec.body = std::move(call.body);
    spec.timeout_ms = call.timeout_ms;
    coord::CallId id = call.id;
    std::string gid = std::move(call.gid);
    client_->Call(std::move(spec), [this, id, gid](runtime::HttpCallResult result) {
      if (stopped_) return;
      coord::CallOutcome outcome = coord::CallOutcome::kError;
      if (result.status.ok()) {
        outcome = coord::ClassifyResponse(result.http_status, result.body);
        if (outcome == coord::CallOutcome::kError) {
          spdlog::debug("gid={} branch call answered HTTP {}: {}", gid, result.http_status,
                        result.body.substr(0, 200));
        }
      } else {
        spdlog::debug("gid={} branch call failed: {}", gid, result.status.ToString());
      }
      engine_->OnCallDone(id, outcome, Now());
      Pump();
    });
  }

  void SendAlert(const coord::Alert& alert) {
    counters_.alerts++;
    spdlog::warn("alert gid={} branch={} op={} url={} failures={}: {}", alert.gid, alert.branch_id,
                 alert.op, alert.url, alert.consecutive_failures, alert.message);
    if (config_.alert_webhook.empty()) return;
    runtime::HttpCallSpec spec;
    spec.url = config_.alert_webhook;
    spec.headers["Content-Type"] = "application/json";
    spec.body = json{{"gid", alert.gid},
                     {"branch_id", alert.branch_id},
                     {"op", alert.op},
                     {"url", alert.url},
                     {"consecutive_failures", alert.consecutive_failures},
                     {"message", alert.message}}
                    .dump(-1, ' ', false, json::error_handler_t::replace);
    client_->Call(std::move(spec), [](runtime::HttpCallResult r) {
      if (!r.status.ok() || r.http_status / 100 != 2) {
        spdlog::warn("alert webhook failed: {} {}", r.status.ToString(), r.http_status);
      }
    });
  }

  void ArmTickTimer() {
    if (stopped_) return;
    auto next = engine_->NextWakeup();
    if (!next) {
      if (armed_for_) {
        tick_timer_.cancel();
        armed_for_.reset();
      }
      return;
    }
    if (armed_for_ && *armed_for_ == *next) return;
    armed_for_ = *next;
    TimeMs delay = std::max<TimeMs>(0, *next - Now());
    tick_timer_.expires_after(std::chrono::milliseconds(delay));
    tick_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_) return;
      armed_for_.reset();
      engine_->Tick(Now());
      Pump();
    });
  }

  void SchedulePurge() {
    if (stopped_ || config_.keep_finished_s <= 0) return;
    purge_timer_.expires_after(std::chrono::seconds(config_.purge_interval_s));
    purge_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_) return;
      TimeMs cutoff = Now() - config_.keep_finished_s * 1000;
      asio::post(writer_, [this, cutoff] {
        auto removed = store_->PurgeFinished(cutoff, 100'000);
        asio::post(io_, [this, removed] {
          if (removed.ok()) {
            counters_.purged += *removed;
            if (*removed > 0) spdlog::info("purged {} finished transactions", *removed);
          } else {
            spdlog::error("purge failed: {}", removed.status().ToString());
          }
          SchedulePurge();
        });
      });
    });
  }

  // ---- HTTP API ----

  void Route(HttpRequest&& req, Responder respond) {
    const std::string& path = req.path;
    static const std::string kPrefix = "/api/dtmsvr/";
    if (path == "/api/ping") {
      Count("ping");
      return respond(JsonResponse(200, {{"msg", "pong"}}));
    }
    if (path == "/api/metrics") {
      Count("metrics");
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = Metrics();
      return respond(std::move(r));
    }
    if (path.compare(0, kPrefix.size(), kPrefix) != 0) {
      return respond(JsonResponse(404, {{"message", "no route for " + path.substr(0, 200)}}));
    }
    const std::string name = path.substr(kPrefix.size());
    static const std::map<std::string, coord::ApiOp> kTxnOps = {
        {"prepare", coord::ApiOp::kPrepare},
        {"submit", coord::ApiOp::kSubmit},
        {"abort", coord::ApiOp::kAbort},
        {"forceStop", coord::ApiOp::kForceStop},
        {"registerBranch", coord::ApiOp::kRegisterBranch},
        {"registerXaBranch", coord::ApiOp::kRegisterBranch},
        {"registerTccBranch", coord::ApiOp::kRegisterBranch}};
    if (auto it = kTxnOps.find(name); it != kTxnOps.end()) {
      if (req.method != "POST") return respond(MethodNotAllowed("POST"));
      Count(name);
      return TxnOp(it->second, req, std::move(respond));
    }
    if (name == "newGid") {
      Count(name);
      char buf[48];
      std::snprintf(buf, sizeof buf, "dtx%012llx%llx", static_cast<unsigned long long>(gid_prefix_),
                    static_cast<unsigned long long>(++gid_counter_));
      return respond(JsonResponse(200, {{"gid", buf}, {"dtm_result", "SUCCESS"}}));
    }
    if (name == "version") return respond(JsonResponse(200, {{"version", "dtxd 0.1.0"}}));
    if ((name == "query" || name == "all") && req.method != "GET") {
      return respond(MethodNotAllowed("GET"));
    }
    if (name == "query") {
      Count(name);
      return respond(Query(req));
    }
    if (name == "all") {
      Count(name);
      return respond(All(req));
    }
    if (name == "resetCronTime" || name == "resetNextCronTime") {
      Count("resetCronTime");
      auto timeout = req.QueryParam("timeout");
      auto limit = req.QueryParam("limit");
      auto timeout_s = timeout ? ParseCount(timeout) : std::optional<int64_t>(0);
      auto limit_n = limit ? ParseCount(limit) : std::optional<int64_t>(100);
      if (!timeout_s || !limit_n || *limit_n == 0) {
        return respond(
            BadRequest(400, "timeout and limit must be non-negative integers, limit > 0"));
      }
      uint64_t id = Register(std::move(respond));
      engine_->HandleResetCronTime(id, *timeout_s * 1000, *limit_n, Now());
      return Pump();
    }
    respond(JsonResponse(404, {{"message", "no route for " + path.substr(0, 200)}}));
  }

  static HttpResponse MethodNotAllowed(const char* allowed) {
    HttpResponse r = JsonResponse(405, {{"message", std::string("use ") + allowed}});
    r.headers.emplace_back("Allow", allowed);
    return r;
  }

  void Count(const std::string& route) { counters_.requests[route]++; }

  uint64_t Register(Responder respond) {
    uint64_t id = ++next_request_;
    responders_.emplace(id, std::move(respond));
    return id;
  }

  void TxnOp(coord::ApiOp op, const HttpRequest& req, Responder respond) {
    auto parsed = coord::ParseTxnRequest(op, req.body, config_.engine.limits);
    if (!parsed.ok()) return respond(BadRequest(400, parsed.status().message()));
    uint64_t id = Register(std::move(respond));
    engine_->HandleRequest(id, std::move(*parsed), Now());
    Pump();
  }

  HttpResponse Query(const HttpRequest& req) {
    auto gid = req.QueryParam("gid");
    if (!gid || gid->empty()) return BadRequest(400, "query needs the gid parameter");
    auto rec = store_->Load(*gid);
    if (!rec.ok()) return JsonResponse(503, {{"message", rec.status().ToString()}});
    if (!rec->has_value()) {
      return JsonResponse(200, {{"transaction", nullptr}, {"branches", json::array()}});
    }
    return JsonResponse(200, {{"transaction", coord::TransactionToDtmJson(**rec)},
                              {"branches", coord::BranchesToDtmJson(**rec)}});
  }

  HttpResponse All(const HttpRequest& req) {
    coord::ScanFilter filter;
    if (auto s = req.QueryParam("status"); s && !s->empty()) {
      filter.status = coord::ParseGlobalStatus(*s);
      if (!filter.status) return BadRequest(400, "unknown status '" + s->substr(0, 64) + "'");
    }
    auto type = req.QueryParam("transType");
    if (!type) type = req.QueryParam("trans_type");
    if (type && !type->empty()) {
      filter.trans_type = coord::ParseTransType(*type);
      if (!filter.trans_type)
        return BadRequest(400, "unknown transType '" + type->substr(0, 64) + "'");
    }
    auto limit_param = req.QueryParam("limit");
    auto limit = limit_param ? ParseCount(limit_param) : std::optional<int64_t>(100);
    if (!limit || *limit < 1 || *limit > 1000) {
      return BadRequest(400, "limit must be an integer between 1 and 1000");
    }
    auto page = store_->Scan(req.QueryParam("position").value_or(""), *limit, filter);
    if (!page.ok()) {
      int status = page.status().code() == StatusCode::kInvalidArgument ? 400 : 503;
      return status == 400 ? BadRequest(400, page.status().message())
                           : JsonResponse(503, {{"message", page.status().ToString()}});
    }
    json txns = json::array();
    for (const auto& rec : page->txns) txns.push_back(coord::TransactionToDtmJson(rec));
    return JsonResponse(
        200, {{"transactions", std::move(txns)}, {"next_position", page->next_position}});
  }

  std::string Metrics() const {
    auto s = engine_->stats();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double value) {
      out +=
          fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
    };
    metric("dtx_transactions_started_total", "counter", "Global transactions created.",
           static_cast<double>(s.started));
    metric("dtx_transactions_succeeded_total", "counter", "Global transactions that succeeded.",
           static_cast<double>(s.succeeded));
    metric("dtx_transactions_failed_total", "counter", "Global transactions that failed.",
           static_cast<double>(s.failed));
    metric("dtx_transactions_active", "gauge", "Unfinished transactions held in memory.",
           static_cast<double>(s.active));
    metric("dtx_branch_calls_total", "counter", "Branch calls made.",
           static_cast<double>(s.branch_calls));
    metric("dtx_branch_errors_total", "counter",
           "Branch calls that ended in a temporary error or timeout.",
           static_cast<double>(s.branch_errors));
    metric("dtx_branch_calls_inflight", "gauge", "Branch calls awaiting an answer.",
           static_cast<double>(s.inflight_calls));
    metric("dtx_store_batches_total", "counter", "Synced store batches (group commits).",
           static_cast<double>(counters_.store_batches));
    metric("dtx_store_records_total", "counter", "Transaction records written.",
           static_cast<double>(counters_.store_records));
    metric("dtx_store_write_seconds_total", "counter", "Time spent in synced store writes.",
           counters_.store_write_seconds);
    metric("dtx_purged_total", "counter", "Finished transactions removed after keep_finished_s.",
           static_cast<double>(counters_.purged));
    metric("dtx_alerts_total", "counter", "Alerts raised.", static_cast<double>(counters_.alerts));
    out += "# HELP dtx_http_requests_total API requests by route.\n";
    out += "# TYPE dtx_http_requests_total counter\n";
    for (const auto& [route, n] : counters_.requests) {
      out += fmt::format("dtx_http_requests_total{{route=\"{}\"}} {}\n", route, n);
    }
    return out;
  }

  asio::io_context& io_;
  Config config_;
  SystemClock clock_;
  std::unique_ptr<coord::TxnStore> store_;
  std::unique_ptr<coord::Engine> engine_;
  std::unique_ptr<runtime::HttpClient> client_;
  std::unique_ptr<runtime::HttpServer> server_;
  asio::thread_pool writer_{1};
  asio::steady_timer tick_timer_;
  asio::steady_timer purge_timer_;
  std::optional<TimeMs> armed_for_;
  bool write_inflight_ = false;
  bool stopped_ = false;
  std::unordered_map<uint64_t, Responder> responders_;
  uint64_t next_request_ = 0;
  uint64_t gid_prefix_ = 0;
  uint64_t gid_counter_ = 0;
  RouteCounters counters_;
};

}  // namespace

Result<std::unique_ptr<Coordinator>> Coordinator::Start(asio::io_context& io,
                                                        const Config& config) {
  auto impl = std::make_unique<CoordinatorImpl>(io, config);
  Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<Coordinator>(std::move(impl));
}

}  // namespace dtx::server
