#include <utility>

#include "harness.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>

namespace dtx::itest {

json HttpReply::Json() const {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json() : j;
}

Http::Http(bool retry_if_unanswered)
    : retry_if_unanswered_(retry_if_unanswered), work_(boost::asio::make_work_guard(io_)) {
  client_ = std::make_unique<runtime::HttpClient>(io_);
  thread_ = std::thread([this] { io_.run(); });
}

Http::~Http() {
  // The client is destroyed on the io thread, which then runs the aborted calls' callbacks and
  // returns from run() once nothing is left.
  boost::asio::post(io_, [this] {
    client_.reset();
    work_.reset();
  });
  thread_.join();
}

std::future<HttpReply> Http::Async(std::string method, std::string url, std::string body,
                                   int64_t timeout_ms) {
  auto promise = std::make_shared<std::promise<HttpReply>>();
  auto future = promise->get_future();
  runtime::HttpCallSpec spec;
  spec.method = std::move(method);
  spec.url = std::move(url);
  spec.body = std::move(body);
  spec.timeout_ms = timeout_ms;
  spec.retry_if_unanswered = retry_if_unanswered_;
  boost::asio::post(io_, [this, spec = std::move(spec), promise]() mutable {
    if (!client_) {
      promise->set_value(HttpReply{Unavailable("client shut down"), 0, ""});
      return;
    }
    client_->Call(std::move(spec), [promise](runtime::HttpCallResult r) {
      promise->set_value(HttpReply{r.status, r.http_status, std::move(r.body), r.request_sent});
    });
  });
  return future;
}

HttpReply Http::Call(std::string method, std::string url, std::string body, int64_t timeout_ms) {
  auto future = Async(std::move(method), std::move(url), std::move(body), timeout_ms);
  // The client enforces timeout_ms itself; the margin only guards against a lost callback.
  if (future.wait_for(std::chrono::milliseconds(timeout_ms + 5'000)) != std::future_status::ready) {
    return HttpReply{Internal("the HTTP client never completed the call"), 0, ""};
  }
  return future.get();
}

Status WaitUntilAnswers(Http& http, const std::string& url, Subprocess& process, int attempts) {
  for (int i = 0; i < attempts; ++i) {
    HttpReply r = http.Call("GET", url, "", 1'000);
    if (r.transport.ok() && r.status == 200) return Status::Ok();
    // Returns early if the process exits; otherwise this is the pause between two connects.
    auto exited = process.Wait(20);
    if (exited.ok()) {
      return Unavailable("process exited with code " + std::to_string(*exited) +
                         " before answering " + url);
    }
  }
  return Unavailable(url + " did not answer after " + std::to_string(attempts) + " attempts");
}

Result<int> RunToExit(std::vector<std::string> argv, const std::string& log_path,
                      int64_t timeout_ms) {
  auto p = Subprocess::Start({std::move(argv), log_path, false});
  if (!p.ok()) return p.status();
  return (*p)->Wait(timeout_ms);
}

// ---- participant ----

Result<std::unique_ptr<ParticipantProcess>> ParticipantProcess::Start(Http& http,
                                                                      const std::string& dir) {
  auto p = Subprocess::Start(
      {{PARTICIPANT_BIN, "--listen", "127.0.0.1:0"}, dir + "/participant.log", true});
  if (!p.ok()) return p.status();
  auto line = (*p)->ReadLine(10'000);
  if (!line.ok()) return line.status();
  static const std::string kPrefix = "listening on 127.0.0.1:";
  if (line->compare(0, kPrefix.size(), kPrefix) != 0) {
    return Internal("unexpected first line from dtx-participant: " + *line);
  }
  auto out = std::make_unique<ParticipantProcess>();
  out->http_ = &http;
  out->port_ = static_cast<uint16_t>(std::stoi(line->substr(kPrefix.size())));
  out->process_ = std::move(*p);
  DTX_RETURN_IF_ERROR(WaitUntilAnswers(http, out->Url("/ping"), *out->process_, 100));
  return out;
}

std::string ParticipantProcess::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

Result<json> ParticipantProcess::Calls(const std::string& gid) {
  HttpReply r = http_->Get(Url("/calls") + (gid.empty() ? "" : "?gid=" + runtime::UrlEncode(gid)));
  if (!r.transport.ok()) return r.transport;
  json j = r.Json();
  if (r.status != 200 || !j.contains("calls")) {
    return Internal("GET /calls answered " + std::to_string(r.status) + ": " + r.body);
  }
  return j["calls"];
}

Status ParticipantProcess::Clear() {
  HttpReply r = http_->Call("DELETE", Url("/calls"));
  if (!r.transport.ok()) return r.transport;
  if (r.status != 200) return Internal("DELETE /calls answered " + std::to_string(r.status));
  return Status::Ok();
}

// ---- dtxd ----

std::vector<std::string> DtxdProcess::FastFlags() {
  return {"--retry-interval-ms",
          "100",
          "--max-retry-interval-ms",
          "1000",
          "--ongoing-interval-ms",
          "100",
          "--msg-timeout-ms",
          "500",
          "--request-timeout-ms",
          "1000",
          "--log-level",
          "debug"};
}

DtxdProcess::DtxdProcess(Http& http, std::string data_dir, std::string log_path)
    : http_(http), data_dir_(std::move(data_dir)), log_path_(std::move(log_path)) {}

DtxdProcess::~DtxdProcess() { Kill9(); }

Status DtxdProcess::Start(std::vector<std::string> extra_flags) {
  flags_ = std::move(extra_flags);
  if (port_ == 0) {
    auto port = PickFreePort();
    if (!port.ok()) return port.status();
    port_ = *port;
  }
  return Restart();
}

Status DtxdProcess::Restart() {
  Kill9();
  std::vector<std::string> argv = {DTXD_BIN, "--listen", "127.0.0.1:" + std::to_string(port_),
                                   "--data-dir", data_dir_};
  // dtxd refuses a flag given twice: a flag of the caller replaces the fast default of that name.
  const std::vector<std::string> fast = FastFlags();
  for (size_t i = 0; i + 1 < fast.size(); i += 2) {
    if (std::find(flags_.begin(), flags_.end(), fast[i]) != flags_.end()) continue;
    argv.push_back(fast[i]);
    argv.push_back(fast[i + 1]);
  }
  for (auto& f : flags_) argv.push_back(f);
  auto p = Subprocess::Start({std::move(argv), log_path_, false});
  if (!p.ok()) return p.status();
  process_ = std::move(*p);
  Status s = WaitUntilAnswers(http_, Url("/api/ping"), *process_, 250);
  if (!s.ok()) return Unavailable(s.message() + "\n--- dtxd log tail ---\n" + LogTail());
  return Status::Ok();
}

void DtxdProcess::Kill9() {
  if (process_) process_->Kill();
}

std::string DtxdProcess::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::string DtxdProcess::LogTail(size_t bytes) const {
  std::string log = ReadFile(log_path_);
  return log.size() > bytes ? log.substr(log.size() - bytes) : log;
}

}  // namespace dtx::itest
