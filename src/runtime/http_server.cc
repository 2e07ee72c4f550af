#include <utility>  // before Asio, see the project notes on Boost 1.74

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>

#include "runtime/http.h"
#include "runtime/http_internal.h"

namespace dtx::runtime {
namespace {

using internal::AsciiLower;
using internal::EqualsIgnoreCase;
using internal::kLargeRead;
using internal::kSmallRead;
using internal::ReadSize;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

std::string JsonMessage(std::string_view message) {
  std::string out = "{\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  out.append("\"}");
  return out;
}

HttpResponse ErrorResponse(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = JsonMessage(message);
  return r;
}

// Fills HttpRequest straight from the wire, avoiding Beast's header container.
class RequestParser final : public http::basic_parser<true> {
 public:
  HttpRequest req;
  bool expect_continue = false;
  int version = 11;

 private:
  void on_request_impl(http::verb, beast::string_view method, beast::string_view target, int v,
                       beast::error_code&) override {
    req.method.assign(method.data(), method.size());
    req.target.assign(target.data(), target.size());
    version = v;
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                     beast::error_code&) override {
    if (name == http::field::expect &&
        EqualsIgnoreCase(std::string_view(value.data(), value.size()), "100-continue")) {
      expect_continue = true;
    }
    std::string key(name_string.data(), name_string.size());
    for (char& c : key) c = AsciiLower(c);
    auto [it, inserted] = req.headers.try_emplace(std::move(key), value.data(), value.size());
    if (!inserted) {
      it->second.append(", ");
      it->second.append(value.data(), value.size());
    }
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    // The parser has already rejected a Content-Length above the body limit.
    if (length) req.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    req.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    req.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}
};

class Connection;

}  // namespace

class HttpServer::Impl : public std::enable_shared_from_this<HttpServer::Impl> {
 public:
  Impl(asio::io_context& io, HttpServerOptions o, HttpHandler h)
      : io_(io), options_(std::move(o)), handler_(std::move(h)), acceptor_(io), retry_timer_(io) {}

  Status Listen();
  void AcceptLocked();
  void OnAccept(const boost::system::error_code& ec, tcp::socket socket);
  void Stop();
  void Unregister(Connection* c);

  asio::io_context& io_;
  const HttpServerOptions options_;
  const HttpHandler handler_;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> accepted_{0};

  mutable std::mutex mu_;  // guards acceptor_, retry_timer_ and connections_
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;
};

namespace {

// One accepted socket. Every member is used only on strand_. Requests are read one at a time: the
// next read starts only after the response to the previous one was written.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<HttpServer::Impl> server, tcp::socket socket)
      : server_(std::move(server)),
        strand_(socket.get_executor()),
        socket_(std::move(socket)),
        timer_(strand_) {}

  ~Connection() { server_->Unregister(this); }

  void Start() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->ReadRequest(); });
  }

  // From any thread.
  void Close() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->CloseNow(); });
  }

  // From any thread; at most once per request (the responder guarantees it).
  void Respond(HttpResponse r) {
    asio::dispatch(strand_, [self = shared_from_this(), r = std::move(r)]() mutable {
      self->WriteResponse(std::move(r), false);
    });
  }

 private:
  enum class Phase { kReading, kHandling, kWriting, kDraining, kClosed };

  using Ms = std::chrono::milliseconds;

  // --- deadline: one lazily re-armed timer instead of a timer operation per read/write.
  void SetDeadline(SteadyTime t) {
    deadline_ = t;
    if (timer_armed_ && timer_.expiry() <= t) return;
    timer_.expires_at(t);  // cancels a later wait; its handler sees operation_aborted
    timer_armed_ = true;
    timer_.async_wait(
        [self = shared_from_this()](const boost::system::error_code& ec) { self->OnTimer(ec); });
  }
  void ClearDeadline() { deadline_ = SteadyTime::max(); }
  void OnTimer(const boost::system::error_code& ec) {
    if (ec == asio::error::operation_aborted || phase_ == Phase::kClosed) return;
    timer_armed_ = false;
    if (deadline_ == SteadyTime::max()) return;
    if (std::chrono::steady_clock::now() >= deadline_) {
      CloseNow();
      return;
    }
    SetDeadline(deadline_);
  }

  void CloseNow() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

  const HttpServerOptions& options() const { return server_->options_; }

  void ReadRequest() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kReading;
    parser_.emplace();
    parser_->body_limit(options().max_body_bytes);
    parser_->header_limit(
        static_cast<std::uint32_t>(std::min<size_t>(options().max_header_bytes, UINT32_MAX)));
    sent_continue_ = false;
    // Waiting for a request to begin is the idle timeout; once bytes are buffered it is the read
    // timeout.
    const int64_t ms = buffer_.size() == 0 ? options().idle_timeout_ms : options().read_timeout_ms;
    SetDeadline(std::chrono::steady_clock::now() + Ms(ms));
    ParseOrRead();
  }

  void ParseOrRead() {
    // Bounded: every iteration consumes bytes or leaves the loop.
    while (buffer_.size() > 0 && !parser_->is_done()) {
      beast::error_code ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec == http::error::need_more) break;
      if (ec) {
        OnParseError(ec);
        return;
      }
      if (n == 0) break;
    }
    if (parser_->is_done()) {
      Dispatch();
      return;
    }
    if (parser_->is_header_done() && parser_->expect_continue && !sent_continue_) {
      sent_continue_ = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                          if (ec || self->phase_ == Phase::kClosed) {
                            self->CloseNow();
                            return;
                          }
                          self->ReadSome();
                        });
      return;
    }
    ReadSome();
  }

  void ReadSome() {
    socket_.async_read_some(buffer_.prepare(ReadSize(*parser_)),
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(const boost::system::error_code& ec, size_t n) {
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      // EOF, reset, or closed by the timer/Stop: nothing useful to answer.
      CloseNow();
      return;
    }
    if (!parser_->got_some() && buffer_.size() == 0) {
      SetDeadline(std::chrono::steady_clock::now() + Ms(options().read_timeout_ms));
    }
    buffer_.commit(n);
    ParseOrRead();
  }

  void OnParseError(const beast::error_code& ec) {
    if (ec == http::error::body_limit) {
      WriteResponse(ErrorResponse(413, "request body exceeds " +
                                           std::to_string(options().max_body_bytes) + " bytes"),
                    true);
    } else if (ec == http::error::header_limit) {
      WriteResponse(ErrorResponse(431, "request header exceeds " +
                                           std::to_string(options().max_header_bytes) + " bytes"),
                    true);
    } else {
      WriteResponse(ErrorResponse(400, "malformed HTTP request: " + ec.message()), true);
    }
  }

  void Dispatch() {
    phase_ = Phase::kHandling;
    ClearDeadline();
    keep_alive_ = parser_->keep_alive();
    version_ = parser_->version;
    head_only_ = parser_->req.method == "HEAD";
    HttpRequest req = std::move(parser_->req);
    parser_.reset();
    if (buffer_.size() == 0 && buffer_.capacity() > kSmallRead) buffer_.shrink_to_fit();

    const std::string_view target = req.target;
    const size_t q = target.find('?');
    Result<std::string> path = PercentDecode(target.substr(0, q), false);
    if (!path.ok()) {
      WriteResponse(ErrorResponse(400, path.status().message()), false);
      return;
    }
    req.path = std::move(path).value();
    if (q != std::string_view::npos) {
      auto query = ParseQuery(target.substr(q + 1));
      if (!query.ok()) {
        WriteResponse(ErrorResponse(400, query.status().message()), false);
        return;
      }
      req.query = std::move(query).value();
    }
    if (server_->stopped_.load(std::memory_order_acquire)) {
      CloseNow();
      return;
    }
    server_->handler_(std::move(req), MakeResponder());
    // Nothing after the call: the responder may already have run WriteResponse inline.
  }

  Responder MakeResponder();

  void WriteResponse(HttpResponse r, bool close_after) {
    if (phase_ == Phase::kClosed) return;
    if (close_after) keep_alive_ = false;
    if (r.status < 100 || r.status > 999) {
      r = ErrorResponse(500, "handler produced invalid status " + std::to_string(r.status));
    }
    head_.clear();
    AppendHead(r);
    if (head_.empty()) {
      r = ErrorResponse(500, "handler produced an invalid response header");
      AppendHead(r);
    }
    body_ = std::move(r.body);
    if (head_only_) body_.clear();
    phase_ = Phase::kWriting;
    SetDeadline(std::chrono::steady_clock::now() + Ms(options().read_timeout_ms));
    const std::array<asio::const_buffer, 2> buffers = {asio::buffer(head_), asio::buffer(body_)};
    asio::async_write(socket_, buffers,
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                        self->OnWrite(ec);
                      });
  }

  // Serialises the status line and headers into head_; leaves head_ empty if a handler header is
  // invalid.
  void AppendHead(const HttpResponse& r) {
    auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(r.status)));
    if (reason == "<unknown-status>") reason = "Unknown";
    head_.append("HTTP/1.1 ");
    head_.append(std::to_string(r.status));
    head_.push_back(' ');
    head_.append(reason.data(), reason.size());
    head_.append("\r\n");
    if (!r.content_type.empty()) {
      if (!IsValidHeaderValue(r.content_type)) {
        head_.clear();
        return;
      }
      head_.append("Content-Type: ");
      head_.append(r.content_type);
      head_.append("\r\n");
    }
    for (const auto& [name, value] : r.headers) {
      if (!IsHttpToken(name) || !IsValidHeaderValue(value)) {
        head_.clear();
        return;
      }
      if (EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "connection") ||
          EqualsIgnoreCase(name, "transfer-encoding")) {
        continue;
      }
      head_.append(name);
      head_.append(": ");
      head_.append(value);
      head_.append("\r\n");
    }
    head_.append("Content-Length: ");
    head_.append(std::to_string(r.body.size()));
    head_.append("\r\n");
    if (!keep_alive_) {
      head_.append("Connection: close\r\n");
    } else if (version_ == 10) {
      head_.append("Connection: keep-alive\r\n");
    }
    head_.append("\r\n");
  }

  void OnWrite(const boost::system::error_code& ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      CloseNow();
      return;
    }
    if (body_.capacity() > kLargeRead) body_ = std::string();
    if (keep_alive_ && !server_->stopped_.load(std::memory_order_acquire)) {
      ReadRequest();
      return;
    }
    Drain();
  }

  // After a final response, half-close and discard what the client still sends (bounded in bytes
  // and time), so that closing does not reset the connection before the client read the answer.
  void Drain() {
    phase_ = Phase::kDraining;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    drain_left_ = std::max<size_t>(4 * options().max_body_bytes, 1 << 20);
    const int64_t ms = std::min<int64_t>(options().read_timeout_ms, 5'000);
    SetDeadline(std::chrono::steady_clock::now() + Ms(ms));
    buffer_.clear();
    DrainSome();
  }

  void DrainSome() {
    socket_.async_read_some(
        buffer_.prepare(kSmallRead),
        [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
          if (self->phase_ == Phase::kClosed) return;
          if (ec || n >= self->drain_left_) {
            self->CloseNow();
            return;
          }
          self->drain_left_ -= n;
          self->DrainSome();
        });
  }

  std::shared_ptr<HttpServer::Impl> server_;
  asio::any_io_executor strand_;  // a strand: the socket was accepted onto one
  tcp::socket socket_;
  asio::steady_timer timer_;
  SteadyTime deadline_ = SteadyTime::max();
  bool timer_armed_ = false;

  Phase phase_ = Phase::kReading;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  bool sent_continue_ = false;
  bool keep_alive_ = true;
  bool head_only_ = false;
  int version_ = 11;
  std::string head_;
  std::string body_;
  size_t drain_left_ = 0;
};

// Shared by the copies of one Responder; enforces "at most once" and answers 500 if every copy
// was dropped unanswered.
struct ResponderState {
  std::shared_ptr<Connection> conn;
  std::shared_ptr<HttpServer::Impl> server;
  std::atomic<bool> called{false};

  ~ResponderState() {
    if (!called.load(std::memory_order_acquire) &&
        !server->stopped_.load(std::memory_order_acquire)) {
      conn->Respond(ErrorResponse(500, "handler dropped the request without answering"));
    }
  }
};

Responder Connection::MakeResponder() {
  auto state = std::make_shared<ResponderState>();
  state->conn = shared_from_this();
  state->server = server_;
  return [state = std::move(state)](HttpResponse r) {
    if (state->called.exchange(true, std::memory_order_acq_rel)) return;
    state->conn->Respond(std::move(r));
  };
}

}  // namespace

Status HttpServer::Impl::Listen() {
  const std::string address = options_.host + ":" + std::to_string(options_.port);
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  const auto ip = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, options_.port);
  } else {
    tcp::resolver resolver(io_);
    const auto results =
        resolver.resolve(options_.host, std::to_string(options_.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return InvalidArgument("cannot listen on " + address + ": bad host (" +
                             (ec ? ec.message() : std::string("no address")) + ")");
    }
    endpoint = results.begin()->endpoint();
  }
  std::lock_guard lock(mu_);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return Unavailable("cannot listen on " + address + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return Unavailable("cannot listen on " + address + ": " + ec.message());
  AcceptLocked();
  return Status::Ok();
}

void HttpServer::Impl::AcceptLocked() {
  acceptor_.async_accept(
      asio::make_strand(io_),
      [self = shared_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
        self->OnAccept(ec, std::move(socket));
      });
}

void HttpServer::Impl::OnAccept(const boost::system::error_code& ec, tcp::socket socket) {
  if (stopped_.load(std::memory_order_acquire) || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Typically EMFILE: back off instead of spinning on a listener we cannot serve.
    std::lock_guard lock(mu_);
    if (stopped_.load(std::memory_order_acquire)) return;
    retry_timer_.expires_after(std::chrono::milliseconds(50));
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
      if (wait_ec) return;
      std::lock_guard lock(self->mu_);
      if (!self->stopped_.load(std::memory_order_acquire)) self->AcceptLocked();
    });
    return;
  }
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  auto conn = std::make_shared<Connection>(shared_from_this(), std::move(socket));
  {
    std::lock_guard lock(mu_);
    if (stopped_.load(std::memory_order_acquire)) return;
    connections_.emplace(conn.get(), conn);
    AcceptLocked();
  }
  conn->Start();
}

void HttpServer::Impl::Stop() {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(mu_);
    if (stopped_.exchange(true, std::memory_order_acq_rel)) return;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    open.reserve(connections_.size());
    for (auto& [ptr, weak] : connections_) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->Close();
}

void HttpServer::Impl::Unregister(Connection* c) {
  std::lock_guard lock(mu_);
  connections_.erase(c);
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(asio::io_context& io, HttpServerOptions o,
                                                      HttpHandler h) {
  if (!h) return InvalidArgument("HttpServer::Start: empty handler");
  auto impl = std::make_shared<Impl>(io, std::move(o), std::move(h));
  DTX_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port_; }

void HttpServer::Stop() { impl_->Stop(); }

HttpServer::~HttpServer() { impl_->Stop(); }

uint64_t HttpServer::connections_accepted() const {
  return impl_->accepted_.load(std::memory_order_relaxed);
}

size_t HttpServer::open_connections() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->connections_.size();
}

}  // namespace dtx::runtime
