// Transport: ships raft::Message values between dtxkv nodes over TCP.
//
// Every node listens on one address and dials every configured peer: one outgoing connection per
// peer, used only for writing, re-dialled with backoff whenever it breaks. A dial that has not
// completed within 2 s fails; written data left unacknowledged for 5 s breaks the connection
// (TCP_USER_TIMEOUT), so a peer host that vanished without a reset is noticed. Inbound
// connections are only read from. On a connection, every frame is
//   u32 payload length (LE) | u32 crc32c(payload) (LE) | payload
// and the first frame is a hello whose payload is "DTXH" | u8 version (1) | u64 sender id (LE);
// every later payload is raft::EncodeMessage(m). An inbound connection is closed (and
// decode_errors counted) when its hello is malformed or names an id that is not a configured
// peer or arrives later than hello_timeout_ms, when a frame is longer than max_frame_bytes or fails
// its checksum, when a payload does not decode, or when a message's `from` differs from the hello's
// id. Decoded messages whose `to` is not this node are dropped.
//
// Delivery is best effort, as Raft expects of its network: messages to an unknown or blocked
// peer, to a peer whose last connection attempt failed, beyond the per-peer queue bound, or in a
// batch whose write failed are dropped and counted. Messages queued while a connection attempt
// is in progress are sent once it succeeds. Per connection, messages arrive in the order they
// were sent.
//
// Thread-safety: Send, SetBlocked, port, stats and Stop may be called from any thread, also from
// inside the Receiver. The socket state is guarded by one internal mutex (not a strand) so that
// Stop can close everything synchronously from any thread, even one that runs `io`.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "consensus/raft/types.h"

namespace dtx::kv {

struct PeerAddress {
  raft::NodeId id = raft::kNoNode;
  std::string host;  // an IP address or a resolvable name
  uint16_t port = 0;
};

struct TransportOptions {
  raft::NodeId self = raft::kNoNode;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0 = ephemeral (tests)
  // Every other node (not self).
  std::vector<PeerAddress> peers;
  // Larger frames close the inbound connection (counted in decode_errors); larger outgoing
  // messages are dropped. In [64, 2^32 - 1].
  size_t max_frame_bytes = 64 << 20;
  // Bytes of encoded messages waiting per peer; beyond it messages are dropped (Raft
  // retransmits). > 0.
  size_t max_queued_bytes_per_peer = 64 << 20;
  // Wait between connection attempts to a peer; doubles after each failure up to
  // max(1 s, reconnect_backoff_ms) and resets on success. > 0.
  int64_t reconnect_backoff_ms = 50;
  // An inbound connection that has not sent its hello by then is closed (counted in
  // decode_errors), so idle sockets cannot pile up. > 0.
  int64_t hello_timeout_ms = 10'000;
  // Inbound connections open at once; beyond it a new one is closed at once (counted in
  // refused), so a flood of connections cannot exhaust memory or descriptors. A real peer keeps
  // one. > 0.
  size_t max_inbound_connections = 64;
};

class Transport {
 public:
  // Messages from peers, decoded, delivered on `io`'s thread(s) in arrival order per connection.
  // Calls never overlap (a later one starts after the previous returned).
  using Receiver = std::function<void(raft::Message)>;

  struct Stats {
    uint64_t sent = 0;           // messages written to a peer's socket
    uint64_t received = 0;       // messages handed to the Receiver
    uint64_t dropped = 0;        // messages dropped on either side (see above)
    uint64_t decode_errors = 0;  // inbound connections closed for a protocol violation
    uint64_t connects = 0;       // successful outgoing connections
    uint64_t refused = 0;        // inbound connections closed at max_inbound_connections
  };

  // Binds the listener and starts accepting and dialling on `io` (which the caller runs).
  // Errors: kInvalidArgument for bad options (self == 0, a peer with id 0 or == self, duplicate
  // peer ids, a peer without host or with port 0, limits out of range) or an empty receiver;
  // kUnavailable naming the address if it cannot be resolved or bound.
  // REQUIRES: io outlives the Transport and is not destroyed while running.
  static Result<std::unique_ptr<Transport>> Start(boost::asio::io_context& io,
                                                  TransportOptions options, Receiver receiver);

  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  ~Transport();  // Stop()

  // Queues messages to their `to` peers and returns at once; never blocks on the network.
  // Messages to an unknown peer, to a blocked or unreachable peer, whose `from` is not this node,
  // that encode to more than max_frame_bytes, or beyond the queue bound are dropped (counted).
  void Send(std::vector<raft::Message> messages);

  // Fault injection for real-process tests: while blocked, messages to `peer` are dropped and
  // messages from `peer` are discarded on receipt. Unknown ids are ignored.
  void SetBlocked(raft::NodeId peer, bool blocked);

  // The bound listening port (the ephemeral one when listen_port was 0).
  uint16_t port() const;

  // Closes the listener and every connection and stops reconnecting; idempotent. No Receiver
  // call starts after it returns (one running on another thread is waited for). Later Sends are
  // ignored.
  void Stop();

  Stats stats() const;

 private:
  class Impl;
  explicit Transport(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace dtx::kv
