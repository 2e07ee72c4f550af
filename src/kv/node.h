// A dtxkv node: one member of a replicated key-value cluster. It runs the Raft core
// (consensus/raft) over the durable WalStorage, talks to its peers through kv::Transport (TCP)
// and serves clients over HTTP:
//
//   PUT    /v1/kv/<key>   body = value            200 {"index":N}
//   GET    /v1/kv/<key>   linearizable read       200 body = value | 404 {"message":...}
//          ?stale=true    read this node's state, no round trip (may be stale)
//   DELETE /v1/kv/<key>                           200 {"deleted":bool,"index":N}
//   POST   /v1/cas/<key>  {"expect": string|null, "value": string}
//                                                 200 {"swapped":true,"index":N}
//                                                 409 {"swapped":false,"current":string|null,...}
//   GET    /v1/status     {"id","role","term","leader","commit","applied","last_index",
//                          "snapshot_index","keys","state_bytes","snapshots_installed",
//                          "snapshot_images_built","members":[{"id","peer","http"}]}
//
// Any node accepts any request: a node that is not the leader forwards it over HTTP to the
// leader it knows and relays the answer. Errors are JSON {"message": ...}:
//   400 bad input (key, value, JSON); 404 unknown route or absent key; 405 wrong method;
//   503 definitely not done: no leader known (no quorum, or an election running), the leader
//       unreachable before the request was sent, leadership changed before the write was
//       committed, or a read that no quorum confirmed in time - retrying is safe;
//   504 outcome unknown: a write not applied within the request timeout (it may still commit),
//       or a forwarded request whose answer did not arrive.
// A write is answered only after its entry is committed (on a quorum's disks, fsync'ed) and
// applied here. Acknowledged means durable.
//
// Storage: the Raft log in data_dir/raft (WalStorage), the key-value state in a RocksDB database
// in data_dir/state (kv::StateMachine), written without its own WAL or sync: on restart the node
// re-applies the log after the state's stored applied index. Memory is bounded by RocksDB's
// memtables and cache and by the log kept since the last compaction (snapshot_min_bytes), not
// by the data size.
//
// With test_faults, POST /v1/test/block?peer=ID and /v1/test/unblock?peer=ID cut and restore
// the Raft traffic between this node and a peer (both directions, as seen from this node) and
// stop forwarding to it: a network partition for real-process tests.
//
// Thread-safety: Start/Stop/Wait from one controlling thread; the node runs on its own io thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "consensus/raft/types.h"

namespace dtx::kv {

struct Member {
  raft::NodeId id = raft::kNoNode;
  std::string peer_host;
  uint16_t peer_port = 0;
  std::string http_host;
  uint16_t http_port = 0;
  bool operator==(const Member&) const = default;
};

// Parses "ID,PEER_HOST:PORT,HTTP_HOST:PORT" (e.g. "1,127.0.0.1:7001,127.0.0.1:8001").
// kInvalidArgument naming what is wrong.
Result<Member> ParseMember(std::string_view spec);

struct NodeOptions {
  raft::NodeId id = raft::kNoNode;
  std::vector<Member> members;  // every member, this node included; 1, 3, 5 or 7 of them
  std::string data_dir;         // created if missing; holds the Raft WAL
  Env* env = Env::Posix();
  int64_t tick_ms = 20;
  int election_ticks = 10;  // election timeout: [election_ticks, 2*election_ticks) ticks
  int heartbeat_ticks = 1;
  int64_t request_timeout_ms = 5'000;  // a write or read not done by then: 504 / 503
  bool test_faults = false;            // enables /v1/test/block and /v1/test/unblock
  // Log compaction: once the entries applied since the last compaction hold more than
  // snapshot_min_bytes, a worker thread persists the state (a RocksDB flush), then the log up to
  // that point is dropped (memory and disk) and the local snapshot records only the index. A
  // leader waits, up to twice the threshold, for its live followers to have the entries. A
  // follower that needs dropped entries gets an image of the state built on the worker thread
  // from a pinned view; it travels in one message, so the data is limited to ~1 GiB.
  uint64_t snapshot_min_bytes = 32ull << 20;

  // kInvalidArgument naming the first problem (unknown id, duplicate ids or addresses, even or
  // zero member count, bad timings).
  Status Validate() const;
};

class Node {
 public:
  // Opens the storage (kDataLoss if corrupt; kUnavailable if another process holds it), binds
  // the peer and HTTP ports (kUnavailable naming the address), and starts the io thread.
  static Result<std::unique_ptr<Node>> Start(NodeOptions options);

  ~Node();  // Stop()
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  uint16_t http_port() const;
  uint16_t peer_port() const;

  // Stops serving and joins the io thread. Idempotent. Everything acknowledged is on disk.
  void Stop();
  // Blocks until the node stops: OK after Stop(), the error after a fatal storage failure (the
  // node stops itself: it cannot promise durability any more).
  Status Wait();

  class Impl;

 private:
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtx::kv
