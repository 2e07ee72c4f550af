#include <utility>  // before Asio, see the project notes on Boost 1.74

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <sys/socket.h>

#include <cerrno>

#include "runtime/http.h"
#include "runtime/http_internal.h"

namespace dtx::runtime {
namespace {

using internal::AsciiLower;
using internal::EqualsIgnoreCase;
using internal::kSmallRead;
using internal::ReadSize;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;
using ErrorCode = boost::system::error_code;

bool IsManagedHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "host") || EqualsIgnoreCase(name, "content-length") ||
         EqualsIgnoreCase(name, "transfer-encoding") || EqualsIgnoreCase(name, "connection");
}

// Keeps only the status code and the body: no header container per response.
class ResponseParser final : public http::basic_parser<false> {
 public:
  explicit ResponseParser(std::string* body) : body_(body) {}
  int status = 0;

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int,
                       beast::error_code&) override {}
  void on_response_impl(int code, beast::string_view, int, beast::error_code&) override {
    status = code;
  }
  void on_field_impl(http::field, beast::string_view, beast::string_view,
                     beast::error_code&) override {}
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    // The parser has already rejected a Content-Length above the body limit.
    if (length) body_->reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    body_->append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    body_->append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  std::string* body_;
};

class ClientConn;
class CallOp;

}  // namespace

class HttpClient::Impl : public std::enable_shared_from_this<HttpClient::Impl> {
 public:
  Impl(asio::io_context& io, HttpClientOptions o) : io_(io), options_(o) {}

  void Call(HttpCallSpec spec, std::function<void(HttpCallResult)> done);
  // Returns an idle connection for `key`, or null.
  std::shared_ptr<ClientConn> TakeIdle(const std::string& key);
  std::shared_ptr<ClientConn> NewConn(const std::string& key);
  // Pools `conn` if there is room, else closes it. Called on the connection's strand.
  void Release(const std::shared_ptr<ClientConn>& conn);
  void Unregister(ClientConn* c);
  void Shutdown();

  asio::io_context& io_;
  const HttpClientOptions options_;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> opened_{0};

  mutable std::mutex mu_;  // guards pool_ and conns_
  std::unordered_map<std::string, std::vector<std::shared_ptr<ClientConn>>> pool_;
  std::unordered_map<ClientConn*, std::weak_ptr<ClientConn>> conns_;
};

namespace {

// One keep-alive connection. Used by one call at a time; all of its members are touched only on
// its strand, except key_/idle_since_ which the pool handles under its mutex while no call owns it.
class ClientConn : public std::enable_shared_from_this<ClientConn> {
 public:
  ClientConn(std::shared_ptr<HttpClient::Impl> client, std::string key)
      : client_(std::move(client)),
        key_(std::move(key)),
        strand_(asio::make_strand(client_->io_)),
        socket_(strand_),
        timer_(strand_) {}

  ~ClientConn() { client_->Unregister(this); }

  // Arms the connection's deadline; when it passes, the socket is closed and timed_out() is set.
  void SetDeadline(SteadyTime t) {
    deadline_ = t;
    if (timer_armed_ && timer_.expiry() <= t) return;
    timer_.expires_at(t);  // cancels a later wait; its handler sees operation_aborted
    timer_armed_ = true;
    timer_.async_wait([self = shared_from_this()](const ErrorCode& ec) { self->OnTimer(ec); });
  }
  void ClearDeadline() { deadline_ = SteadyTime::max(); }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    ErrorCode ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    if (resolver_) resolver_->cancel();
    timer_.cancel();
  }

  bool closed() const { return closed_; }
  bool timed_out() const { return timed_out_; }

  std::shared_ptr<HttpClient::Impl> client_;
  const std::string key_;
  SteadyTime idle_since_;
  asio::strand<asio::io_context::executor_type> strand_;
  tcp::socket socket_;
  std::optional<tcp::resolver> resolver_;
  beast::flat_buffer buffer_;
  std::optional<ResponseParser> parser_;
  std::string head_;

 private:
  void OnTimer(const ErrorCode& ec) {
    if (ec == asio::error::operation_aborted || closed_) return;
    timer_armed_ = false;
    if (deadline_ == SteadyTime::max()) return;
    if (std::chrono::steady_clock::now() >= deadline_) {
      timed_out_ = true;
      CloseNow();
      return;
    }
    SetDeadline(deadline_);
  }

  asio::steady_timer timer_;
  SteadyTime deadline_ = SteadyTime::max();
  bool timer_armed_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
};

// One HttpClient::Call, from acquiring a connection to running `done`.
class CallOp : public std::enable_shared_from_this<CallOp> {
 public:
  CallOp(std::shared_ptr<HttpClient::Impl> client, HttpCallSpec spec,
         std::function<void(HttpCallResult)> done)
      : client_(std::move(client)), spec_(std::move(spec)), done_(std::move(done)) {}

  void Start() {
    Result<Url> url = ParseUrl(spec_.url);
    if (!url.ok()) return FailEarly(url.status());
    url_ = std::move(url).value();
    if (!IsHttpToken(spec_.method)) {
      return FailEarly(InvalidArgument("bad HTTP method \"" + spec_.method.substr(0, 64) + "\""));
    }
    for (const auto& [name, value] : spec_.headers) {
      if (!IsHttpToken(name) || !IsValidHeaderValue(value)) {
        return FailEarly(InvalidArgument("bad HTTP header \"" + name.substr(0, 64) + "\""));
      }
    }
    if (spec_.timeout_ms <= 0) return FailEarly(InvalidArgument("timeout_ms must be positive"));
    if (client_->closed_.load(std::memory_order_acquire)) {
      return FailEarly(Unavailable("HTTP client is shut down"));
    }
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(spec_.timeout_ms);
    key_ = url_.HostPort();
    Acquire();
  }

 private:
  // Reports an error found before any connection was involved; `done` must not run inside Call.
  void FailEarly(Status s) {
    result_.status = std::move(s);
    asio::post(client_->io_, [self = shared_from_this()] { self->RunDone(); });
  }

  void Acquire() {
    if (auto conn = client_->TakeIdle(key_)) {
      conn_ = std::move(conn);
      reused_ = true;
      asio::dispatch(conn_->strand_, [self = shared_from_this()] { self->SendOnPooled(); });
      return;
    }
    Connect();
  }

  // A connection that sat idle for a while is probed without blocking: if the peer closed it, or
  // sent something unsolicited (some servers send 408 before closing), it is dropped before the
  // request is written, and the next idle connection (or a new one) is used instead.
  void SendOnPooled() {
    const auto probe_after = std::chrono::milliseconds(client_->options_.probe_idle_after_ms);
    if (!conn_->closed() && std::chrono::steady_clock::now() - conn_->idle_since_ >= probe_after) {
      char byte;
      const ssize_t n = ::recv(conn_->socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        conn_->CloseNow();
        conn_.reset();
        return Acquire();
      }
    }
    Send();
  }

  void Connect() {
    reused_ = false;
    conn_ = client_->NewConn(key_);
    asio::dispatch(conn_->strand_, [self = shared_from_this()] { self->Resolve(); });
  }

  void Resolve() {
    if (conn_->closed()) return Fail(Unavailable("HTTP client is shut down"));
    conn_->SetDeadline(deadline_);
    ErrorCode ec;
    const auto ip = asio::ip::make_address(url_.host, ec);
    if (!ec) {
      conn_->socket_.async_connect(
          tcp::endpoint(ip, url_.port),
          [self = shared_from_this()](const ErrorCode& e) { self->OnConnect(e); });
      return;
    }
    conn_->resolver_.emplace(conn_->strand_);
    conn_->resolver_->async_resolve(
        url_.host, std::to_string(url_.port),
        [self = shared_from_this()](const ErrorCode& e, tcp::resolver::results_type results) {
          if (e) return self->OnConnect(e);
          asio::async_connect(
              self->conn_->socket_, results,
              [self](const ErrorCode& e2, const tcp::endpoint&) { self->OnConnect(e2); });
        });
  }

  void OnConnect(const ErrorCode& ec) {
    if (ec) {
      if (client_->closed_.load(std::memory_order_acquire)) {
        return Fail(Unavailable("HTTP client is shut down"));
      }
      if (conn_->timed_out()) {
        return Fail(Unavailable("connect to " + key_ + " timed out after " +
                                std::to_string(spec_.timeout_ms) + " ms"));
      }
      return Fail(Unavailable("connect to " + key_ + ": " + ec.message()));
    }
    client_->opened_.fetch_add(1, std::memory_order_relaxed);
    ErrorCode ignored;
    conn_->socket_.set_option(tcp::no_delay(true), ignored);
    Send();
  }

  void Send() {
    if (conn_->closed()) return Fail(Unavailable("HTTP client is shut down"));
    conn_->SetDeadline(deadline_);
    BuildHead(conn_->head_);
    const std::array<asio::const_buffer, 2> buffers = {asio::buffer(conn_->head_),
                                                       asio::buffer(spec_.body)};
    asio::async_write(
        conn_->socket_, buffers,
        [self = shared_from_this()](const ErrorCode& ec, size_t) { self->OnWrite(ec); });
  }

  void BuildHead(std::string& head) const {
    head.clear();
    head.append(spec_.method);
    head.push_back(' ');
    head.append(url_.target);
    head.append(" HTTP/1.1\r\nHost: ");
    head.append(key_);
    head.append("\r\n");
    bool has_content_type = false;
    for (const auto& [name, value] : spec_.headers) {
      if (IsManagedHeader(name)) continue;
      if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
      head.append(name);
      head.append(": ");
      head.append(value);
      head.append("\r\n");
    }
    if (!has_content_type && !spec_.body.empty()) {
      head.append("Content-Type: application/json\r\n");
    }
    if (!spec_.body.empty() || (spec_.method != "GET" && spec_.method != "HEAD")) {
      head.append("Content-Length: ");
      head.append(std::to_string(spec_.body.size()));
      head.append("\r\n");
    }
    head.append("\r\n");
  }

  void OnWrite(const ErrorCode& ec) {
    if (ec) {
      if (client_->closed_.load(std::memory_order_acquire)) {
        return Fail(Unavailable("HTTP client is shut down"));
      }
      if (conn_->timed_out()) return Fail(Timeout());
      // The peer closed or reset before taking the whole request: it cannot have acted on it.
      if (reused_ && !retried_) return Retry();
      return Fail(Unavailable("send to " + key_ + ": " + ec.message()));
    }
    result_.request_sent = true;
    StartResponse();
  }

  void StartResponse() {
    result_.body.clear();
    conn_->parser_.emplace(&result_.body);
    conn_->parser_->body_limit(client_->options_.max_response_bytes);
    if (spec_.method == "HEAD") conn_->parser_->skip(true);
    ParseOrRead();
  }

  void ParseOrRead() {
    ResponseParser& parser = *conn_->parser_;
    beast::flat_buffer& buffer = conn_->buffer_;
    // Bounded: every iteration consumes bytes or leaves the loop.
    while (buffer.size() > 0 && !parser.is_done()) {
      beast::error_code ec;
      const size_t n = parser.put(buffer.data(), ec);
      buffer.consume(n);
      if (ec == http::error::need_more) break;
      if (ec) return OnParseError(ec);
      if (n == 0) break;
    }
    if (parser.is_done()) return OnResponse();
    conn_->socket_.async_read_some(
        buffer.prepare(ReadSize(parser)),
        [self = shared_from_this()](const ErrorCode& ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(const ErrorCode& ec, size_t n) {
    ResponseParser& parser = *conn_->parser_;
    if (!ec) {
      conn_->buffer_.commit(n);
      return ParseOrRead();
    }
    if (client_->closed_.load(std::memory_order_acquire)) {
      return Fail(Unavailable("HTTP client is shut down"));
    }
    if (conn_->timed_out()) return Fail(Timeout());
    if (ec == asio::error::eof && parser.got_some() && parser.is_header_done() &&
        parser.need_eof()) {
      // A body delimited by the end of the connection.
      beast::error_code eof_ec;
      parser.put_eof(eof_ec);
      if (!eof_ec && parser.is_done()) return OnResponse();
    }
    const bool nothing_received = !parser.got_some() && conn_->buffer_.size() == 0;
    if (nothing_received && reused_ && !retried_ && spec_.retry_if_unanswered &&
        (ec == asio::error::eof || ec == asio::error::connection_reset)) {
      // The peer closed an idle connection without reading our request (see http.h).
      return Retry();
    }
    return Fail(Unavailable("connection to " + key_ +
                            " failed while reading the response: " + ec.message()));
  }

  void OnParseError(const beast::error_code& ec) {
    if (ec == http::error::body_limit) {
      return Fail(ResourceExhausted("response from " + key_ + " exceeds " +
                                    std::to_string(client_->options_.max_response_bytes) +
                                    " bytes"));
    }
    return Fail(Unavailable("malformed HTTP response from " + key_ + ": " + ec.message()));
  }

  void OnResponse() {
    ResponseParser& parser = *conn_->parser_;
    if (parser.status >= 100 && parser.status < 200 && parser.status != 101) {
      return StartResponse();  // interim response (100 Continue, 103 ...): the real one follows
    }
    result_.http_status = parser.status;
    const bool keep = parser.keep_alive() && conn_->buffer_.size() == 0;
    conn_->parser_.reset();
    conn_->ClearDeadline();
    if (conn_->buffer_.size() == 0 && conn_->buffer_.capacity() > kSmallRead) {
      conn_->buffer_.shrink_to_fit();
    }
    if (keep && !conn_->closed()) {
      client_->Release(conn_);
    } else {
      conn_->CloseNow();
    }
    conn_.reset();
    result_.status = Status::Ok();
    RunDone();
  }

  void Retry() {
    conn_->CloseNow();
    retried_ = true;
    Connect();
  }

  Status Timeout() const {
    return DeadlineExceeded(spec_.method + " " + key_ + url_.target.substr(0, 200) +
                            ": no complete response within " + std::to_string(spec_.timeout_ms) +
                            " ms (outcome unknown)");
  }

  void Fail(Status s) {
    if (conn_) {
      conn_->parser_.reset();
      conn_->CloseNow();
      conn_.reset();
    }
    result_.status = std::move(s);
    result_.http_status = 0;
    result_.body.clear();
    RunDone();
  }

  void RunDone() {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(result_));
  }

  std::shared_ptr<HttpClient::Impl> client_;
  HttpCallSpec spec_;
  std::function<void(HttpCallResult)> done_;
  Url url_;
  std::string key_;
  SteadyTime deadline_;
  std::shared_ptr<ClientConn> conn_;
  bool reused_ = false;
  bool retried_ = false;
  HttpCallResult result_;
};

}  // namespace

void HttpClient::Impl::Call(HttpCallSpec spec, std::function<void(HttpCallResult)> done) {
  std::make_shared<CallOp>(shared_from_this(), std::move(spec), std::move(done))->Start();
}

std::shared_ptr<ClientConn> HttpClient::Impl::TakeIdle(const std::string& key) {
  const auto now = std::chrono::steady_clock::now();
  const auto max_idle = std::chrono::milliseconds(options_.max_idle_ms);
  std::vector<std::shared_ptr<ClientConn>> stale;
  std::shared_ptr<ClientConn> found;
  {
    std::lock_guard lock(mu_);
    auto it = pool_.find(key);
    if (it == pool_.end()) return nullptr;
    auto& idle = it->second;
    // Newest last: the most recently used connection is the least likely to be closed.
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (now - c->idle_since_ > max_idle) {
        stale.push_back(std::move(c));
        continue;
      }
      found = std::move(c);
      break;
    }
  }
  for (auto& c : stale) asio::post(c->strand_, [c] { c->CloseNow(); });
  return found;
}

std::shared_ptr<ClientConn> HttpClient::Impl::NewConn(const std::string& key) {
  auto conn = std::make_shared<ClientConn>(shared_from_this(), key);
  std::lock_guard lock(mu_);
  conns_.emplace(conn.get(), conn);
  if (closed_.load(std::memory_order_acquire)) {
    // Raced with Shutdown: make the call fail instead of connecting.
    asio::post(conn->strand_, [conn] { conn->CloseNow(); });
  }
  return conn;
}

void HttpClient::Impl::Release(const std::shared_ptr<ClientConn>& conn) {
  conn->idle_since_ = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (!closed_.load(std::memory_order_acquire)) {
      auto& idle = pool_[conn->key_];
      if (idle.size() < options_.max_idle_per_host) {
        idle.push_back(conn);
        return;
      }
    }
  }
  conn->CloseNow();
}

void HttpClient::Impl::Unregister(ClientConn* c) {
  std::lock_guard lock(mu_);
  conns_.erase(c);
}

void HttpClient::Impl::Shutdown() {
  std::vector<std::shared_ptr<ClientConn>> all;
  decltype(pool_) pool;
  {
    std::lock_guard lock(mu_);
    if (closed_.exchange(true, std::memory_order_acq_rel)) return;
    pool.swap(pool_);
    all.reserve(conns_.size());
    for (auto& [ptr, weak] : conns_) {
      if (auto c = weak.lock()) all.push_back(std::move(c));
    }
  }
  for (auto& c : all) asio::post(c->strand_, [c] { c->CloseNow(); });
  // `pool` and `all` drop their references here; the posted closes keep what they need.
}

HttpClient::HttpClient(asio::io_context& io, HttpClientOptions o)
    : impl_(std::make_shared<Impl>(io, o)) {}

void HttpClient::Call(HttpCallSpec spec, std::function<void(HttpCallResult)> done) {
  impl_->Call(std::move(spec), std::move(done));
}

HttpClient::~HttpClient() { impl_->Shutdown(); }

uint64_t HttpClient::connections_opened() const {
  return impl_->opened_.load(std::memory_order_relaxed);
}

size_t HttpClient::idle_connections() const {
  std::lock_guard lock(impl_->mu_);
  size_t n = 0;
  for (const auto& [key, idle] : impl_->pool_) n += idle.size();
  return n;
}

}  // namespace dtx::runtime
