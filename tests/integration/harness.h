// The integration-test harness: a blocking HTTP client, and dtxd and dtx-participant processes
// that a test starts, kills and restarts. The binaries' paths come from the build
// (DTXD_BIN, PARTICIPANT_BIN).
//
// Thread-safety: Http may be called from any thread; the process wrappers from one thread.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "process.h"
#include "runtime/http.h"

namespace dtx::itest {

using nlohmann::json;

struct HttpReply {
  Status transport;  // OK when an HTTP response arrived
  int status = 0;
  std::string body;
  bool request_sent = false;  // on a transport error: the peer may have acted on the request
  // The body parsed as JSON; null when it is not JSON.
  json Json() const;
};

// A blocking client over runtime::HttpClient, with its own io thread.
class Http {
 public:
  // retry_if_unanswered: see runtime::HttpCallSpec (false for clients whose history is checked:
  // a request must never run twice behind their back).
  explicit Http(bool retry_if_unanswered = true);
  ~Http();

  std::future<HttpReply> Async(std::string method, std::string url, std::string body = "",
                               int64_t timeout_ms = 5'000);
  // Waits for the answer; a transport error or timeout is reported in HttpReply::transport.
  HttpReply Call(std::string method, std::string url, std::string body = "",
                 int64_t timeout_ms = 5'000);
  HttpReply Get(std::string url) { return Call("GET", std::move(url)); }
  HttpReply Post(std::string url, std::string body) {
    return Call("POST", std::move(url), std::move(body));
  }

 private:
  bool retry_if_unanswered_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpClient> client_;
  std::thread thread_;
};

// A dtx-participant child. It picks its own port and prints it.
class ParticipantProcess {
 public:
  // Starts it with its log in `dir`; waits for its "listening on" line.
  static Result<std::unique_ptr<ParticipantProcess>> Start(Http& http, const std::string& dir);

  // "http://127.0.0.1:PORT" + path.
  std::string Url(const std::string& path) const;
  // The calls recorded for gid ("" = all), in arrival order.
  Result<json> Calls(const std::string& gid);
  Status Clear();
  Subprocess& process() { return *process_; }

 private:
  Http* http_ = nullptr;
  uint16_t port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// A dtxd child on a fixed port and data directory, restartable after a kill.
class DtxdProcess {
 public:
  // Fast timings for tests (flag, value pairs); a flag also given to Start() replaces its default.
  static std::vector<std::string> FastFlags();

  DtxdProcess(Http& http, std::string data_dir, std::string log_path);
  ~DtxdProcess();

  // Spawns dtxd (port picked once, reused by restarts) and waits until /api/ping answers.
  // kUnavailable with the log's tail if it exits or does not answer in time.
  Status Start(std::vector<std::string> extra_flags = {});
  // SIGKILL, reap.
  void Kill9();
  // Start again with the same port, data dir and flags.
  Status Restart();

  // "http://127.0.0.1:PORT" + path.
  std::string Url(const std::string& path) const;
  uint16_t port() const { return port_; }
  Subprocess* process() { return process_.get(); }
  std::string LogTail(size_t bytes = 4000) const;

 private:
  Http& http_;
  std::string data_dir_;
  std::string log_path_;
  std::vector<std::string> flags_;
  uint16_t port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// Polls `url` with GET until it answers 200, at most `attempts` connects. Between failed
// attempts it waits on the process's exit (up to 20 ms), so a child that dies is reported at
// once rather than after the last attempt.
Status WaitUntilAnswers(Http& http, const std::string& url, Subprocess& process, int attempts);

// Runs a binary to completion (stdout and stderr into log_path); returns the exit code.
Result<int> RunToExit(std::vector<std::string> argv, const std::string& log_path,
                      int64_t timeout_ms);

}  // namespace dtx::itest
