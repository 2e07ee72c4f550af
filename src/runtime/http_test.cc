#include <utility>  // before Asio, see the project notes on Boost 1.74

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "runtime/http.h"

namespace dtx::runtime {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

constexpr auto kTestDeadline = std::chrono::seconds(10);

// Runs `io` on the calling thread until `done()` holds or the deadline passes.
bool RunUntil(asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kTestDeadline;
  io.restart();
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    io.run_one_for(deadline - now);
    if (io.stopped()) io.restart();
  }
  return true;
}

HttpCallResult CallAndWait(asio::io_context& io, HttpClient& client, HttpCallSpec spec) {
  std::optional<HttpCallResult> out;
  client.Call(std::move(spec), [&](HttpCallResult r) { out = std::move(r); });
  EXPECT_TRUE(RunUntil(io, [&] { return out.has_value(); })) << "call did not complete";
  if (!out) return HttpCallResult{Unavailable("test deadline"), 0, ""};
  return std::move(*out);
}

HttpCallSpec Spec(const std::string& method, const std::string& url, std::string body = "") {
  HttpCallSpec s;
  s.method = method;
  s.url = url;
  s.body = std::move(body);
  return s;
}

// A blocking POSIX client socket with a 5 s receive timeout, for tests that run the io_context on
// another thread and need byte-exact control of what is sent.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (fd_ < 0) return;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return fd_ >= 0; }

  void Send(const std::string& bytes) {
    size_t sent = 0;
    while (fd_ >= 0 && sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
  }
  // Reads until `needle` was received, the peer closed, or the receive timeout hit.
  std::string ReadUntil(const std::string& needle) {
    char buf[4096];
    for (int i = 0; i < 10'000 && fd_ >= 0; ++i) {
      if (!needle.empty() && received_.find(needle) != std::string::npos) break;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      received_.append(buf, static_cast<size_t>(n));
    }
    return received_;
  }
  std::string ReadToEof() { return ReadUntil(""); }

 private:
  int fd_;
  std::string received_;
};

// Sends `bytes` and returns everything the server sends until it closes the connection.
std::string RawExchange(uint16_t port, const std::string& bytes) {
  RawSocket s(port);
  if (!s.connected()) return "connect failed";
  s.Send(bytes);
  return s.ReadToEof();
}

// Runs an io_context on background threads for the lifetime of the object.
class BackgroundIo {
 public:
  explicit BackgroundIo(asio::io_context& io, int threads = 1)
      : io_(io), guard_(asio::make_work_guard(io)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~BackgroundIo() { Stop(); }
  void Stop() {
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  asio::io_context& io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

class HttpTest : public ::testing::Test {
 protected:
  void StartServer(HttpHandler h, HttpServerOptions o = {}) {
    Result<std::unique_ptr<HttpServer>> s = HttpServer::Start(io_, std::move(o), std::move(h));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
  }
  std::string Url(const std::string& path_and_query) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path_and_query;
  }

  static HttpHandler Echo() {
    return [](HttpRequest&& req, Responder respond) {
      HttpResponse r;
      r.body = req.method + " " + req.path + " " + req.body;
      respond(std::move(r));
    };
  }

  asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpTest, RoundTripGetAndPostWithQueryAndHeaders) {
  std::vector<HttpRequest> seen;
  StartServer([&](HttpRequest&& req, Responder respond) {
    seen.push_back(req);
    HttpResponse r;
    r.status = req.method == "POST" ? 201 : 200;
    r.body = "{\"got\":\"" + req.body + "\"}";
    r.headers.emplace_back("X-Reply", "yes");
    respond(std::move(r));
  });
  HttpClient client(io_);

  HttpCallSpec get = Spec("GET", Url("/api/x%20y?gid=a%26b&op=action&empty=&gid=2"));
  get.headers["X-Dtm-Trace"] = "t1";
  HttpCallResult g = CallAndWait(io_, client, std::move(get));
  ASSERT_TRUE(g.status.ok()) << g.status.ToString();
  EXPECT_EQ(g.http_status, 200);
  EXPECT_EQ(g.body, "{\"got\":\"\"}");

  HttpCallResult p = CallAndWait(io_, client, Spec("POST", Url("/submit"), "{\"amount\":30}"));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.http_status, 201);
  EXPECT_EQ(p.body, "{\"got\":\"{\"amount\":30}\"}");

  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/api/x%20y?gid=a%26b&op=action&empty=&gid=2");
  EXPECT_EQ(seen[0].path, "/api/x y");
  EXPECT_EQ(seen[0].QueryParam("gid"), "a&b");
  EXPECT_EQ(seen[0].QueryParam("op"), "action");
  EXPECT_EQ(seen[0].QueryParam("empty"), "");
  EXPECT_EQ(seen[0].query.size(), 4u);
  EXPECT_EQ(seen[0].Header("x-dtm-trace"), "t1");
  EXPECT_EQ(seen[0].Header("host"), "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_TRUE(seen[0].body.empty());
  EXPECT_EQ(seen[1].method, "POST");
  EXPECT_EQ(seen[1].body, "{\"amount\":30}");
  EXPECT_EQ(seen[1].Header("content-type"), "application/json");
  EXPECT_EQ(seen[1].Header("content-length"), "13");
}

TEST_F(HttpTest, KeepAliveReusesOneConnection) {
  StartServer(Echo());
  HttpClient client(io_);
  constexpr int kCalls = 200;
  int ok = 0;
  int finished = 0;
  std::function<void()> next = [&] {
    client.Call(Spec("POST", Url("/n"), std::to_string(finished)), [&](HttpCallResult r) {
      if (r.status.ok() && r.http_status == 200 &&
          r.body == "POST /n " + std::to_string(finished)) {
        ++ok;
      }
      if (++finished < kCalls) next();
    });
  };
  next();
  ASSERT_TRUE(RunUntil(io_, [&] { return finished == kCalls; }));
  EXPECT_EQ(ok, kCalls);
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(server_->connections_accepted(), 1u);
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST_F(HttpTest, ResponderCalledFromAnotherThread) {
  std::vector<std::thread> workers;
  StartServer([&](HttpRequest&& req, Responder respond) {
    workers.emplace_back([body = req.body, respond = std::move(respond)] {
      HttpResponse r;
      r.status = 202;
      r.body = "late:" + body;
      respond(std::move(r));
    });
  });
  HttpClient client(io_);
  for (int i = 0; i < 5; ++i) {
    HttpCallResult r = CallAndWait(io_, client, Spec("POST", Url("/t"), std::to_string(i)));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.http_status, 202);
    EXPECT_EQ(r.body, "late:" + std::to_string(i));
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(HttpTest, BodyOverLimitGets413AndServerKeepsServing) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  int handled = 0;
  StartServer(
      [&](HttpRequest&& req, Responder respond) {
        ++handled;
        HttpResponse r;
        r.body = std::to_string(req.body.size());
        respond(std::move(r));
      },
      o);
  HttpClient client(io_);
  HttpCallResult big =
      CallAndWait(io_, client, Spec("POST", Url("/big"), std::string(100'000, 'x')));
  ASSERT_TRUE(big.status.ok()) << big.status.ToString();
  EXPECT_EQ(big.http_status, 413);
  EXPECT_NE(big.body.find("\"message\""), std::string::npos) << big.body;
  EXPECT_NE(big.body.find("1024"), std::string::npos) << big.body;
  EXPECT_EQ(handled, 0);

  HttpCallResult exact = CallAndWait(io_, client, Spec("POST", Url("/ok"), std::string(1024, 'y')));
  ASSERT_TRUE(exact.status.ok()) << exact.status.ToString();
  EXPECT_EQ(exact.http_status, 200);
  EXPECT_EQ(exact.body, "1024");
  EXPECT_EQ(handled, 1);
}

TEST_F(HttpTest, GarbageGets400AndServerKeepsServing) {
  HttpServerOptions o;
  o.max_header_bytes = 1024;
  StartServer(Echo(), o);
  {
    BackgroundIo bg(io_);
    const std::string cases[] = {
        std::string("\x00\x01\x02\x03garbage\r\n\r\n", 15),
        "GET / HTTP/9.9\r\n\r\n",
        "GET /\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    };
    for (const std::string& bytes : cases) {
      const std::string reply = RawExchange(server_->port(), bytes);
      EXPECT_EQ(reply.rfind("HTTP/1.1 400 ", 0), 0u) << "for input " << bytes << " got " << reply;
      EXPECT_NE(reply.find("\"message\":"), std::string::npos) << reply;
    }
    const std::string big_header =
        "GET / HTTP/1.1\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n";
    EXPECT_EQ(RawExchange(server_->port(), big_header).rfind("HTTP/1.1 431 ", 0), 0u);

    const std::string bad_escape =
        RawExchange(server_->port(), "GET /a%zz HTTP/1.1\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(bad_escape.rfind("HTTP/1.1 400 ", 0), 0u) << bad_escape;

    // A valid request on a raw socket, with Expect: 100-continue and a chunked body.
    const std::string chunked =
        RawExchange(server_->port(),
                    "POST /c HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    EXPECT_EQ(chunked.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << chunked;
    EXPECT_NE(chunked.find("\r\n\r\nPOST /c abcde"), std::string::npos) << chunked;

    RawSocket expect_socket(server_->port());
    expect_socket.Send(
        "POST /e HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
        "\r\n");
    EXPECT_EQ(expect_socket.ReadUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
    expect_socket.Send("hi");
    const std::string expect = expect_socket.ReadToEof();
    EXPECT_EQ(expect.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0), 0u) << expect;
    EXPECT_NE(expect.find("POST /e hi"), std::string::npos) << expect;

    // Two pipelined requests on one connection are answered in order.
    const std::string two = RawExchange(
        server_->port(), "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nConnection: close\r\n\r\n");
    const size_t first = two.find("GET /1 ");
    const size_t second = two.find("GET /2 ");
    EXPECT_NE(first, std::string::npos) << two;
    EXPECT_NE(second, std::string::npos) << two;
    EXPECT_LT(first, second);
  }
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(io_, client, Spec("GET", Url("/still")));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.body, "GET /still ");
}

TEST_F(HttpTest, RandomBytesNeverCrashTheServer) {
  StartServer(Echo());
  {
    BackgroundIo bg(io_);
    uint64_t x = 0x9e3779b97f4a7c15ull;  // fixed seed: reproducible
    for (int i = 0; i < 50; ++i) {
      std::string bytes = i % 2 == 0 ? "POST / HTTP/1.1\r\n" : "";
      const size_t n = 1 + static_cast<size_t>(x % 300);
      for (size_t j = 0; j < n; ++j) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push_back(static_cast<char>(x & 0xff));
      }
      (void)RawExchange(server_->port(), bytes + "\r\n\r\n");
    }
  }
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(io_, client, Spec("GET", Url("/alive")));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.http_status, 200);
}

TEST_F(HttpTest, ClientTimeoutIsDeadlineExceeded) {
  std::vector<Responder> pending;
  StartServer([&](HttpRequest&& req, Responder respond) {
    if (req.path == "/slow") {
      pending.push_back(std::move(respond));
      return;
    }
    respond(HttpResponse{200, "text/plain", "fast", {}});
  });
  HttpClient client(io_);
  HttpCallSpec slow = Spec("POST", Url("/slow"), "{}");
  slow.timeout_ms = 100;
  const auto start = std::chrono::steady_clock::now();
  HttpCallResult r = CallAndWait(io_, client, std::move(slow));
  EXPECT_EQ(r.status.code(), StatusCode::kDeadlineExceeded) << r.status.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
  ASSERT_EQ(pending.size(), 1u);

  // The late answer goes to a connection the client closed; it is dropped without harm.
  pending[0](HttpResponse{200, "text/plain", "too late", {}});
  HttpCallResult fast = CallAndWait(io_, client, Spec("GET", Url("/fast")));
  ASSERT_TRUE(fast.status.ok()) << fast.status.ToString();
  EXPECT_EQ(fast.body, "fast");
  EXPECT_EQ(client.connections_opened(), 2u);  // the timed-out connection is not reused
}

TEST_F(HttpTest, ConnectionRefusedIsUnavailable) {
  uint16_t port = 0;
  {
    tcp::acceptor a(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(
      io_, client, Spec("POST", "http://127.0.0.1:" + std::to_string(port) + "/x", "{}"));
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.ToString();
  EXPECT_NE(r.status.message().find(std::to_string(port)), std::string::npos);
  EXPECT_FALSE(r.request_sent) << "nothing reached a peer: safe to treat as not done";
}

TEST_F(HttpTest, BadCallSpecIsInvalidArgumentAndNeverCompletesInline) {
  HttpClient client(io_);
  const std::vector<HttpCallSpec> bad = [] {
    std::vector<HttpCallSpec> v;
    v.push_back(Spec("GET", "https://127.0.0.1/"));
    v.push_back(Spec("GET", "not a url"));
    v.push_back(Spec("BAD METHOD", "http://127.0.0.1:1/"));
    HttpCallSpec h = Spec("GET", "http://127.0.0.1:1/");
    h.headers["X-Evil"] = "a\r\nInjected: 1";
    v.push_back(h);
    HttpCallSpec t = Spec("GET", "http://127.0.0.1:1/");
    t.timeout_ms = 0;
    v.push_back(t);
    return v;
  }();
  for (const HttpCallSpec& spec : bad) {
    bool inside_call = true;
    std::optional<HttpCallResult> out;
    client.Call(spec, [&](HttpCallResult r) {
      EXPECT_FALSE(inside_call);
      out = std::move(r);
    });
    inside_call = false;
    ASSERT_TRUE(RunUntil(io_, [&] { return out.has_value(); }));
    EXPECT_EQ(out->status.code(), StatusCode::kInvalidArgument) << spec.url;
  }
  EXPECT_EQ(client.connections_opened(), 0u);
}

TEST_F(HttpTest, HostNameIsResolved) {
  StartServer(Echo());
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(
      io_, client, Spec("GET", "http://localhost:" + std::to_string(server_->port()) + "/n"));
  // "localhost" may resolve to ::1 first; the client tries every address.
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.body, "GET /n ");
}

TEST_F(HttpTest, ManyConcurrentCallsAllComplete) {
  StartServer(Echo());
  HttpClient client(io_);
  constexpr int kCalls = 200;
  int ok = 0;
  int finished = 0;
  for (int i = 0; i < kCalls; ++i) {
    const std::string body = std::to_string(i);
    client.Call(Spec("POST", Url("/c"), body), [&, body](HttpCallResult r) {
      ++finished;
      if (r.status.ok() && r.body == "POST /c " + body) ++ok;
    });
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return finished == kCalls; }));
  EXPECT_EQ(ok, kCalls);
  EXPECT_LE(client.connections_opened(), static_cast<uint64_t>(kCalls));
  EXPECT_EQ(client.idle_connections(), client.connections_opened());

  // A second wave reuses the pooled connections.
  const uint64_t opened = client.connections_opened();
  finished = 0;
  ok = 0;
  for (int i = 0; i < kCalls; ++i) {
    client.Call(Spec("POST", Url("/c"), "x"), [&](HttpCallResult r) {
      ++finished;
      if (r.status.ok() && r.http_status == 200) ++ok;
    });
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return finished == kCalls; }));
  EXPECT_EQ(ok, kCalls);
  EXPECT_EQ(client.connections_opened(), opened);
}

TEST_F(HttpTest, ManyConcurrentCallsOnSeveralIoThreads) {
  std::atomic<int> handled{0};
  std::vector<std::thread> workers;
  std::mutex workers_mu;
  StartServer([&](HttpRequest&& req, Responder respond) {
    ++handled;
    HttpResponse r;
    r.body = req.body;
    if (req.body.size() % 2 == 0) {
      respond(std::move(r));
      return;
    }
    std::lock_guard lock(workers_mu);
    workers.emplace_back(
        [r = std::move(r), respond = std::move(respond)]() mutable { respond(std::move(r)); });
  });
  constexpr int kCalls = 400;
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  int ok = 0;
  {
    HttpClient client(io_);
    BackgroundIo bg(io_, 2);
    std::thread caller([&] {
      for (int i = 0; i < kCalls; ++i) {
        std::string body(static_cast<size_t>(1 + i % 5), 'a');
        client.Call(Spec("POST", Url("/m"), body), [&, body](HttpCallResult r) {
          std::lock_guard lock(mu);
          ++finished;
          if (r.status.ok() && r.body == body) ++ok;
          cv.notify_all();
        });
      }
    });
    caller.join();
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, kTestDeadline, [&] { return finished == kCalls; }));
    EXPECT_EQ(ok, kCalls);
    lock.unlock();
    server_->Stop();
    bg.Stop();
  }
  std::lock_guard lock(workers_mu);
  for (auto& t : workers) t.join();
  EXPECT_EQ(handled.load(), kCalls);
}

TEST_F(HttpTest, StalePooledConnectionIsRetriedOnce) {
  HttpServerOptions o;
  o.idle_timeout_ms = 30;
  StartServer(Echo(), o);
  HttpClient client(io_);
  HttpCallResult first = CallAndWait(io_, client, Spec("POST", Url("/a"), "1"));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_EQ(client.idle_connections(), 1u);
  // Let the server's idle timeout close the connection the client still has pooled.
  ASSERT_TRUE(RunUntil(io_, [&] { return server_->open_connections() == 0; }));
  HttpCallResult second = CallAndWait(io_, client, Spec("POST", Url("/b"), "2"));
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_EQ(second.body, "POST /b 2");
  EXPECT_EQ(client.connections_opened(), 2u);
}

TEST_F(HttpTest, DroppedResponderAnswers500) {
  StartServer([](HttpRequest&&, Responder) {});
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(io_, client, Spec("GET", Url("/drop")));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.http_status, 500);
  EXPECT_NE(r.body.find("message"), std::string::npos);
}

TEST_F(HttpTest, InvalidResponseFromHandlerBecomes500) {
  StartServer([](HttpRequest&& req, Responder respond) {
    HttpResponse r;
    if (req.path == "/status") {
      r.status = 42;
    } else {
      r.headers.emplace_back("X-Evil", "a\r\nInjected: yes");
    }
    respond(std::move(r));
  });
  HttpClient client(io_);
  for (const char* path : {"/status", "/header"}) {
    HttpCallResult r = CallAndWait(io_, client, Spec("GET", Url(path)));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.http_status, 500) << path;
  }
}

TEST_F(HttpTest, HeadResponseHasNoBody) {
  StartServer(Echo());
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(io_, client, Spec("HEAD", Url("/h")));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.body, "");
  HttpCallResult after = CallAndWait(io_, client, Spec("GET", Url("/g")));
  ASSERT_TRUE(after.status.ok()) << after.status.ToString();
  EXPECT_EQ(after.body, "GET /g ");
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST_F(HttpTest, StopClosesConnectionsAndIsIdempotent) {
  StartServer([&](HttpRequest&& req, Responder respond) {
    if (req.path == "/stop") server_->Stop();  // from inside the handler
    respond(HttpResponse{});
  });
  HttpClient client(io_);
  HttpCallResult r = CallAndWait(io_, client, Spec("GET", Url("/x")));
  ASSERT_TRUE(r.status.ok());
  const std::string url = Url("/after");
  (void)CallAndWait(io_, client, Spec("GET", Url("/stop")));
  ASSERT_TRUE(RunUntil(io_, [&] { return server_->open_connections() == 0; }));
  server_->Stop();
  HttpCallResult after = CallAndWait(io_, client, Spec("GET", url));
  EXPECT_EQ(after.status.code(), StatusCode::kUnavailable) << after.status.ToString();
}

TEST_F(HttpTest, StartReportsBindErrors) {
  StartServer(Echo());
  HttpServerOptions same;
  same.port = server_->port();
  Result<std::unique_ptr<HttpServer>> again = HttpServer::Start(io_, same, Echo());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(again.status().message().find(std::to_string(server_->port())), std::string::npos)
      << again.status().ToString();

  HttpServerOptions bad_host;
  bad_host.host = "no such host.invalid";
  Result<std::unique_ptr<HttpServer>> bad = HttpServer::Start(io_, bad_host, Echo());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("no such host.invalid"), std::string::npos);
}

TEST_F(HttpTest, ClientDestroyedWithCallsInFlightCompletesThem) {
  std::vector<Responder> pending;
  StartServer([&](HttpRequest&&, Responder respond) { pending.push_back(std::move(respond)); });
  std::optional<HttpCallResult> out;
  {
    HttpClient client(io_);
    client.Call(Spec("GET", Url("/hang")), [&](HttpCallResult r) { out = std::move(r); });
    ASSERT_TRUE(RunUntil(io_, [&] { return pending.size() == 1; }));
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return out.has_value(); }));
  EXPECT_EQ(out->status.code(), StatusCode::kUnavailable) << out->status.ToString();
}

// A scripted peer for the client's at-most-once rules: answers the first request on a connection
// and then, for the second, does what the test says.
class ScriptedServer {
 public:
  enum class Second { kCloseSilently, kPartialResponse, kUnsolicited408 };

  // With `answer_first` false even the first request is treated like the second.
  ScriptedServer(asio::io_context& io, Second second, bool answer_first = true)
      : io_(io),
        acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        second_(second),
        answer_first_(answer_first) {
    Accept();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_; }
  int requests() const { return requests_; }
  bool sent_unsolicited() const { return sent_unsolicited_; }
  // Writes a stray 408 on the connection that answered last, without a request.
  void SendUnsolicitedNow() {
    if (auto peer = last_) SendUnsolicited(peer);
  }

 private:
  struct Peer {
    explicit Peer(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::string buffer;
    int served = 0;
  };

  void Accept() {
    auto peer = std::make_shared<Peer>(io_);
    acceptor_.async_accept(peer->socket, [this, peer](const boost::system::error_code& ec) {
      if (ec) return;
      ++accepted_;
      Read(peer);
      Accept();
    });
  }

  void Read(const std::shared_ptr<Peer>& peer) {
    asio::async_read_until(
        peer->socket, asio::dynamic_buffer(peer->buffer), "\r\n\r\n",
        [this, peer](const boost::system::error_code& ec, size_t n) {
          if (ec) return;
          peer->buffer.erase(0, n);
          ++requests_;
          boost::system::error_code ignored;
          if (peer->served++ == 0 && answer_first_) {
            static const std::string kOk =
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nfirst";
            asio::async_write(peer->socket, asio::buffer(kOk),
                              [this, peer](const boost::system::error_code& e, size_t) {
                                if (e) return;
                                last_ = peer;
                                Read(peer);
                              });
            return;
          }
          if (second_ == Second::kCloseSilently) {
            peer->socket.close(ignored);
            return;
          }
          static const std::string kPartial = "HTTP/1.1 200 OK\r\nContent-Le";
          asio::async_write(peer->socket, asio::buffer(kPartial),
                            [peer](const boost::system::error_code&, size_t) {
                              boost::system::error_code ig;
                              peer->socket.close(ig);
                            });
        });
  }

  void SendUnsolicited(const std::shared_ptr<Peer>& peer) {
    last_.reset();
    static const std::string k408 = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n";
    asio::async_write(peer->socket, asio::buffer(k408),
                      [this, peer](const boost::system::error_code& e, size_t) {
                        if (!e) sent_unsolicited_ = true;
                        (void)peer;  // the pending Read keeps the connection open
                      });
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  Second second_;
  bool answer_first_;
  bool sent_unsolicited_ = false;
  std::shared_ptr<Peer> last_;
  int accepted_ = 0;
  int requests_ = 0;
};

TEST_F(HttpTest, EofBeforeAnyResponseByteOnReusedConnectionIsRetried) {
  ScriptedServer peer(io_, ScriptedServer::Second::kCloseSilently);
  HttpClient client(io_);
  const std::string url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/x";
  HttpCallResult first = CallAndWait(io_, client, Spec("GET", url));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_EQ(first.body, "first");
  HttpCallResult second = CallAndWait(io_, client, Spec("GET", url));
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_EQ(second.body, "first");  // answered by the fresh connection
  EXPECT_TRUE(second.request_sent);
  EXPECT_EQ(peer.accepted(), 2);
  EXPECT_EQ(peer.requests(), 3);
}

TEST_F(HttpTest, UnansweredRequestIsNotRetriedWhenItMustNotRunTwice) {
  ScriptedServer peer(io_, ScriptedServer::Second::kCloseSilently);
  HttpClient client(io_);
  const std::string url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/x";
  HttpCallSpec spec = Spec("POST", url, "{}");
  spec.retry_if_unanswered = false;
  HttpCallResult first = CallAndWait(io_, client, spec);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  HttpCallResult second = CallAndWait(io_, client, spec);
  EXPECT_EQ(second.status.code(), StatusCode::kUnavailable) << second.status.ToString();
  EXPECT_TRUE(second.request_sent) << "the server read it: it may have acted on it";
  EXPECT_EQ(peer.accepted(), 1);
  EXPECT_EQ(peer.requests(), 2);
}

TEST_F(HttpTest, PartialResponseIsNeverRetried) {
  ScriptedServer peer(io_, ScriptedServer::Second::kPartialResponse);
  HttpClient client(io_);
  const std::string url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/x";
  HttpCallResult first = CallAndWait(io_, client, Spec("POST", url, "{}"));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  HttpCallResult second = CallAndWait(io_, client, Spec("POST", url, "{}"));
  EXPECT_EQ(second.status.code(), StatusCode::kUnavailable) << second.status.ToString();
  EXPECT_EQ(peer.accepted(), 1);
  EXPECT_EQ(peer.requests(), 2);
}

TEST_F(HttpTest, IdleConnectionWithUnsolicitedDataIsNotReused) {
  ScriptedServer peer(io_, ScriptedServer::Second::kUnsolicited408);
  HttpClientOptions o;
  o.probe_idle_after_ms = 0;
  HttpClient client(io_, o);
  const std::string url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/x";
  HttpCallResult first = CallAndWait(io_, client, Spec("GET", url));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_EQ(client.idle_connections(), 1u);
  peer.SendUnsolicitedNow();
  ASSERT_TRUE(RunUntil(io_, [&] { return peer.sent_unsolicited(); }));
  HttpCallResult second = CallAndWait(io_, client, Spec("GET", url));
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_EQ(second.http_status, 200);  // not the stray 408
  EXPECT_EQ(second.body, "first");
  EXPECT_EQ(peer.accepted(), 2);
}

TEST_F(HttpTest, FreshConnectionClosedWithoutAnswerIsNotRetried) {
  ScriptedServer peer(io_, ScriptedServer::Second::kCloseSilently, /*answer_first=*/false);
  HttpClient client(io_);
  const std::string url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/x";
  HttpCallResult r = CallAndWait(io_, client, Spec("POST", url, "{}"));
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.ToString();
  EXPECT_TRUE(r.request_sent) << "the peer read the request and may have acted on it";
  EXPECT_EQ(peer.accepted(), 1);
  EXPECT_EQ(peer.requests(), 1);
}

}  // namespace
}  // namespace dtx::runtime
