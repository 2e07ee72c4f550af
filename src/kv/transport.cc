#include <utility>  // before Asio, see the project notes on Boost 1.74

#include "kv/transport.h"

#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "consensus/raft/codec.h"
#include "wal/wal.h"

namespace dtx::kv {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kHeaderBytes = 8;
constexpr std::string_view kHelloMagic = "DTXH";
constexpr uint8_t kHelloVersion = 1;
constexpr size_t kHelloBytes = 4 + 1 + 8;
constexpr size_t kReadChunk = 64 << 10;
constexpr int64_t kMaxBackoffMs = 1000;
constexpr int64_t kAcceptRetryMs = 100;
// A dial to a host that silently drops packets would otherwise hang for the kernel's SYN
// retries (about two minutes) while messages queue for it.
constexpr int64_t kConnectTimeoutMs = 2000;
// Written data unacknowledged this long closes the connection (TCP_USER_TIMEOUT), so a peer host
// that vanished without a reset is noticed and re-dialled.
constexpr int kUserTimeoutMs = 5000;
using TcpUserTimeout = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_USER_TIMEOUT>;

void PutU32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// *frame holds kHeaderBytes of room followed by the payload; fills in the header.
void SealFrame(std::string* frame) {
  std::string_view payload = std::string_view(*frame).substr(kHeaderBytes);
  PutU32(static_cast<uint32_t>(payload.size()), frame->data());
  PutU32(wal::Crc32c(payload), frame->data() + 4);
}

std::string HelloFrame(raft::NodeId self) {
  std::string f(kHeaderBytes, '\0');
  f.append(kHelloMagic);
  f.push_back(static_cast<char>(kHelloVersion));
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<char>(self >> (8 * i)));
  SealFrame(&f);
  return f;
}

Status Validate(const TransportOptions& o) {
  if (o.self == raft::kNoNode) return InvalidArgument("transport: self must be a node id > 0");
  std::set<raft::NodeId> seen;
  for (const PeerAddress& p : o.peers) {
    const std::string who = "transport: peer " + std::to_string(p.id);
    if (p.id == raft::kNoNode) return InvalidArgument("transport: a peer has id 0");
    if (p.id == o.self) return InvalidArgument(who + " is this node (self)");
    if (!seen.insert(p.id).second) return InvalidArgument(who + " is listed twice");
    if (p.host.empty()) return InvalidArgument(who + " has no host");
    if (p.port == 0) return InvalidArgument(who + " has port 0");
  }
  if (o.max_frame_bytes < 64 || o.max_frame_bytes > UINT32_MAX) {
    return InvalidArgument("transport: max_frame_bytes must be in [64, 2^32 - 1], got " +
                           std::to_string(o.max_frame_bytes));
  }
  if (o.max_queued_bytes_per_peer == 0) {
    return InvalidArgument("transport: max_queued_bytes_per_peer must be > 0");
  }
  if (o.hello_timeout_ms <= 0) {
    return InvalidArgument("transport: hello_timeout_ms must be > 0, got " +
                           std::to_string(o.hello_timeout_ms));
  }
  if (o.max_inbound_connections == 0) {
    return InvalidArgument("transport: max_inbound_connections must be > 0");
  }
  if (o.reconnect_backoff_ms <= 0) {
    return InvalidArgument("transport: reconnect_backoff_ms must be > 0, got " +
                           std::to_string(o.reconnect_backoff_ms));
  }
  return Status::Ok();
}

}  // namespace

class Transport::Impl : public std::enable_shared_from_this<Transport::Impl> {
 public:
  Impl(asio::io_context& io, TransportOptions options, Receiver receiver)
      : io_(io),
        options_(std::move(options)),
        receiver_(std::move(receiver)),
        acceptor_(io),
        accept_timer_(io) {
    for (const PeerAddress& a : options_.peers) {
      peers_.emplace(a.id, std::make_unique<Peer>(io, a, options_.reconnect_backoff_ms));
    }
  }

  Status Listen() {
    const std::string where = options_.listen_host + ":" + std::to_string(options_.listen_port);
    error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(options_.listen_host, std::to_string(options_.listen_port),
                                    tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Unavailable("transport: cannot resolve listen address " + where + ": " +
                         (ec ? ec.message() : "no addresses"));
    }
    const tcp::endpoint ep = results.begin()->endpoint();
    if (acceptor_.open(ep.protocol(), ec) ||
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec) ||
        acceptor_.bind(ep, ec) || acceptor_.listen(asio::socket_base::max_listen_connections, ec)) {
      error_code ignored;
      acceptor_.close(ignored);
      return Unavailable("transport: cannot listen on " + where + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return Unavailable("transport: cannot read the port of " + where + ": " + ec.message());
    return Status::Ok();
  }

  void Begin() {
    std::lock_guard l(mu_);
    StartAccept();
    for (auto& [id, peer] : peers_) StartConnect(peer.get());
  }

  void Send(std::vector<raft::Message> messages) {
    if (stopped_) return;
    std::vector<std::pair<Peer*, std::string>> frames;
    frames.reserve(messages.size());
    for (const raft::Message& m : messages) {
      auto it = peers_.find(m.to);
      if (it == peers_.end() || it->second->blocked || m.from != options_.self) {
        ++dropped_;
        continue;
      }
      std::string frame(kHeaderBytes, '\0');
      raft::EncodeMessageTo(m, &frame);
      if (frame.size() - kHeaderBytes > options_.max_frame_bytes) {
        spdlog::warn("transport {}: dropping {} of {} bytes to peer {} (max_frame_bytes {})",
                     options_.self, raft::DescribeMessage(m), frame.size() - kHeaderBytes, m.to,
                     options_.max_frame_bytes);
        ++dropped_;
        continue;
      }
      SealFrame(&frame);
      frames.emplace_back(it->second.get(), std::move(frame));
    }
    std::lock_guard l(mu_);
    if (stopped_) return;
    for (auto& [peer, frame] : frames) {
      if (peer->state == State::kBackoff ||
          peer->pending.size() + frame.size() > options_.max_queued_bytes_per_peer) {
        ++dropped_;
        continue;
      }
      if (peer->pending.empty()) {
        peer->pending = std::move(frame);
      } else {
        peer->pending += frame;
      }
      ++peer->pending_messages;
      // Posting (instead of writing here) keeps socket calls off the caller's thread and lets
      // the messages of several Sends share one write.
      if (peer->state == State::kConnected && !peer->write_in_flight && !peer->flush_posted) {
        peer->flush_posted = true;
        asio::post(io_, [self = shared_from_this(), peer = peer] {
          std::lock_guard l(self->mu_);
          peer->flush_posted = false;
          if (!self->stopped_) self->Flush(peer);
        });
      }
    }
  }

  void SetBlocked(raft::NodeId id, bool blocked) {
    auto it = peers_.find(id);
    if (it != peers_.end()) it->second->blocked = blocked;
  }

  uint16_t port() const { return port_; }

  void Stop() {
    {
      std::lock_guard l(mu_);
      stopped_ = true;
      error_code ignored;
      acceptor_.close(ignored);
      accept_timer_.cancel();
      for (auto& [id, peer] : peers_) {
        peer->resolver.cancel();
        peer->timer.cancel();
        if (peer->conn) peer->conn->socket.close(ignored);
        peer->conn.reset();
        peer->pending.clear();
        peer->state = State::kBackoff;
      }
      for (const auto& conn : inbound_) {
        conn->socket.close(ignored);
        conn->hello_timer.cancel();
      }
      inbound_.clear();
    }
    // Waits for a Receiver call running on another thread; Deliver checks stopped_ under this
    // lock, so none starts later. Recursive: Stop may be called from inside the Receiver.
    std::lock_guard g(deliver_mu_);
  }

  Stats stats() const {
    return Stats{sent_.load(),          received_.load(), dropped_.load(),
                 decode_errors_.load(), connects_.load(), refused_.load()};
  }

 private:
  enum class State { kConnecting, kConnected, kBackoff };

  struct OutConn {
    explicit OutConn(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    char probe = 0;
  };

  struct Peer {
    Peer(asio::io_context& io, PeerAddress a, int64_t backoff)
        : addr(std::move(a)), resolver(io), timer(io), backoff_ms(backoff) {}
    const PeerAddress addr;
    std::atomic<bool> blocked{false};
    // The rest is guarded by Impl::mu_.
    tcp::resolver resolver;
    asio::steady_timer timer;
    State state = State::kConnecting;
    std::shared_ptr<OutConn> conn;  // the current attempt or connection; null in kBackoff
    std::string pending;            // sealed frames not yet handed to a write
    size_t pending_messages = 0;
    bool hello_pending = false;
    bool write_in_flight = false;
    bool flush_posted = false;
    int64_t backoff_ms;
  };

  struct Inbound {
    explicit Inbound(tcp::socket s) : socket(std::move(s)), hello_timer(socket.get_executor()) {}
    tcp::socket socket;
    asio::steady_timer hello_timer;
    std::string buf;  // [0, used) received and not yet parsed
    size_t used = 0;
    raft::NodeId peer = raft::kNoNode;  // from the hello
  };

  // ---- outgoing connections (all with mu_ held) ----

  void StartConnect(Peer* peer) {
    peer->state = State::kConnecting;
    auto conn = std::make_shared<OutConn>(io_);
    peer->conn = conn;
    peer->timer.expires_after(std::chrono::milliseconds(kConnectTimeoutMs));
    peer->timer.async_wait([self = shared_from_this(), peer, conn](const error_code& ec) {
      std::lock_guard l(self->mu_);
      if (ec || self->stopped_ || peer->conn != conn || peer->state != State::kConnecting) return;
      self->ConnectFailed(peer, "timed out");
    });
    peer->resolver.async_resolve(
        peer->addr.host, std::to_string(peer->addr.port),
        [self = shared_from_this(), peer, conn](const error_code& ec,
                                                tcp::resolver::results_type results) {
          std::lock_guard l(self->mu_);
          if (self->stopped_ || peer->conn != conn) return;
          if (ec) return self->ConnectFailed(peer, "resolve: " + ec.message());
          asio::async_connect(conn->socket, results,
                              [self, peer, conn](const error_code& ec, const tcp::endpoint&) {
                                self->OnConnected(peer, conn, ec);
                              });
        });
  }

  void OnConnected(Peer* peer, const std::shared_ptr<OutConn>& conn, const error_code& ec) {
    std::lock_guard l(mu_);
    if (stopped_ || peer->conn != conn) return;
    if (ec) return ConnectFailed(peer, ec.message());
    peer->timer.cancel();
    error_code ignored;
    conn->socket.set_option(tcp::no_delay(true), ignored);
    conn->socket.set_option(TcpUserTimeout(kUserTimeoutMs), ignored);
    peer->state = State::kConnected;
    peer->backoff_ms = options_.reconnect_backoff_ms;
    peer->hello_pending = true;
    ++connects_;
    spdlog::debug("transport {}: connected to peer {} at {}:{}", options_.self, peer->addr.id,
                  peer->addr.host, peer->addr.port);
    // Nothing is ever read on an outgoing connection; a pending read learns at once that the
    // peer closed it (restart) instead of at the second write after that.
    conn->socket.async_read_some(
        asio::buffer(&conn->probe, 1),
        [self = shared_from_this(), peer, conn](const error_code& ec, size_t) {
          std::lock_guard l(self->mu_);
          if (self->stopped_ || peer->conn != conn) return;
          self->Broken(peer, ec ? ec.message() : "peer sent data on an outgoing connection");
        });
    Flush(peer);
  }

  void Flush(Peer* peer) {
    if (peer->state != State::kConnected || peer->write_in_flight) return;
    if (peer->pending.empty() && !peer->hello_pending) return;
    auto data = std::make_shared<std::string>(std::move(peer->pending));
    if (peer->hello_pending) {
      data->insert(0, HelloFrame(options_.self));
      peer->hello_pending = false;
    }
    const size_t messages = peer->pending_messages;
    peer->pending.clear();
    peer->pending_messages = 0;
    peer->write_in_flight = true;
    auto conn = peer->conn;
    asio::async_write(
        conn->socket, asio::buffer(*data),
        [self = shared_from_this(), peer, conn, data, messages](const error_code& ec, size_t) {
          std::lock_guard l(self->mu_);
          (ec ? self->dropped_ : self->sent_) += messages;
          if (self->stopped_ || peer->conn != conn) return;
          peer->write_in_flight = false;
          if (ec) return self->Broken(peer, "write: " + ec.message());
          self->Flush(peer);
        });
  }

  void ConnectFailed(Peer* peer, const std::string& reason) {
    spdlog::debug("transport {}: cannot connect to peer {} at {}:{}: {}", options_.self,
                  peer->addr.id, peer->addr.host, peer->addr.port, reason);
    Disconnect(peer);
  }

  void Broken(Peer* peer, const std::string& reason) {
    spdlog::info("transport {}: connection to peer {} lost: {}", options_.self, peer->addr.id,
                 reason);
    Disconnect(peer);
  }

  void Disconnect(Peer* peer) {
    error_code ignored;
    if (peer->conn) peer->conn->socket.close(ignored);
    peer->conn.reset();
    peer->write_in_flight = false;
    peer->hello_pending = false;
    dropped_ += peer->pending_messages;
    peer->pending.clear();
    peer->pending_messages = 0;
    peer->state = State::kBackoff;
    peer->timer.expires_after(std::chrono::milliseconds(peer->backoff_ms));
    peer->timer.async_wait([self = shared_from_this(), peer](const error_code& ec) {
      std::lock_guard l(self->mu_);
      if (ec || self->stopped_ || peer->state != State::kBackoff) return;
      self->StartConnect(peer);
    });
    peer->backoff_ms =
        std::min(peer->backoff_ms * 2, std::max(kMaxBackoffMs, options_.reconnect_backoff_ms));
  }

  // ---- incoming connections ----

  void StartAccept() {
    acceptor_.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
      std::lock_guard l(self->mu_);
      if (self->stopped_) return;
      if (ec) {
        // E.g. out of file descriptors: retrying at once would spin.
        spdlog::warn("transport {}: accept failed: {}", self->options_.self, ec.message());
        self->accept_timer_.expires_after(std::chrono::milliseconds(kAcceptRetryMs));
        self->accept_timer_.async_wait([self](const error_code& ec) {
          std::lock_guard l(self->mu_);
          if (!ec && !self->stopped_) self->StartAccept();
        });
        return;
      }
      if (self->inbound_.size() >= self->options_.max_inbound_connections) {
        ++self->refused_;
        error_code ignored;
        socket.close(ignored);
        self->StartAccept();
        return;
      }
      auto conn = std::make_shared<Inbound>(std::move(socket));
      self->inbound_.insert(conn);
      conn->hello_timer.expires_after(std::chrono::milliseconds(self->options_.hello_timeout_ms));
      conn->hello_timer.async_wait([self, conn](const error_code& ec) {
        std::lock_guard l(self->mu_);
        if (ec || self->stopped_ || conn->peer != raft::kNoNode) return;
        if (!self->inbound_.contains(conn)) return;
        ++self->decode_errors_;
        spdlog::warn("transport {}: closing a connection that sent no hello within {} ms",
                     self->options_.self, self->options_.hello_timeout_ms);
        self->CloseInbound(conn);
      });
      self->StartRead(conn);
      self->StartAccept();
    });
  }

  // mu_ held.
  void StartRead(const std::shared_ptr<Inbound>& conn) {
    // Room for a whole frame whose header has arrived, so a large frame needs few reads.
    size_t want = kReadChunk;
    if (conn->used >= kHeaderBytes) {
      const size_t frame = kHeaderBytes + GetU32(conn->buf.data());
      if (frame > conn->used) want = std::max(want, frame - conn->used);
    }
    if (conn->buf.size() < conn->used + want) {
      conn->buf.resize(conn->used + want);
    } else if (conn->buf.size() > 4 * kReadChunk && conn->used + want <= kReadChunk) {
      conn->buf.resize(kReadChunk);
      conn->buf.shrink_to_fit();
    }
    conn->socket.async_read_some(asio::buffer(conn->buf.data() + conn->used, want),
                                 [self = shared_from_this(), conn](const error_code& ec, size_t n) {
                                   self->OnRead(conn, ec, n);
                                 });
  }

  void OnRead(const std::shared_ptr<Inbound>& conn, const error_code& ec, size_t n) {
    std::vector<raft::Message> batch;
    bool keep = true;
    {
      std::lock_guard l(mu_);
      if (stopped_ || !inbound_.contains(conn)) return;
      if (ec) {
        CloseInbound(conn);
        return;
      }
      conn->used += n;
      Status s = ParseFrames(*conn, &batch);
      if (!s.ok()) {
        ++decode_errors_;
        error_code ignored;
        auto remote = conn->socket.remote_endpoint(ignored);
        spdlog::warn("transport {}: closing connection from {}:{} (peer {}): {}", options_.self,
                     remote.address().to_string(), remote.port(), conn->peer, s.message());
        CloseInbound(conn);
        keep = false;
      }
    }
    // Messages before a bad frame were valid and are delivered. The next read starts only after
    // delivery, which keeps the per-connection order even when several threads run io.
    Deliver(std::move(batch));
    if (!keep) return;
    std::lock_guard l(mu_);
    if (!stopped_ && inbound_.contains(conn)) StartRead(conn);
  }

  // mu_ held. Consumes the complete frames in conn.buf.
  Status ParseFrames(Inbound& conn, std::vector<raft::Message>* batch) {
    size_t off = 0;
    Status status;
    while (conn.used - off >= kHeaderBytes) {
      const char* h = conn.buf.data() + off;
      const uint32_t len = GetU32(h);
      if (len > options_.max_frame_bytes) {
        status =
            InvalidArgument("frame of " + std::to_string(len) + " bytes exceeds max_frame_bytes " +
                            std::to_string(options_.max_frame_bytes));
        break;
      }
      if (conn.used - off - kHeaderBytes < len) break;
      std::string_view payload(h + kHeaderBytes, len);
      if (wal::Crc32c(payload) != GetU32(h + 4)) {
        status = InvalidArgument("frame checksum mismatch");
        break;
      }
      off += kHeaderBytes + len;
      if (conn.peer == raft::kNoNode) {
        status = ParseHello(payload, &conn.peer);
        if (!status.ok()) break;
        conn.hello_timer.cancel();
        continue;
      }
      auto m = raft::DecodeMessage(payload);
      if (!m.ok()) {
        status = m.status();
        break;
      }
      if (m->from != conn.peer) {
        status = InvalidArgument("message from " + std::to_string(m->from) +
                                 " on the connection of peer " + std::to_string(conn.peer));
        break;
      }
      if (m->to != options_.self) {
        ++dropped_;
        continue;
      }
      batch->push_back(std::move(*m));
    }
    if (off > 0) {
      std::memmove(conn.buf.data(), conn.buf.data() + off, conn.used - off);
      conn.used -= off;
    }
    return status;
  }

  Status ParseHello(std::string_view p, raft::NodeId* id) const {
    if (p.size() != kHelloBytes || p.substr(0, 4) != kHelloMagic) {
      return InvalidArgument("the first frame is not a hello");
    }
    if (static_cast<uint8_t>(p[4]) != kHelloVersion) {
      return InvalidArgument("hello version " + std::to_string(static_cast<uint8_t>(p[4])) +
                             " is not supported");
    }
    raft::NodeId v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(p[5 + i])) << (8 * i);
    if (!peers_.contains(v)) {
      return InvalidArgument("hello from node " + std::to_string(v) + ", not a configured peer");
    }
    *id = v;
    return Status::Ok();
  }

  // mu_ held.
  void CloseInbound(const std::shared_ptr<Inbound>& conn) {
    error_code ignored;
    conn->socket.close(ignored);
    conn->hello_timer.cancel();
    inbound_.erase(conn);
  }

  // mu_ NOT held: the Receiver may call Send or Stop.
  void Deliver(std::vector<raft::Message> batch) {
    for (raft::Message& m : batch) {
      std::lock_guard g(deliver_mu_);
      if (stopped_) return;
      if (peers_.at(m.from)->blocked) {
        ++dropped_;
        continue;
      }
      ++received_;
      receiver_(std::move(m));
    }
  }

  asio::io_context& io_;
  const TransportOptions options_;
  const Receiver receiver_;
  // Built in the constructor and never changed, so lookups need no lock.
  std::map<raft::NodeId, std::unique_ptr<Peer>> peers_;
  uint16_t port_ = 0;

  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> sent_{0}, received_{0}, dropped_{0}, decode_errors_{0}, connects_{0},
      refused_{0};

  // Guards every socket, timer and resolver and the peers' and connections' mutable state.
  std::mutex mu_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_timer_;
  std::set<std::shared_ptr<Inbound>> inbound_;

  // Held across each Receiver call (see Stop).
  std::recursive_mutex deliver_mu_;
};

Result<std::unique_ptr<Transport>> Transport::Start(boost::asio::io_context& io,
                                                    TransportOptions options, Receiver receiver) {
  DTX_RETURN_IF_ERROR(Validate(options));
  if (!receiver) return InvalidArgument("transport: the receiver is empty");
  auto impl = std::make_shared<Impl>(io, std::move(options), std::move(receiver));
  DTX_RETURN_IF_ERROR(impl->Listen());
  impl->Begin();
  return std::unique_ptr<Transport>(new Transport(std::move(impl)));
}

Transport::Transport(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Transport::~Transport() { Stop(); }
void Transport::Send(std::vector<raft::Message> messages) { impl_->Send(std::move(messages)); }
void Transport::SetBlocked(raft::NodeId peer, bool blocked) { impl_->SetBlocked(peer, blocked); }
uint16_t Transport::port() const { return impl_->port(); }
void Transport::Stop() { impl_->Stop(); }
Transport::Stats Transport::stats() const { return impl_->stats(); }

}  // namespace dtx::kv
