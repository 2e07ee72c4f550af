// RaftCluster: a deterministic, directed test harness for the Raft core, in the shape of the
// MIT 6.824 lab 2 test configuration. Where src/sim/raft_sim.h runs random fault schedules,
// here the test decides every fault (disconnect node 2, crash the leader, make the network
// unreliable) and checks the outcome with the helpers below.
//
// The cluster: N nodes (3..7), node ids 1..N, each a raft::RawNode over a raft::WalStorage on its
// own MemEnv. Everything runs in virtual time on one thread: an event queue ordered by
// (time, sequence) holds node ticks (every options.tick, a random phase per node; election_tick
// 10, heartbeat_tick 1, so the randomized election timeout is 100..200 ms with the default tick)
// and message deliveries. Every random choice (message delays, drops, each node's core seed,
// crash tears) comes from one dtx::Rand seeded by options.seed, so a run is a pure function of
// the seed and of the test's calls.
//
// Each Ready is handled by its contract (raft.h): WalStorage::Persist (a leader's snapshot saved,
// entries appended and synced when must_sync, hard state saved), only then its messages handed
// to the network, then the state machine (the sequence of applied commands with their terms)
// restored from the Ready's snapshot if any and its committed entries applied, then Advance. The
// apply step checks state-machine safety: the command (and entry term) a node applies at an
// index must equal what every node ever applied there, across restarts and snapshot restores;
// and a node applies indexes in order without gaps and never goes back. The harness also checks
// election safety (at most one leader per term) on every Ready. A violation is recorded with the
// seed and details; every checking helper returns it as an error, and Check() reports it at the
// end of a test.
//
// Snapshots (options.snapshot_every > 0): after a Ready, a node whose state machine applied that
// many entries beyond its latest snapshot compacts its log with
// WalStorage::SaveSnapshotAndCompact, the image being the whole applied sequence. A lagging
// follower then gets the leader's snapshot (kSnap) and restores its state machine from it; a
// restarted node restores from its stored snapshot before it applies anything.
//
// Network: each message gets a delay in [min_delay, max_delay] (reliable mode). Unreliable mode
// adds drops (10%), longer delays (up to 15 ms, so more reordering) and duplicates (5%); long
// reordering delays a third of the messages by 100..1000 ms. A disconnected node neither sends
// nor receives: its messages are dropped when sent, and a message is also dropped at delivery if
// either end is disconnected by then. Messages addressed to a node are dropped if it crashed
// after they were sent (even if it restarted since); messages it sent before crashing are
// already on the wire and may still arrive.
//
// Crash(id) is a machine crash: MemEnv::SimulateCrash loses the unsynced writes (and may tear
// the last one), the node and its state machine are gone. Restart(id) reopens the WAL and
// builds a new RawNode with an empty state machine that is rebuilt by re-applying the committed
// entries as the node learns of them (each re-applied command is checked again). Crash and
// Restart leave the connected/disconnected flag as it was.
//
// Membership changes: options.spares extra node ids N+1..N+spares exist from the start but stay
// down and outside the configuration until AddNode starts one with empty storage; a test then
// adds it with ChangeConf (as a learner, then promoted, or directly as a voter) and removes
// members the same way, one server at a time (RawNode::ProposeConfChange). Every node boots
// with the initial configuration (voters 1..N), a spare also listing itself as a learner so it
// never campaigns before its log or snapshot makes it a voter; snapshots record the
// configuration at their index. A removed node keeps running until the test crashes it. The
// apply step also checks the configurations: every node has the same committed configuration
// after each committed change, consecutive committed configurations differ by at most one
// voter, and a restored snapshot records the committed configuration at its index.
//
// Bad input (a node id outside 1..N+spares, a bad option) never crashes the process: factory and
// checking helpers return kInvalidArgument; void methods record a violation that the next check
// reports.
//
// Thread-safety: not thread-safe; one test thread drives a cluster.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/rand.h"
#include "base/status.h"
#include "consensus/raft/raft.h"
#include "consensus/raft/types.h"
#include "consensus/raft/wal_storage.h"

namespace dtx::sim {

// Virtual time and durations, in microseconds (std::chrono literals such as 500ms convert).
using Duration = std::chrono::microseconds;

struct RaftClusterOptions {
  int nodes = 3;  // 3..7
  uint64_t seed = 1;
  Duration tick{10'000};  // one RawNode::Tick per node per tick; > 0
  // Reliable-mode delay range of every message. 0 < min_delay <= max_delay < tick.
  Duration min_delay{200};
  Duration max_delay{2'000};
  // Compact after this many applied entries beyond the latest snapshot; 0: never.
  uint64_t snapshot_every = 0;
  // Extra node ids for membership changes (see the file comment). 0..4.
  int spares = 0;
  // Deliberately broken variant for the harness's self-test: the WAL acknowledges appends
  // without syncing them, so a crash loses entries the node reported as persisted. Never set
  // outside that test.
  bool skip_sync = false;

  // kInvalidArgument naming the first bad field.
  Status Validate() const;
};

// Where a node dies while it installs a snapshot from its leader (CrashDuringNextInstall).
enum class InstallCrash {
  kNone,
  // The persist fails halfway (fsync errors: the snapshot and WAL writes are on their way but not
  // durable) and the node dies before sending or applying anything.
  kInsidePersist,
  // The snapshot is persisted, the node dies before acknowledging it.
  kBeforeSend,
  // The snapshot is persisted and acknowledged, the node dies before restoring its state machine.
  kAfterSend,
};

// A proposal accepted by a node that believes it leads: the entry's index and term.
struct Proposal {
  uint64_t index = 0;
  uint64_t term = 0;
};

// How many live state machines have applied an index, and the command there ("" if none).
struct Committed {
  int count = 0;
  std::string command;
};

class RaftCluster {
 public:
  // The upper bound of the randomized election timeout with the default tick (2 * 10 ticks).
  static constexpr Duration kElectionTimeout{200'000};

  // Builds and starts the cluster at virtual time 0 (all nodes up and connected).
  // kInvalidArgument for bad options; any WAL or core error as it comes.
  static Result<std::unique_ptr<RaftCluster>> Create(const RaftClusterOptions& options);
  ~RaftCluster();
  RaftCluster(const RaftCluster&) = delete;
  RaftCluster& operator=(const RaftCluster&) = delete;

  // Every node id, spares included: ids are 1..size().
  int size() const { return static_cast<int>(nodes_.size()); }
  uint64_t seed() const { return opts_.seed; }
  Duration now() const { return Duration(now_us_); }
  // A random stream for the test's own choices (which node to disconnect...), seeded from the
  // cluster's seed but separate from the harness's stream.
  Rand& rand() { return test_rand_; }

  // Runs the event queue for `d` of virtual time (events at exactly now + d included).
  void RunFor(Duration d);

  // ---- faults
  void Disconnect(raft::NodeId id);
  void Connect(raft::NodeId id);
  bool connected(raft::NodeId id) const;
  // Drops, longer delays and duplicates (see the file comment). Off by default.
  void SetUnreliable(bool on) { unreliable_ = on; }
  // A third of the messages delayed by 100..1000 ms. Off by default.
  void SetLongReordering(bool on) { long_reordering_ = on; }
  // Machine crash (no-op if already down).
  void Crash(raft::NodeId id);
  // Reopens a crashed node from its WAL (crashes it first if it is up). The error (also
  // recorded as a violation) when the WAL or the core refuses to reopen.
  Status Restart(raft::NodeId id);
  bool up(raft::NodeId id) const;

  // ---- clients
  // Proposes `command` at node `id`. kFailedPrecondition when the node is down or does not
  // believe it leads (the core's message names the leader it knows), kInvalidArgument for a bad
  // id or an empty command (empty data is the leader's no-op entry).
  Result<Proposal> Propose(raft::NodeId id, std::string command);

  // ---- membership changes
  // Starts spare node `id` with empty storage (it joins nothing until a ChangeConf adds it).
  // kInvalidArgument for an id that is no spare, kFailedPrecondition if it was started before.
  Status AddNode(raft::NodeId id);
  // Proposes `cc` at node `id` (RawNode::ProposeConfChange and its errors); returns the index.
  Result<uint64_t> ProposeConfChange(raft::NodeId id, const raft::ConfChange& cc);
  // Drives `cc` until it is committed: proposes it at the leader of the moment (again after a
  // leader change lost it) and waits until a leader's committed configuration reflects it (an
  // added voter is a voter, an added learner a learner, a removed node gone). Gives up after
  // 10 s of virtual time; the error names the last refusal. `between`, if set, runs before each
  // 20 ms wait (a test keeps client traffic flowing with it).
  Status ChangeConf(const raft::ConfChange& cc, const std::function<void()>& between = nullptr);
  // The configuration in effect at node `id` (the latest in its log); empty for a down node.
  raft::ConfState conf_state(raft::NodeId id) const;

  // ---- checks in the style of the 6.824 config; each first returns any recorded violation.
  // Waits up to 10 rounds of ~500 ms for a leader among the up, connected nodes; fails if two
  // of them lead the same term; returns the leader of the highest term.
  Result<raft::NodeId> CheckOneLeader();
  // No up, connected node believes it leads (now; no waiting).
  Status CheckNoLeader();
  // All up, connected nodes are in the same term; returns it.
  Result<uint64_t> CheckTerms();
  // How many up nodes' state machines hold `index`, and the command there.
  Result<Committed> NCommitted(uint64_t index);
  // Submits `command` to a node that accepts it (trying the up, connected nodes in turn), then
  // waits up to 2 s for at least `expected` state machines to apply `command` at its index. With
  // retry, a proposal that fails to commit is re-submitted; without, that is an error. Gives up
  // after 10 s of virtual time. Returns the index. REQUIRES 1 <= expected <= size().
  Result<uint64_t> One(const std::string& command, int expected, bool retry);
  // The first recorded violation (with how many there were), or Ok.
  Status Check() const;
  const std::vector<std::string>& violations() const { return violations_; }

  // ---- inspection (a down node reports follower, term 0, indexes 0)
  raft::Role role(raft::NodeId id) const;
  uint64_t term(raft::NodeId id) const;
  uint64_t last_index(raft::NodeId id) const;
  uint64_t applied(raft::NodeId id) const;
  // The first index still in the node's storage (1 until it compacts).
  uint64_t first_index(raft::NodeId id) const;
  // Snapshots received from leaders that a state machine was restored from (all nodes).
  uint64_t snapshots_installed() const { return installs_; }
  // Compactions done by the nodes (all nodes).
  uint64_t compactions() const { return compactions_; }
  // The up, connected node of the highest term that believes it leads, or kNoNode (no waiting).
  raft::NodeId Leader() const;

  // ---- message counters: every message an up node hands to the network (also those then
  // dropped because of a disconnect or unreliability).
  uint64_t messages_sent() const { return sent_total_; }
  uint64_t messages_sent(raft::MessageType type) const;
  // Called for every message counted above, in send order (nullptr clears).
  void SetMessageObserver(std::function<void(const raft::Message&)> observer) {
    observer_ = std::move(observer);
  }

  // ---- the harness's self-test
  // The next entry node `id` applies is applied with a different command, as a buggy state
  // machine would: the apply check must catch it.
  void CorruptNextApply(raft::NodeId id);
  // From now on, every snapshot image node `id` compacts to has its last command altered, as a
  // buggy serializer would: restoring from it must be caught.
  void CorruptSnapshots(raft::NodeId id);

  // ---- crash points
  // The next Ready of node `id` that carries a snapshot from its leader crashes the node at
  // `where` (kNone disarms). The node stays down until Restart.
  void CrashDuringNextInstall(raft::NodeId id, InstallCrash where);

 private:
  struct AppliedEntry {
    uint64_t term = 0;
    std::string command;
    raft::EntryType type = raft::EntryType::kNormal;
  };
  struct Node {
    raft::NodeId id = raft::kNoNode;
    std::unique_ptr<MemEnv> env;
    std::unique_ptr<raft::WalStorage> storage;
    std::unique_ptr<raft::RawNode> raft;
    bool up = false;
    bool connected = true;
    uint64_t incarnation = 0;
    bool corrupt_next_apply = false;
    bool corrupt_snapshots = false;
    InstallCrash install_crash = InstallCrash::kNone;
    uint64_t snapshot_index = 0;  // of the latest snapshot in storage
    // The state machine: applied[i] is the entry at index i + 1.
    std::vector<AppliedEntry> applied;
  };
  struct AppliedRecord {
    std::string command;
    uint64_t term = 0;
    raft::NodeId node = raft::kNoNode;
    raft::EntryType type = raft::EntryType::kNormal;
  };
  struct Event {
    int64_t t = 0;
    uint64_t seq = 0;
    bool tick = false;  // else a delivery
    raft::NodeId node = raft::kNoNode;
    uint64_t incarnation = 0;
    raft::Message msg;
  };

  explicit RaftCluster(const RaftClusterOptions& options);

  bool ValidId(raft::NodeId id) const { return id >= 1 && id <= nodes_.size(); }
  Status BadId(raft::NodeId id) const;
  Node& N(raft::NodeId id) { return nodes_[id - 1]; }
  const Node& N(raft::NodeId id) const { return nodes_[id - 1]; }
  void Push(Event ev);
  Status Start(Node& node);
  void OnTick(raft::NodeId id, uint64_t incarnation);
  void OnDeliver(Event& ev);
  void Process(Node& node);
  void Send(const raft::Message& m);
  void Apply(Node& node, const raft::Entry& e);
  // Checks an entry against everything applied at its index before; records it if first.
  void CheckApplied(const Node& node, uint64_t index, const AppliedEntry& entry, const char* how);
  // Replaces the state machine with a snapshot's image (checked entry by entry).
  Status Restore(Node& node, const raft::Snapshot& snap);
  void MaybeCompact(Node& node);
  // A committed configuration change being applied at node: the configuration checks.
  void CheckConfChange(Node& node, const raft::Entry& e);
  void Violation(const std::string& what);
  Status Fail(const std::string& what) const;

  RaftClusterOptions opts_;
  Rand rand_;
  Rand test_rand_;
  int64_t now_us_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t events_ = 0;
  bool stopped_ = false;      // the event budget ran out (recorded as a violation)
  std::vector<Event> queue_;  // a heap ordered by (t, seq)
  std::vector<Node> nodes_;
  bool unreliable_ = false;
  bool long_reordering_ = false;
  std::map<uint64_t, AppliedRecord> applied_;  // index -> first application seen
  std::map<uint64_t, raft::NodeId> leaders_;   // term -> leader seen
  std::map<uint64_t, raft::ConfState> confs_;  // index -> committed configuration (0: initial)
  std::vector<std::string> violations_;
  uint64_t installs_ = 0;
  uint64_t compactions_ = 0;
  uint64_t sent_total_ = 0;
  std::array<uint64_t, 16> sent_by_type_{};
  std::function<void(const raft::Message&)> observer_;
};

}  // namespace dtx::sim
