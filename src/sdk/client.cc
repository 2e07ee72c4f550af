#include "dtx/client.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <thread>

#include "runtime/http.h"

namespace dtx::sdk {
namespace {

using nlohmann::json;

constexpr size_t kMaxGidBytes = 128;

std::string BranchId(int n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", n);
  return buf;
}

std::string MessageOf(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto it = j.find("message");
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return body.substr(0, 300);
}

Status CheckSeconds(int64_t seconds, const char* what) {
  if (seconds < 0) return InvalidArgument(std::string(what) + " must not be negative");
  return Status::Ok();
}

}  // namespace

Status StatusFromHttp(int http_status, const std::string& body, const std::string& what) {
  // 400 first: dtxd's 400 bodies carry FAILURE too, but they mean bad input, not a failed
  // transaction.
  if (http_status == 400) return InvalidArgument(what + ": " + MessageOf(body));
  if (http_status == 409 || body.find("FAILURE") != std::string::npos) {
    return Aborted(what + " failed: " + MessageOf(body));
  }
  if (http_status == 425 || body.find("ONGOING") != std::string::npos) {
    return Unavailable("ongoing: " + what + " is still running");
  }
  if (http_status == 200) return Status::Ok();
  return Unavailable(what + ": HTTP " + std::to_string(http_status) + ": " + MessageOf(body));
}

Status ValidateGid(const std::string& gid) {
  if (gid.empty()) return InvalidArgument("gid must not be empty");
  if (gid.size() > kMaxGidBytes) {
    return InvalidArgument("gid is longer than " + std::to_string(kMaxGidBytes) + " bytes");
  }
  for (unsigned char c : gid) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgument("gid may hold only printable ASCII characters without spaces");
    }
  }
  return Status::Ok();
}

Status ValidateUrl(const std::string& url, const std::string& what) {
  auto parsed = runtime::ParseUrl(url);
  if (!parsed.ok()) {
    return InvalidArgument(what + " '" + url.substr(0, 200) + "': " + parsed.status().message());
  }
  return Status::Ok();
}

// The io thread and the connection pool. The work guard keeps run() alive between calls.
class DtxClient::Io {
 public:
  Io() : work_(boost::asio::make_work_guard(io_)) {
    client_ = std::make_unique<runtime::HttpClient>(io_);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Io() {
    // The pool is not thread-safe against its own io thread: destroy it there, then let run()
    // return once the aborted calls' callbacks have run.
    boost::asio::post(io_, [this] {
      client_.reset();
      work_.reset();
    });
    thread_.join();
  }

  runtime::HttpCallResult Call(runtime::HttpCallSpec spec) {
    auto promise = std::make_shared<std::promise<runtime::HttpCallResult>>();
    auto future = promise->get_future();
    const int64_t timeout_ms = spec.timeout_ms;
    client_->Call(std::move(spec),
                  [promise](runtime::HttpCallResult r) { promise->set_value(std::move(r)); });
    // The client enforces the timeout itself; the margin only guards against a stuck io thread.
    if (future.wait_for(std::chrono::milliseconds(timeout_ms + 5'000)) !=
        std::future_status::ready) {
      runtime::HttpCallResult r;
      r.status = DeadlineExceeded("no answer from the HTTP client in time");
      return r;
    }
    return future.get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpClient> client_;
  std::thread thread_;
};

DtxClient::DtxClient(std::string dtxd_url, ClientOptions options)
    : base_url_(std::move(dtxd_url)), options_(options) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  status_ = ValidateUrl(base_url_, "dtxd URL");
  if (status_.ok() && options_.timeout_ms <= 0) {
    status_ = InvalidArgument("ClientOptions::timeout_ms must be positive");
  }
  if (status_.ok()) io_ = std::make_unique<Io>();
}

DtxClient::~DtxClient() = default;

Result<DtxClient::Reply> DtxClient::Http(const std::string& method, const std::string& url,
                                         std::string body) {
  if (!status_.ok()) return status_;
  runtime::HttpCallSpec spec;
  spec.method = method;
  spec.url = url;
  spec.body = std::move(body);
  spec.timeout_ms = options_.timeout_ms;
  if (!spec.body.empty()) spec.headers["Content-Type"] = "application/json";
  runtime::HttpCallResult r = io_->Call(std::move(spec));
  if (!r.status.ok()) {
    return Status(r.status.code(), method + " " + url.substr(0, 200) + ": " + r.status.message());
  }
  return Reply{r.http_status, std::move(r.body)};
}

Status DtxClient::CallApi(const std::string& route, const json& body) {
  if (!status_.ok()) return status_;
  auto reply = Http("POST", base_url_ + "/api/dtmsvr/" + route,
                    body.dump(-1, ' ', false, json::error_handler_t::replace));
  if (!reply.ok()) return reply.status();
  return StatusFromHttp(reply->http_status, reply->body, route);
}

Result<std::string> DtxClient::NewGid() {
  if (!status_.ok()) return status_;
  auto reply = Http("GET", base_url_ + "/api/dtmsvr/newGid", "");
  if (!reply.ok()) return reply.status();
  DTX_RETURN_IF_ERROR(StatusFromHttp(reply->http_status, reply->body, "newGid"));
  json j = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("gid") || !j["gid"].is_string() ||
      !ValidateGid(j["gid"].get<std::string>()).ok()) {
    return Internal("newGid: unexpected answer: " + reply->body.substr(0, 200));
  }
  return j["gid"].get<std::string>();
}

Result<json> DtxClient::Query(const std::string& gid) {
  if (!status_.ok()) return status_;
  DTX_RETURN_IF_ERROR(ValidateGid(gid));
  auto reply = Http("GET", base_url_ + "/api/dtmsvr/query?gid=" + runtime::UrlEncode(gid), "");
  if (!reply.ok()) return reply.status();
  if (reply->http_status != 200) {
    return StatusFromHttp(reply->http_status, reply->body, "query");
  }
  json j = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Internal("query: the answer is not a JSON object");
  return j;
}

// ---------------------------------------------------------------------------------------------
// Saga

Saga::Saga(DtxClient& client, std::string gid) : client_(client), gid_(std::move(gid)) {
  error_ = ValidateGid(gid_);
}

Saga& Saga::Add(const std::string& action_url, const std::string& compensate_url,
                std::string payload) {
  const std::string where = "saga step " + std::to_string(payloads_.size());
  if (error_.ok()) error_ = ValidateUrl(action_url, where + " action");
  if (error_.ok() && !compensate_url.empty()) {
    error_ = ValidateUrl(compensate_url, where + " compensate");
  }
  steps_.push_back({{"action", action_url}, {"compensate", compensate_url}});
  payloads_.push_back(std::move(payload));
  return *this;
}

Saga& Saga::EnableConcurrent() {
  concurrent_ = true;
  return *this;
}

Saga& Saga::AddBranchOrder(int step, std::vector<int> before) {
  auto& list = orders_[step];
  list.insert(list.end(), before.begin(), before.end());
  return *this;
}

Saga& Saga::WaitResult(bool wait) {
  wait_result_ = wait;
  return *this;
}

Saga& Saga::TimeoutToFail(int64_t seconds) {
  if (error_.ok()) error_ = CheckSeconds(seconds, "timeout_to_fail");
  timeout_to_fail_ = seconds;
  return *this;
}

Saga& Saga::RetryInterval(int64_t seconds) {
  if (error_.ok()) error_ = CheckSeconds(seconds, "retry_interval");
  retry_interval_ = seconds;
  return *this;
}

Saga& Saga::RequestTimeout(int64_t seconds) {
  if (error_.ok()) error_ = CheckSeconds(seconds, "request_timeout");
  request_timeout_ = seconds;
  return *this;
}

Saga& Saga::BranchHeader(const std::string& name, const std::string& value) {
  if (error_.ok() && !runtime::IsHttpToken(name)) {
    error_ = InvalidArgument("branch header name '" + name.substr(0, 64) + "' is not a token");
  }
  if (error_.ok() && !runtime::IsValidHeaderValue(value)) {
    error_ = InvalidArgument("branch header '" + name + "' has a CR, LF or NUL in its value");
  }
  branch_headers_[name] = value;
  return *this;
}

json Saga::Body() const {
  json body = {{"gid", gid_}, {"trans_type", "saga"}, {"steps", steps_}, {"payloads", payloads_}};
  if (concurrent_ || !orders_.empty()) {
    json orders = json::object();
    for (const auto& [step, before] : orders_) orders[std::to_string(step)] = before;
    // DTM sends custom_data as a JSON document encoded in a string.
    body["custom_data"] = json{{"concurrent", concurrent_}, {"orders", orders}}.dump();
  }
  if (wait_result_) body["wait_result"] = true;
  if (timeout_to_fail_ > 0) body["timeout_to_fail"] = timeout_to_fail_;
  if (retry_interval_ > 0) body["retry_interval"] = retry_interval_;
  if (request_timeout_ > 0) body["request_timeout"] = request_timeout_;
  if (!branch_headers_.empty()) body["branch_headers"] = branch_headers_;
  return body;
}

Status Saga::Submit() {
  DTX_RETURN_IF_ERROR(error_);
  if (payloads_.empty()) return InvalidArgument("a saga needs at least one step");
  const int n = static_cast<int>(payloads_.size());
  if (!orders_.empty() && !concurrent_) {
    return InvalidArgument("AddBranchOrder needs EnableConcurrent");
  }
  for (const auto& [step, before] : orders_) {
    if (step < 0 || step >= n) {
      return InvalidArgument("branch order: step " + std::to_string(step) + " does not exist");
    }
    for (int b : before) {
      if (b < 0 || b >= n || b == step) {
        return InvalidArgument("branch order of step " + std::to_string(step) + ": " +
                               std::to_string(b) + " is not another existing step");
      }
    }
  }
  return client_.CallApi("submit", Body());
}

// ---------------------------------------------------------------------------------------------
// Msg

Msg::Msg(DtxClient& client, std::string gid) : client_(client), gid_(std::move(gid)) {
  error_ = ValidateGid(gid_);
}

Msg& Msg::Add(const std::string& action_url, std::string payload) {
  if (error_.ok()) {
    error_ = ValidateUrl(action_url, "msg step " + std::to_string(payloads_.size()) + " action");
  }
  steps_.push_back({{"action", action_url}});
  payloads_.push_back(std::move(payload));
  return *this;
}

json Msg::Body() const {
  json body = {{"gid", gid_}, {"trans_type", "msg"}, {"steps", steps_}, {"payloads", payloads_}};
  if (!query_prepared_.empty()) body["query_prepared"] = query_prepared_;
  return body;
}

Status Msg::Prepare(const std::string& query_prepared_url) {
  DTX_RETURN_IF_ERROR(error_);
  if (payloads_.empty()) return InvalidArgument("a msg needs at least one step");
  DTX_RETURN_IF_ERROR(ValidateUrl(query_prepared_url, "query_prepared"));
  query_prepared_ = query_prepared_url;
  return client_.CallApi("prepare", Body());
}

Status Msg::Submit() {
  DTX_RETURN_IF_ERROR(error_);
  if (payloads_.empty()) return InvalidArgument("a msg needs at least one step");
  return client_.CallApi("submit", Body());
}

Status Msg::Abort() {
  DTX_RETURN_IF_ERROR(error_);
  return client_.CallApi("abort", json{{"gid", gid_}, {"trans_type", "msg"}});
}

Status Msg::DoAndSubmit(const std::string& query_prepared_url,
                        const std::function<Status()>& local_tx) {
  DTX_RETURN_IF_ERROR(Prepare(query_prepared_url));
  Status local = local_tx();
  if (local.ok()) return Submit();
  if (local.code() == StatusCode::kAborted) {
    Status aborted = Abort();
    if (!aborted.ok()) {
      // The local transaction failed for sure; the check-back will find no barrier row and
      // drop the message even if this abort was lost.
      return Aborted(local.message() + " (abort: " + aborted.ToString() + ")");
    }
  }
  return local;
}

// ---------------------------------------------------------------------------------------------
// Tcc

namespace {

// The body of a TCC or XA transaction failed, so it will never be submitted: whatever the abort
// call does, dtxd rolls the transaction back (at the latest at its prepared timeout). The result is
// therefore a definite failure, except for the caller's own invalid input.
Status AbortAfterFailedBody(DtxClient& client, const json& id, const Status& body_status) {
  Status aborted = client.CallApi("abort", id);
  std::string message =
      body_status.code() == StatusCode::kAborted ? body_status.message() : body_status.ToString();
  if (!aborted.ok()) message += " (abort: " + aborted.ToString() + "; dtxd aborts at its timeout)";
  if (body_status.code() == StatusCode::kInvalidArgument) {
    return Status(StatusCode::kInvalidArgument, message);
  }
  return Aborted(message);
}

}  // namespace

Status Tcc::Run(DtxClient& client, const std::string& gid,
                const std::function<Status(Tcc&)>& body) {
  DTX_RETURN_IF_ERROR(ValidateGid(gid));
  const json id = {{"gid", gid}, {"trans_type", "tcc"}};
  DTX_RETURN_IF_ERROR(client.CallApi("prepare", id));
  Tcc tcc(client, gid);
  Status s = body(tcc);
  if (s.ok()) return client.CallApi("submit", id);
  return AbortAfterFailedBody(client, id, s);
}

Result<std::string> Tcc::CallBranch(const std::string& payload, const std::string& try_url,
                                    const std::string& confirm_url, const std::string& cancel_url) {
  DTX_RETURN_IF_ERROR(ValidateUrl(try_url, "try URL"));
  DTX_RETURN_IF_ERROR(ValidateUrl(confirm_url, "confirm URL"));
  DTX_RETURN_IF_ERROR(ValidateUrl(cancel_url, "cancel URL"));
  const std::string branch_id = BranchId(next_branch_++);
  DTX_RETURN_IF_ERROR(client_.CallApi("registerBranch", json{{"gid", gid_},
                                                             {"trans_type", "tcc"},
                                                             {"branch_id", branch_id},
                                                             {"data", payload},
                                                             {"confirm", confirm_url},
                                                             {"cancel", cancel_url}}));
  std::string url = try_url;
  url += try_url.find('?') == std::string::npos ? '?' : '&';
  url += "gid=" + runtime::UrlEncode(gid_) + "&trans_type=tcc&branch_id=" + branch_id + "&op=try";
  auto reply = client_.Http("POST", url, payload);
  if (!reply.ok()) return reply.status();
  DTX_RETURN_IF_ERROR(
      StatusFromHttp(reply->http_status, reply->body, "try of branch " + branch_id));
  return std::move(reply->body);
}

// ---------------------------------------------------------------------------------------------
// Xa

Xa::Xa(DtxClient& client, std::string gid) : client_(client), gid_(std::move(gid)) {
  error_ = ValidateGid(gid_);
}

Status Xa::Run(DtxClient& client, const std::string& gid, const std::function<Status(Xa&)>& body) {
  Xa xa(client, gid);
  DTX_RETURN_IF_ERROR(xa.Prepare());
  Status s = body(xa);
  if (s.ok()) return xa.Submit();
  return AbortAfterFailedBody(client, json{{"gid", gid}, {"trans_type", "xa"}}, s);
}

Result<std::string> Xa::CallBranch(const std::string& payload, const std::string& url) {
  DTX_RETURN_IF_ERROR(error_);
  DTX_RETURN_IF_ERROR(ValidateUrl(url, "xa branch URL"));
  const std::string branch_id = BranchId(next_branch_++);
  std::string target = url;
  target += url.find('?') == std::string::npos ? '?' : '&';
  target +=
      "gid=" + runtime::UrlEncode(gid_) + "&trans_type=xa&branch_id=" + branch_id + "&op=action";
  auto reply = client_.Http("POST", target, payload);
  if (!reply.ok()) return reply.status();
  DTX_RETURN_IF_ERROR(StatusFromHttp(reply->http_status, reply->body, "xa branch " + branch_id));
  return std::move(reply->body);
}

Status Xa::Prepare() {
  DTX_RETURN_IF_ERROR(error_);
  return client_.CallApi("prepare", json{{"gid", gid_}, {"trans_type", "xa"}});
}

Result<std::string> Xa::RegisterBranch(const std::string& url, const std::string& data) {
  DTX_RETURN_IF_ERROR(error_);
  DTX_RETURN_IF_ERROR(ValidateUrl(url, "xa branch URL"));
  const std::string branch_id = BranchId(next_branch_++);
  DTX_RETURN_IF_ERROR(client_.CallApi("registerBranch", json{{"gid", gid_},
                                                             {"trans_type", "xa"},
                                                             {"branch_id", branch_id},
                                                             {"data", data},
                                                             {"url", url}}));
  return branch_id;
}

Status Xa::Submit() {
  DTX_RETURN_IF_ERROR(error_);
  return client_.CallApi("submit", json{{"gid", gid_}, {"trans_type", "xa"}});
}

Status Xa::Abort() {
  DTX_RETURN_IF_ERROR(error_);
  return client_.CallApi("abort", json{{"gid", gid_}, {"trans_type", "xa"}});
}

}  // namespace dtx::sdk
