#include <utility>

#include "dtxbench/load.h"

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <thread>

namespace dtx::bench {
namespace {

// An HTTP server on its own thread that answers 200, or 500 for paths starting with /bad.
class Server {
 public:
  Server() : work_(boost::asio::make_work_guard(io_)) {
    auto s = runtime::HttpServer::Start(
        io_, {}, [this](runtime::HttpRequest&& req, runtime::Responder respond) {
          calls_.fetch_add(1);
          runtime::HttpResponse r;
          r.status = req.path.rfind("/bad", 0) == 0 ? 500 : 200;
          respond(std::move(r));
        });
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Server() {
    server_->Stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  uint64_t calls() const { return calls_.load(); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpServer> server_;
  std::thread thread_;
  std::atomic<uint64_t> calls_{0};
};

TEST(LoadTest, CountModeIssuesExactlyCountRequests) {
  Server server;
  LoadSpec spec;
  spec.threads = 2;
  spec.concurrency = 7;
  spec.count = 301;
  std::atomic<uint64_t> max_ticket{0};
  spec.make = [&](uint64_t ticket) {
    uint64_t seen = max_ticket.load();
    while (ticket > seen && !max_ticket.compare_exchange_weak(seen, ticket)) {
    }
    runtime::HttpCallSpec s;
    s.url = server.Url(ticket % 3 == 0 ? "/bad" : "/ok");
    return s;
  };
  std::atomic<uint64_t> last_completed{0};
  spec.on_complete = [&](uint64_t done) {
    uint64_t seen = last_completed.load();
    while (done > seen && !last_completed.compare_exchange_weak(seen, done)) {
    }
  };
  LoadResult r = RunLoad(spec);
  EXPECT_EQ(r.ok + r.errors, 301u);
  EXPECT_EQ(r.errors, 101u);  // tickets 0, 3, ..., 300
  EXPECT_EQ(r.first_error.rfind("HTTP 500", 0), 0u) << r.first_error;
  EXPECT_EQ(r.latencies_us.size(), 301u);
  EXPECT_EQ(server.calls(), 301u);
  EXPECT_EQ(max_ticket.load(), 300u);
  EXPECT_EQ(last_completed.load(), 301u);
  EXPECT_GT(r.seconds, 0);
}

TEST(LoadTest, DeadlineModeStops) {
  Server server;
  LoadSpec spec;
  spec.threads = 1;
  spec.concurrency = 3;
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(150);
  spec.make = [&](uint64_t) {
    runtime::HttpCallSpec s;
    s.url = server.Url("/ok");
    return s;
  };
  LoadResult r = RunLoad(spec);
  EXPECT_GT(r.ok, 0u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(server.calls(), r.ok);
  EXPECT_GT(r.rate(), 0);
}

TEST(LoadTest, UnreachableServerCountsErrors) {
  LoadSpec spec;
  spec.threads = 1;
  spec.concurrency = 2;
  spec.count = 4;
  spec.make = [](uint64_t) {
    runtime::HttpCallSpec s;
    s.url = "http://127.0.0.1:1/";  // nothing listens on port 1
    s.timeout_ms = 1'000;
    return s;
  };
  LoadResult r = RunLoad(spec);
  EXPECT_EQ(r.ok, 0u);
  EXPECT_EQ(r.errors, 4u);
  EXPECT_FALSE(r.first_error.empty());
}

TEST(LoadTest, MoreThreadsThanWorkersIsFine) {
  Server server;
  LoadSpec spec;
  spec.threads = 4;
  spec.concurrency = 1;
  spec.count = 5;
  spec.make = [&](uint64_t) {
    runtime::HttpCallSpec s;
    s.url = server.Url("/ok");
    return s;
  };
  EXPECT_EQ(RunLoad(spec).ok, 5u);
}

TEST(PercentileTest, PicksTheQuantile) {
  std::vector<uint32_t> v;
  for (uint32_t i = 100; i >= 1; --i) v.push_back(i * 1000);  // 1..100 ms
  EXPECT_DOUBLE_EQ(PercentileMs(v, 0.5), 51.0);
  EXPECT_DOUBLE_EQ(PercentileMs(v, 0.99), 100.0);
  EXPECT_DOUBLE_EQ(PercentileMs(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(PercentileMs(v, 1.0), 100.0);
  std::vector<uint32_t> empty;
  EXPECT_DOUBLE_EQ(PercentileMs(empty, 0.5), 0.0);
}

}  // namespace
}  // namespace dtx::bench
