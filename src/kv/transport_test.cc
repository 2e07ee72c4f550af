#include <utility>  // before Asio, see the project notes on Boost 1.74

#include "kv/transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "consensus/raft/codec.h"
#include "wal/wal.h"

namespace dtx::kv {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using raft::Message;
using raft::MessageType;
using raft::NodeId;

constexpr auto kDeadline = 10s;

// Runs an io_context on `threads` threads for the test's lifetime.
class IoThreads {
 public:
  explicit IoThreads(int threads = 1) : work_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoThreads() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

// What a transport's Receiver got, with waits bounded by a deadline.
class Inbox {
 public:
  Transport::Receiver receiver() {
    return [this](Message m) {
      std::lock_guard l(mu_);
      messages_.push_back(std::move(m));
      cv_.notify_all();
    };
  }
  // Waits until pred(messages) holds; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<Message>&)>& pred,
               std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return pred(messages_); });
  }
  bool WaitForContext(const std::string& ctx, std::chrono::milliseconds timeout = kDeadline) {
    return WaitFor([&](const auto& ms) { return HasContext(ms, ctx); }, timeout);
  }
  static bool HasContext(const std::vector<Message>& ms, const std::string& ctx) {
    for (const auto& m : ms) {
      if (m.context == ctx) return true;
    }
    return false;
  }
  std::vector<Message> Snapshot() {
    std::lock_guard l(mu_);
    return messages_;
  }
  std::vector<Message> From(NodeId from) {
    std::vector<Message> out;
    for (auto& m : Snapshot()) {
      if (m.from == from) out.push_back(m);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Message> messages_;
};

// Waits until cond() holds (polled after short condition-variable timeouts); false on timeout.
bool Eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = kDeadline) {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock l(mu);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    cv.wait_for(l, 5ms);
  }
  return true;
}

Message Msg(NodeId from, NodeId to, std::string context = "", uint64_t index = 0) {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.from = from;
  m.to = to;
  m.term = 3;
  m.index = index;
  m.context = std::move(context);
  return m;
}

// n distinct free ports on 127.0.0.1 (held open together so they differ, then released).
std::vector<uint16_t> FreePorts(int n) {
  asio::io_context io;
  std::vector<tcp::acceptor> acceptors;
  std::vector<uint16_t> ports;
  for (int i = 0; i < n; ++i) {
    acceptors.emplace_back(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ports.push_back(acceptors.back().local_endpoint().port());
  }
  return ports;
}

TransportOptions Options(NodeId self, const std::map<NodeId, uint16_t>& ports) {
  TransportOptions o;
  o.self = self;
  o.listen_port = ports.at(self);
  o.reconnect_backoff_ms = 10;
  for (auto [id, port] : ports) {
    if (id != self) o.peers.push_back({id, "127.0.0.1", port});
  }
  return o;
}

struct Node {
  Inbox inbox;
  std::unique_ptr<Transport> t;
};

std::unique_ptr<Node> StartNode(asio::io_context& io, TransportOptions o) {
  auto n = std::make_unique<Node>();
  auto t = Transport::Start(io, std::move(o), n->inbox.receiver());
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return nullptr;
  n->t = std::move(*t);
  return n;
}

// Sends pings from `a` to `b` until b receives one: afterwards a's connection to b is up.
// Retries because messages sent while a connection attempt is failing are dropped.
bool Connect(Node& a, NodeId from, Node& b, NodeId to) {
  static std::atomic<int> counter{0};
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string ctx = "ping-" + std::to_string(counter++);
    a.t->Send({Msg(from, to, ctx)});
    if (b.inbox.WaitForContext(ctx, 20ms)) return true;
  }
  return false;
}

// A raw client socket for protocol abuse.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  void Write(const std::string& bytes) {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);
  }
  // True if the server has closed the connection. Only called once the server counted the
  // error (and so closed the socket), so the read returns at once.
  bool ClosedByServer() {
    char c;
    boost::system::error_code ec;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

std::string Frame(std::string_view payload, std::optional<uint32_t> crc = std::nullopt,
                  std::optional<uint32_t> len = std::nullopt) {
  std::string f(8, '\0');
  const uint32_t l = len.value_or(static_cast<uint32_t>(payload.size()));
  const uint32_t c = crc.value_or(wal::Crc32c(payload));
  for (int i = 0; i < 4; ++i) {
    f[i] = static_cast<char>(l >> (8 * i));
    f[4 + i] = static_cast<char>(c >> (8 * i));
  }
  f.append(payload);
  return f;
}

std::string Hello(NodeId id) {
  std::string p = "DTXH";
  p.push_back(1);
  for (int i = 0; i < 8; ++i) p.push_back(static_cast<char>(id >> (8 * i)));
  return Frame(p);
}

class TransportTest : public ::testing::Test {
 protected:
  void StartCluster(int n, int io_threads = 1) {
    io_ = std::make_unique<IoThreads>(io_threads);
    auto ports = FreePorts(n);
    for (int i = 0; i < n; ++i) ports_[i + 1] = ports[i];
    for (int i = 1; i <= n; ++i) {
      nodes_[i] = StartNode(io_->io(), Options(i, ports_));
      ASSERT_NE(nodes_[i], nullptr);
    }
  }
  void TearDown() override {
    for (auto& [id, n] : nodes_) {
      if (n) n->t->Stop();
    }
    nodes_.clear();
    io_.reset();
  }
  Node& N(NodeId id) { return *nodes_.at(id); }

  std::unique_ptr<IoThreads> io_;
  std::map<NodeId, uint16_t> ports_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
};

TEST_F(TransportTest, ThreeNodesExchangeInAllDirectionsInOrder) {
  StartCluster(3, /*io_threads=*/2);
  for (NodeId a = 1; a <= 3; ++a) {
    for (NodeId b = 1; b <= 3; ++b) {
      if (a != b) {
        ASSERT_TRUE(Connect(N(a), a, N(b), b)) << a << "->" << b;
      }
    }
  }
  constexpr uint64_t kCount = 2000;
  std::vector<std::thread> senders;
  for (NodeId a = 1; a <= 3; ++a) {
    senders.emplace_back([&, a] {
      for (uint64_t i = 1; i <= kCount; i += 10) {
        std::vector<Message> batch;
        for (uint64_t j = i; j < i + 10; ++j) {
          for (NodeId b = 1; b <= 3; ++b) {
            if (b != a) batch.push_back(Msg(a, b, "", j));
          }
        }
        N(a).t->Send(std::move(batch));
      }
    });
  }
  for (auto& t : senders) t.join();
  for (NodeId b = 1; b <= 3; ++b) {
    for (NodeId a = 1; a <= 3; ++a) {
      if (a == b) continue;
      ASSERT_TRUE(N(b).inbox.WaitFor([&](const auto& ms) {
        uint64_t n = 0;
        for (const auto& m : ms) n += m.from == a && m.index > 0;
        return n == kCount;
      })) << "node "
          << b << " got " << N(b).inbox.From(a).size() << " from " << a;
      uint64_t expect = 1;
      for (const auto& m : N(b).inbox.From(a)) {
        if (m.index == 0) continue;  // pings
        ASSERT_EQ(m.index, expect) << a << "->" << b;
        ASSERT_EQ(m.to, b);
        ++expect;
      }
    }
  }
  for (NodeId a = 1; a <= 3; ++a) {
    auto s = N(a).t->stats();
    EXPECT_GE(s.sent, 2 * kCount);
    EXPECT_GE(s.received, 2 * kCount);
    EXPECT_EQ(s.decode_errors, 0u);
    EXPECT_GE(s.connects, 2u);
  }
}

TEST_F(TransportTest, PeerThatStartsLaterIsReached) {
  io_ = std::make_unique<IoThreads>();
  auto ports = FreePorts(2);
  ports_ = {{1, ports[0]}, {2, ports[1]}};
  nodes_[1] = StartNode(io_->io(), Options(1, ports_));
  ASSERT_NE(nodes_[1], nullptr);
  // Node 2 is not there: attempts fail and messages are dropped.
  ASSERT_TRUE(Eventually([&] {
    N(1).t->Send({Msg(1, 2, "early")});
    return N(1).t->stats().dropped >= 3;
  }));
  nodes_[2] = StartNode(io_->io(), Options(2, ports_));
  ASSERT_NE(nodes_[2], nullptr);
  ASSERT_TRUE(Connect(N(1), 1, N(2), 2));
  ASSERT_TRUE(Connect(N(2), 2, N(1), 1));
  EXPECT_GE(N(1).t->stats().connects, 1u);
}

TEST_F(TransportTest, RestartedPeerOnTheSamePortIsReachedAgain) {
  StartCluster(2);
  ASSERT_TRUE(Connect(N(1), 1, N(2), 2));
  for (int round = 0; round < 3; ++round) {
    const uint64_t connects = N(1).t->stats().connects;
    N(2).t->Stop();
    nodes_[2] = StartNode(io_->io(), Options(2, ports_));
    ASSERT_NE(nodes_[2], nullptr) << "restart " << round;
    ASSERT_TRUE(Connect(N(1), 1, N(2), 2)) << "restart " << round;
    ASSERT_TRUE(Connect(N(2), 2, N(1), 1)) << "restart " << round;
    EXPECT_GT(N(1).t->stats().connects, connects);
  }
}

TEST_F(TransportTest, BlockedPeersInBothDirections) {
  StartCluster(2);
  ASSERT_TRUE(Connect(N(1), 1, N(2), 2));
  ASSERT_TRUE(Connect(N(2), 2, N(1), 1));

  // Outgoing: dropped at Send.
  const uint64_t dropped1 = N(1).t->stats().dropped;
  N(1).t->SetBlocked(2, true);
  N(1).t->Send({Msg(1, 2, "blocked-out")});
  EXPECT_EQ(N(1).t->stats().dropped, dropped1 + 1);
  N(1).t->SetBlocked(2, false);
  N(1).t->Send({Msg(1, 2, "after-out")});
  ASSERT_TRUE(N(2).inbox.WaitForContext("after-out"));
  EXPECT_FALSE(Inbox::HasContext(N(2).inbox.Snapshot(), "blocked-out"));

  // Incoming: sent over the wire, discarded on receipt.
  const uint64_t dropped2 = N(2).t->stats().dropped;
  const uint64_t sent1 = N(1).t->stats().sent;
  N(2).t->SetBlocked(1, true);
  N(1).t->Send({Msg(1, 2, "blocked-in")});
  ASSERT_TRUE(Eventually([&] { return N(2).t->stats().dropped == dropped2 + 1; }));
  EXPECT_EQ(N(1).t->stats().sent, sent1 + 1);
  N(2).t->SetBlocked(1, false);
  N(1).t->Send({Msg(1, 2, "after-in")});
  ASSERT_TRUE(N(2).inbox.WaitForContext("after-in"));
  EXPECT_FALSE(Inbox::HasContext(N(2).inbox.Snapshot(), "blocked-in"));

  N(1).t->SetBlocked(99, true);  // unknown ids are ignored
}

TEST_F(TransportTest, ProtocolViolationsCloseTheConnectionAndGoodPeersStillWork) {
  StartCluster(3);
  ASSERT_TRUE(Connect(N(2), 2, N(1), 1));
  Message good = Msg(2, 1, "x");
  Message from3 = Msg(3, 1, "x");
  struct Case {
    std::string name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"garbage", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"short garbage frame", Frame("not a hello")},
      {"hello of an unknown id", Hello(9)},
      {"hello of self", Hello(1)},
      {"hello of a bad version", Frame(std::string("DTXH\x02", 5) + std::string(8, '\x02'))},
      {"oversized length", Hello(2) + Frame("", 0, (64u << 20) + 1)},
      {"bad crc", Hello(2) + Frame(raft::EncodeMessage(good), 12345)},
      {"undecodable payload", Hello(2) + Frame("\x07garbage")},
      {"from differs from hello", Hello(2) + Frame(raft::EncodeMessage(from3))},
  };
  for (const Case& c : cases) {
    const uint64_t errors = N(1).t->stats().decode_errors;
    RawClient raw(ports_.at(1));
    raw.Write(c.bytes);
    ASSERT_TRUE(Eventually([&] { return N(1).t->stats().decode_errors == errors + 1; })) << c.name;
    EXPECT_TRUE(raw.ClosedByServer()) << c.name;
    ASSERT_TRUE(Connect(N(2), 2, N(1), 1)) << c.name;
    ASSERT_TRUE(Connect(N(3), 3, N(1), 1)) << c.name;
  }
  EXPECT_FALSE(Inbox::HasContext(N(1).inbox.Snapshot(), "x"));
}

TEST_F(TransportTest, ConnectionWithoutHelloIsClosedAfterTheTimeout) {
  io_ = std::make_unique<IoThreads>();
  ports_ = {{1, FreePorts(1)[0]}, {2, 1}};
  auto o = Options(1, ports_);
  o.hello_timeout_ms = 50;
  nodes_[1] = StartNode(io_->io(), o);
  ASSERT_NE(nodes_[1], nullptr);
  RawClient silent(ports_.at(1));
  ASSERT_TRUE(Eventually([&] { return N(1).t->stats().decode_errors == 1; }));
  EXPECT_TRUE(silent.ClosedByServer());
  // A connection that did say hello stays open past the timeout.
  RawClient polite(ports_.at(1));
  polite.Write(Hello(2));
  RawClient silent2(ports_.at(1));
  ASSERT_TRUE(Eventually([&] { return N(1).t->stats().decode_errors == 2; }));
  polite.Write(Frame(raft::EncodeMessage(Msg(2, 1, "still-open"))));
  ASSERT_TRUE(N(1).inbox.WaitForContext("still-open"));
}

// A flood of connections is cut at max_inbound_connections; once the idle ones time out, a peer
// gets through again.
TEST_F(TransportTest, InboundConnectionsBeyondTheBoundAreClosedAtOnce) {
  io_ = std::make_unique<IoThreads>();
  ports_ = {{1, FreePorts(1)[0]}, {2, 1}};
  auto o = Options(1, ports_);
  o.max_inbound_connections = 3;
  o.hello_timeout_ms = 1500;  // long enough that all four connect before one times out
  nodes_[1] = StartNode(io_->io(), o);
  ASSERT_NE(nodes_[1], nullptr);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(std::make_unique<RawClient>(ports_.at(1)));
  RawClient extra(ports_.at(1));
  ASSERT_TRUE(Eventually([&] { return N(1).t->stats().refused == 1; }));
  EXPECT_TRUE(extra.ClosedByServer());
  // The idle ones are closed by the hello timeout; then a polite peer is served.
  ASSERT_TRUE(Eventually([&] { return N(1).t->stats().decode_errors == 3; }));
  RawClient polite(ports_.at(1));
  polite.Write(Hello(2) + Frame(raft::EncodeMessage(Msg(2, 1, "after-flood"))));
  ASSERT_TRUE(N(1).inbox.WaitForContext("after-flood"));
  EXPECT_EQ(N(1).t->stats().refused, 1u);
}

TEST_F(TransportTest, RawPeerWithAValidHelloIsServedAndMisaddressedMessagesAreDropped) {
  StartCluster(2);
  RawClient raw(ports_.at(1));
  Message to_other = Msg(2, 7, "not-for-me");
  raw.Write(Hello(2) + Frame(raft::EncodeMessage(to_other)) +
            Frame(raft::EncodeMessage(Msg(2, 1, "raw-ok"))));
  ASSERT_TRUE(N(1).inbox.WaitForContext("raw-ok"));
  EXPECT_FALSE(Inbox::HasContext(N(1).inbox.Snapshot(), "not-for-me"));
  EXPECT_EQ(N(1).t->stats().decode_errors, 0u);
  EXPECT_GE(N(1).t->stats().dropped, 1u);
}

TEST_F(TransportTest, SendToUnknownOrFromAnotherNodeIsDropped) {
  StartCluster(2);
  N(1).t->Send({Msg(1, 42), Msg(1, 1), Msg(2, 2)});
  EXPECT_EQ(N(1).t->stats().dropped, 3u);
  EXPECT_EQ(N(1).t->stats().sent, 0u);
}

TEST_F(TransportTest, OversizedOutgoingMessageIsDropped) {
  io_ = std::make_unique<IoThreads>();
  auto ports = FreePorts(2);
  ports_ = {{1, ports[0]}, {2, ports[1]}};
  for (NodeId id : {1, 2}) {
    auto o = Options(id, ports_);
    o.max_frame_bytes = 1024;
    nodes_[id] = StartNode(io_->io(), o);
    ASSERT_NE(nodes_[id], nullptr);
  }
  ASSERT_TRUE(Connect(N(1), 1, N(2), 2));
  const uint64_t dropped = N(1).t->stats().dropped;
  N(1).t->Send({Msg(1, 2, std::string(2000, 'a'))});
  EXPECT_EQ(N(1).t->stats().dropped, dropped + 1);
}

TEST_F(TransportTest, QueueBeyondTheBoundIsDropped) {
  io_ = std::make_unique<IoThreads>();
  // The peer is a listener that never accepts: the connection completes in the kernel's
  // backlog, so node 1 is connected while nothing drains its queue faster than one write.
  asio::io_context raw_io;
  tcp::acceptor silent(raw_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ports_ = {{1, FreePorts(1)[0]}, {2, silent.local_endpoint().port()}};
  auto o = Options(1, ports_);
  o.max_queued_bytes_per_peer = 4096;
  nodes_[1] = StartNode(io_->io(), o);
  ASSERT_NE(nodes_[1], nullptr);
  ASSERT_TRUE(Eventually([&] { return N(1).t->stats().connects == 1; }));
  std::vector<Message> batch;
  for (int i = 0; i < 100; ++i) batch.push_back(Msg(1, 2, std::string(1000, 'q')));
  N(1).t->Send(std::move(batch));
  const auto s = N(1).t->stats();
  EXPECT_GE(s.dropped, 90u);
  EXPECT_LT(s.dropped, 100u);
}

TEST_F(TransportTest, HangingConnectAttemptTimesOut) {
  io_ = std::make_unique<IoThreads>();
  // A listener whose accept queue is full: the kernel drops further SYNs, so a dial hangs.
  asio::io_context raw_io;
  tcp::acceptor full(raw_io);
  full.open(tcp::v4());
  full.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  full.listen(0);
  const uint16_t port = full.local_endpoint().port();
  // async_connect starts a non-blocking connect at once; raw_io never runs, nothing waits.
  std::vector<std::unique_ptr<tcp::socket>> fillers;
  for (int i = 0; i < 3; ++i) {
    fillers.push_back(std::make_unique<tcp::socket>(raw_io));
    fillers.back()->async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                  [](const boost::system::error_code&) {});
  }
  ports_ = {{1, FreePorts(1)[0]}, {2, port}};
  nodes_[1] = StartNode(io_->io(), Options(1, ports_));
  ASSERT_NE(nodes_[1], nullptr);
  // Queued while the attempt is pending, dropped when it times out (2 s).
  N(1).t->Send({Msg(1, 2, "waits")});
  EXPECT_EQ(N(1).t->stats().dropped, 0u);
  ASSERT_TRUE(Eventually([&] { return N(1).t->stats().dropped == 1; }));
  EXPECT_EQ(N(1).t->stats().connects, 0u);
}

TEST_F(TransportTest, BadOptionsAreRefused) {
  IoThreads io;
  auto refused = [&](TransportOptions o, const std::string& what) {
    Inbox inbox;
    auto t = Transport::Start(io.io(), std::move(o), inbox.receiver());
    ASSERT_FALSE(t.ok()) << what;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << what;
    EXPECT_NE(t.status().message().find(what), std::string::npos) << t.status().ToString();
  };
  TransportOptions base;
  base.self = 1;
  base.peers = {{2, "127.0.0.1", 7001}, {3, "127.0.0.1", 7002}};
  auto with = [&](const std::function<void(TransportOptions&)>& f) {
    TransportOptions o = base;
    f(o);
    return o;
  };
  refused(with([](auto& o) { o.self = 0; }), "self");
  refused(with([](auto& o) { o.peers[0].id = 0; }), "id 0");
  refused(with([](auto& o) { o.peers[0].id = 1; }), "is this node");
  refused(with([](auto& o) { o.peers[1].id = 2; }), "listed twice");
  refused(with([](auto& o) { o.peers[0].port = 0; }), "port 0");
  refused(with([](auto& o) { o.peers[0].host = ""; }), "no host");
  refused(with([](auto& o) { o.max_frame_bytes = 10; }), "max_frame_bytes");
  refused(with([](auto& o) { o.max_queued_bytes_per_peer = 0; }), "max_queued_bytes_per_peer");
  refused(with([](auto& o) { o.reconnect_backoff_ms = 0; }), "reconnect_backoff_ms");
  refused(with([](auto& o) { o.hello_timeout_ms = -1; }), "hello_timeout_ms");
  refused(with([](auto& o) { o.max_inbound_connections = 0; }), "max_inbound_connections");
  auto no_receiver = Transport::Start(io.io(), base, nullptr);
  ASSERT_FALSE(no_receiver.ok());
  EXPECT_EQ(no_receiver.status().code(), StatusCode::kInvalidArgument);

  // A port already listened on.
  asio::io_context raw_io;
  tcp::acceptor busy(raw_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = busy.local_endpoint().port();
  Inbox inbox;
  auto t =
      Transport::Start(io.io(), with([&](auto& o) { o.listen_port = port; }), inbox.receiver());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(t.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << t.status().ToString();
  auto bad_host = Transport::Start(io.io(), with([](auto& o) { o.listen_host = "256.1.1.1"; }),
                                   inbox.receiver());
  ASSERT_FALSE(bad_host.ok());
  EXPECT_EQ(bad_host.status().code(), StatusCode::kUnavailable);
}

TEST_F(TransportTest, LargeMessageArrivesIntact) {
  StartCluster(2);
  ASSERT_TRUE(Connect(N(1), 1, N(2), 2));
  Message big = Msg(1, 2, "big");
  big.type = MessageType::kApp;
  for (uint64_t i = 1; i <= 10; ++i) {
    std::string data(1 << 20, '\0');
    for (size_t j = 0; j < data.size(); ++j) data[j] = static_cast<char>((i * 131 + j * 7) & 0xff);
    big.entries.push_back(raft::Entry{2, i, raft::EntryType::kNormal, std::move(data)});
  }
  N(1).t->Send({big, Msg(1, 2, "after-big")});
  ASSERT_TRUE(N(2).inbox.WaitForContext("after-big"));
  auto got = N(2).inbox.From(1);
  ASSERT_GE(got.size(), 2u);
  EXPECT_TRUE(got[got.size() - 2] == big);
}

TEST_F(TransportTest, StopWithQueuedMessagesIsCleanAndNoReceiverCallFollows) {
  StartCluster(2, /*io_threads=*/2);
  ASSERT_TRUE(Connect(N(1), 1, N(2), 2));
  std::atomic<bool> stop_returned{false};
  std::atomic<int> late_calls{0};
  // Replace node 2 by one whose receiver notices calls after Stop returned.
  N(2).t->Stop();
  auto inbox = std::make_unique<Inbox>();
  auto started = Transport::Start(io_->io(), Options(2, ports_), [&](Message m) {
    if (stop_returned) ++late_calls;
    inbox->receiver()(std::move(m));
  });
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto t2 = std::move(*started);
  ASSERT_TRUE(Eventually([&] {
    N(1).t->Send({Msg(1, 2, "hello-again")});
    return inbox->WaitForContext("hello-again", 10ms);
  }));
  for (int i = 0; i < 50; ++i) {
    std::vector<Message> batch;
    for (int j = 0; j < 20; ++j) batch.push_back(Msg(1, 2, std::string(10000, 'z')));
    N(1).t->Send(std::move(batch));
  }
  t2->Stop();
  stop_returned = true;
  t2->Stop();  // idempotent
  // Node 1 keeps sending until it notices the closed connection.
  const uint64_t connects = N(1).t->stats().connects;
  ASSERT_TRUE(Eventually([&] {
    N(1).t->Send({Msg(1, 2, "more")});
    return N(1).t->stats().dropped > 0 && N(1).t->stats().connects == connects;
  }));
  // Node 1 stops with a full queue.
  for (int j = 0; j < 20; ++j) N(1).t->Send({Msg(1, 2, std::string(100000, 'w'))});
  N(1).t->Stop();
  N(1).t->Send({Msg(1, 2, "after-stop")});
  t2.reset();
  EXPECT_EQ(late_calls.load(), 0);
}

TEST_F(TransportTest, StopFromInsideTheReceiverDoesNotDeadlock) {
  StartCluster(1);
  auto ports = FreePorts(1);
  ports_[2] = ports[0];
  std::unique_ptr<Transport> t2;
  std::atomic<int> calls{0};
  std::mutex mu;
  std::condition_variable cv;
  bool stopped = false;
  auto o1 = Options(1, ports_);
  nodes_[1]->t->Stop();
  nodes_[1] = StartNode(io_->io(), o1);
  ASSERT_NE(nodes_[1], nullptr);
  auto started = Transport::Start(io_->io(), Options(2, ports_), [&](Message) {
    ++calls;
    t2->Stop();
    std::lock_guard l(mu);
    stopped = true;
    cv.notify_all();
  });
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  t2 = std::move(*started);
  std::unique_lock l(mu);
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!stopped && std::chrono::steady_clock::now() < deadline) {
    l.unlock();
    N(1).t->Send({Msg(1, 2, "stop-me")});
    l.lock();
    cv.wait_for(l, 20ms, [&] { return stopped; });
  }
  ASSERT_TRUE(stopped);
  l.unlock();
  N(1).t->Send({Msg(1, 2, "ignored")});
  EXPECT_EQ(calls.load(), 1);
  t2.reset();
}

}  // namespace
}  // namespace dtx::kv
