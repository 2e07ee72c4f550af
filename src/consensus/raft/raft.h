// The Raft core: an I/O-free, clock-free consensus state machine in the style of etcd's RawNode.
//
// The host drives it with three inputs - Tick() (logical clock), Step(message) (from a peer) and
// the client calls Propose()/ReadIndex()/Campaign() - and drains its output with Ready()/Advance():
//
//   while (node->HasReady()) {
//     Ready rd = node->Ready();
//     1. persist rd.snapshot (if set; it replaces the stored log), then rd.hard_state (if set),
//        then append rd.entries to stable storage, fsync if rd.must_sync  (MemoryStorage:
//        ApplySnapshot + SetHardState + Append);
//     2. only then send rd.messages (every message may depend on that persist: a vote response on
//        the persisted vote, an append acknowledgement on the persisted entries);
//        rd.early_messages (Config::leader_parallel_persist) may go out before step 1;
//     3. restore the state machine from rd.snapshot (if set), then apply rd.committed_entries in
//        order; answer rd.read_states once applied >= their index;
//     4. node->Advance(rd);
//   }
//
// Log compaction is the host's: once its state machine has applied index i it may store an
// image of it as the snapshot at i and drop the entries up to i from its Storage
// (MemoryStorage::CreateSnapshot + Compact, WalStorage::SaveSnapshotAndCompact). A follower
// that needs a compacted entry then gets the snapshot (kSnap, InstallSnapshot); the follower
// discards its log unless it already holds the snapshot's last entry (then it only commits up to
// it and keeps the entries after it).
//
// Features in this version: leader election with randomized timeouts (seeded dtx::Rand),
// pre-vote, check-quorum with leader stickiness (a node that heard from a leader within the
// election timeout ignores (pre-)votes), log replication with the log-matching check, fast
// backtracking (the reject carries a hint index and term), pipelining bounded by
// max_inflight_msgs, batching bounded by max_size_per_msg, commit only by counting replicas of a
// current-term entry (figure 8), a no-op entry on election, ReadIndex (leadership confirmed by a
// heartbeat round; a new leader first commits an entry of its term), leadership transfer
// (TransferLeadership: the leader catches the target up and sends it kTimeoutNow; the target
// campaigns at once, skipping pre-vote and the voters' leader stickiness), learners
// (Config::learners: non-voting members that receive and apply the log), snapshots with log
// compaction and InstallSnapshot (a lost kSnap is re-sent after snapshot_timeout_tick ticks),
// lease reads as an option (Config::read_only; they assume bounded clock drift, see ReadIndex),
// membership change one server at a time (ProposeConfChange: add or remove a voter, add a
// learner, promote a learner; the configuration survives restarts in snapshots and the log),
// and, as an option, a leader that replicates in parallel with its own disk write
// (Config::leader_parallel_persist).
//
// Membership change, one server at a time (Raft thesis section 4.1, with the fix of Ongaro,
// raft-dev 2015): ProposeConfChange appends a kConfChange entry; see there for when a
// configuration takes effect and why that is safe.
//
// NOT in this version: joint consensus (changes of more than one server at once), demotion of a
// voter to learner (remove it, then add it as a learner), snapshots sent in chunks (a kSnap
// carries the whole image), forwarding of proposals or ReadIndex from followers (the host
// forwards; the core refuses with kFailedPrecondition naming the known leader), async storage
// writes, flow control by bytes in flight or uncommitted size.
//
// Thread-safety: a RawNode is not thread-safe; one thread (or strand) drives it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/rand.h"
#include "base/status.h"
#include "consensus/raft/log.h"
#include "consensus/raft/progress.h"
#include "consensus/raft/storage.h"
#include "consensus/raft/types.h"

namespace dtx::raft {

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
std::string_view RoleName(Role r);

// How ReadIndex confirms leadership. kSafe: a heartbeat round acknowledged by a quorum.
// kLeaseBased: no round while the leader holds a lease (below); otherwise as kSafe.
enum class ReadOnly : uint8_t { kSafe, kLeaseBased };

struct Config {
  NodeId id = kNoNode;
  // The bootstrap configuration: all voters, including id unless id is a learner. Used only when
  // the storage records no configuration (no snapshot with a ConfState); the configuration then
  // follows the kConfChange entries in the log. A node that joins a running cluster starts with
  // the cluster's configuration and lists itself among `learners`, so it does not campaign
  // before its log tells it that it is a voter. REQUIRES: at least one voter.
  std::vector<NodeId> peers;
  // Non-voting members: they receive and apply the log like followers but never campaign, do
  // not count for commit, quorum, check-quorum or ReadIndex, and cannot be leadership transfer
  // targets; nobody asks them for votes (a candidate whose newer configuration made one a voter
  // gets its answer). Disjoint from peers; id is here when this node is a learner. Like peers,
  // only the bootstrap configuration.
  std::vector<NodeId> learners;
  // A follower starts an election after a random timeout in [election_tick, 2*election_tick)
  // ticks without hearing from a leader. REQUIRES election_tick > heartbeat_tick >= 1.
  int election_tick = 10;
  int heartbeat_tick = 1;
  // Upper bound on the entry bytes in one append message (at least one entry is always sent).
  uint64_t max_size_per_msg = 1 << 20;
  // Upper bound on un-acknowledged append messages per follower in replicate state. >= 1.
  size_t max_inflight_msgs = 256;
  // Upper bound on the entry bytes in one Ready's committed_entries (at least one entry).
  uint64_t max_committed_size_per_ready = 64ull << 20;
  bool pre_vote = true;
  bool check_quorum = true;
  // Seed for the randomized election timeout; give every node its own.
  uint64_t seed = 1;
  // The last index the host's state machine has already applied (0: apply from the start). When
  // the storage holds a snapshot, an applied index below it is raised to the snapshot's index:
  // the host restores its state machine from Storage::Snapshot() before driving the node.
  uint64_t applied = 0;
  // Ticks a leader waits for the answer to a kSnap before it probes the follower again (and
  // re-sends the snapshot if it is still needed). Large snapshots need more. >= 1.
  int snapshot_timeout_tick = 50;
  // kLeaseBased REQUIRES check_quorum (stickiness is what the lease rests on; see ReadIndex).
  ReadOnly read_only = ReadOnly::kSafe;
  // The clock-drift bound lease reads assume: every node's real tick period stays within
  // [1 - max_clock_drift, 1 + max_clock_drift] times the nominal period. In [0, 0.5); with
  // kLeaseBased, LeaseTicks() must be >= 1.
  double max_clock_drift = 0.05;
  // Lets a leader replicate in parallel with its own disk write (Raft thesis section 10.2.1):
  // its appends to followers come out in Ready::early_messages, which the host may send before
  // the persist of step 1, and its own copy counts toward the commit quorum only from Advance()
  // on (the host has persisted it by then). A commit therefore rests on a quorum of synced
  // copies, which may be the followers' alone. Saves one disk write of latency per commit.
  bool leader_parallel_persist = false;

  // How many of its own ticks a leader may answer lease reads after sending the heartbeat that a
  // quorum acknowledged: floor((election_tick - 1) * (1 - d) / (1 + d)) - 1, d = max_clock_drift.
  int LeaseTicks() const;

  // kInvalidArgument naming the first bad field.
  Status Validate() const;
};

// A linearizable read may be served once the state machine has applied up to `index`.
struct ReadState {
  uint64_t index = 0;
  std::string context;
  bool operator==(const ReadState&) const = default;
};

// Volatile state worth showing (status pages, tests); changes are reported in Ready.
struct SoftState {
  NodeId lead = kNoNode;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

struct Ready {
  // A snapshot from the leader: persist it first (it replaces the stored log), then restore the
  // state machine from it; applied then jumps to its index.
  std::optional<raft::Snapshot> snapshot;
  std::optional<SoftState> soft_state;  // set when changed
  std::optional<HardState> hard_state;  // set when changed; persist before sending
  std::vector<Entry> entries;           // append to stable storage before sending
  bool must_sync = false;               // snapshot, entries or term/vote changed: fsync first
  std::vector<Message> messages;        // send after the persist above
  // Config::leader_parallel_persist only: a leader's appends, which may be sent before (or
  // while) the persist above runs. Only in a Ready whose hard state keeps the persisted term and
  // vote, so they carry nothing that is not on disk yet but entries the leader's quorum does not
  // count until Advance().
  std::vector<Message> early_messages;
  std::vector<Entry> committed_entries;  // apply in order (after the persist)
  std::vector<ReadState> read_states;
  // Set when the configuration in effect changed (it takes effect on append, so it may not be
  // committed yet; committed changes reach the host as kConfChange entries in committed_entries).
  std::optional<ConfState> conf_state;
};

struct NodeStatus {
  NodeId id = kNoNode;
  Role role = Role::kFollower;
  NodeId lead = kNoNode;
  uint64_t term = 0;
  NodeId vote = kNoNode;
  uint64_t commit = 0;
  uint64_t applied = 0;
  uint64_t last_index = 0;
  // The log is compacted up to here (the latest snapshot's index; 0 without one).
  uint64_t snapshot_index = 0;
  bool learner = false;
  // The target of the leadership transfer in progress (leader only), kNoNode if none.
  NodeId lead_transferee = kNoNode;
  // The configuration in effect (the latest one in the log).
  ConfState conf_state;
};

class RawNode {
 public:
  // Builds a node from the config and the state in storage (hard state, snapshot and stable
  // entries); it starts with everything up to the snapshot committed and applied. The
  // configuration is the snapshot's ConfState (Config::peers/learners when it records none) with
  // the kConfChange entries of the stored log applied in order.
  // kInvalidArgument for a bad config, kDataLoss when the stored hard state is inconsistent with
  // the stored log. REQUIRES: storage outlives the node.
  static Result<std::unique_ptr<RawNode>> Create(const Config& config, const Storage* storage);

  RawNode(const RawNode&) = delete;
  RawNode& operator=(const RawNode&) = delete;

  // Advances the logical clock by one tick (elections, heartbeats, check-quorum).
  void Tick();
  // Processes a message from a peer. Stale messages are dropped (Ok). Messages from nodes outside
  // this node's configuration are processed too (thesis 4.1: a lagging node may not know its
  // leader or a candidate of a newer configuration yet); a leader ignores their responses. A
  // removed node cannot disrupt the cluster through check-quorum's leader stickiness (members
  // that hear from a live leader ignore (pre-)votes) and pre-vote (its log lacks its removal's
  // successors); without check_quorum it can force elections, as in the thesis.
  // kInvalidArgument when the message is not addressed to this node, comes from id 0 or itself,
  // or is a kSnap without a snapshot.
  Status Step(const Message& m);
  // Appends `data` as a new entry if this node is the leader; returns its index (its term is
  // GetStatus().term). kFailedPrecondition on a non-leader (the message names the known leader),
  // kUnavailable ("transfer in progress") while a leadership transfer runs.
  Result<uint64_t> Propose(std::string data);
  // Proposes a membership change (leader only); returns the index of its kConfChange entry.
  //
  // When a configuration takes effect: on append (Raft thesis 4.1). Every node uses the latest
  // configuration in its log, committed or not; when a follower's uncommitted suffix is
  // truncated, a change in it is reverted with it. Commit counting, elections, check-quorum,
  // ReadIndex, lease reads and transfers use that configuration; Progress entries are created
  // and dropped with it. A leader that removes itself keeps replicating without counting itself
  // and steps down once the change is committed (the remaining voters elect a new leader); a
  // removed node no longer campaigns (unless the change that removed it is uncommitted: it may
  // hold entries a quorum of the new configuration needs, so it may still lead - without
  // counting itself - until the change commits).
  //
  // Why it is safe: two configurations that differ by one server have overlapping majorities, so
  // no two leaders can be elected in one term as long as the configurations in use are at most
  // one change apart. That holds because a leader proposes a change only when the previous one
  // is committed (so every later leader has it) and only after it has committed an entry of its
  // own term (otherwise a change proposed by a deposed leader of an earlier term could be
  // overwritten by this leader's after both were used - the bug Ongaro reported on raft-dev in
  // 2015; the fix is this rule).
  //
  // Errors: kFailedPrecondition on a non-leader, before this leader committed an entry of its
  // term, while an earlier change is not committed, or when the removal would leave no voter;
  // kUnavailable during a leadership transfer; kInvalidArgument for id 0, adding a member again
  // (kAddVoter of a voter, kAddLearner of any member) or removing a non-member.
  Result<uint64_t> ProposeConfChange(const ConfChange& cc);
  // The configuration in effect (the latest in the log, maybe uncommitted).
  const ConfState& conf_state() const { return conf_; }
  // The configuration as of log index `index` (for the ConfState of a snapshot at index; hosts
  // take snapshots at their applied index). kNotFound when index is below the applied index
  // (history before it is not kept) or beyond the last index.
  Result<ConfState> ConfStateAt(uint64_t index) const;

  // Requests a linearizable read tagged with `context` (unique per request); the answer comes
  // as a ReadState in a later Ready. kFailedPrecondition on a non-leader.
  //
  // With read_only == kLeaseBased the leader answers at once (the read index is its commit
  // index) while it holds a lease: a quorum of voters (itself included) acknowledged a heartbeat
  // it sent at most LeaseTicks() of its ticks ago, an entry of its term is committed, and it has
  // sent no kTimeoutNow in this term. Why that is safe: a voter that received the heartbeat
  // neither campaigns nor grants (pre-)votes for election_tick of its own ticks (check-quorum's
  // stickiness; a restarted voter likewise stays quiet for election_tick ticks after start), so
  // no other leader can be elected before then - provided clocks drift at most max_clock_drift.
  // Only a transfer's forced vote bypasses that, hence no lease after kTimeoutNow; and a host
  // that calls Campaign() on a voter (not at bootstrap) skips the voter's own timer, so with
  // lease reads it must not. Beyond the drift bound a deposed leader may serve stale reads;
  // kSafe has no such assumption.
  Status ReadIndex(std::string context);
  // Starts an election now (pre-vote first when enabled). kFailedPrecondition on a leader or a
  // learner. With lease reads, only for bootstrap or tests (see ReadIndex).
  Status Campaign();
  // Hands leadership to the voter `target` (leader only). The leader refuses proposals while the
  // transfer runs, sends the target whatever entries it lacks, then a kTimeoutNow message; the
  // target campaigns in the next term without pre-vote, and the voters grant it despite leader
  // stickiness. The transfer ends when this node steps down, or is abandoned after
  // election_tick ticks (proposals are accepted again). Asking again for the running target is
  // a no-op; another target replaces the running transfer; target == id cancels it.
  // kFailedPrecondition on a non-leader, kInvalidArgument for an unknown or learner target.
  Status TransferLeadership(NodeId target);

  // True when Ready() has something to do. False while a Ready is taken and not yet Advanced.
  bool HasReady() const;
  // REQUIRES: the previous Ready was passed to Advance (aborts otherwise: a host bug).
  raft::Ready Ready();
  // Reports that everything in rd was done (persisted, sent, applied).
  void Advance(const raft::Ready& rd);

  NodeStatus GetStatus() const;
  NodeId id() const { return id_; }
  Role role() const { return role_; }
  NodeId lead() const { return lead_; }
  uint64_t term() const { return term_; }
  bool is_learner() const { return learner_; }
  // The target of the running leadership transfer (leader only), kNoNode if none.
  NodeId lead_transferee() const { return lead_transferee_; }
  // Inspection for tests and status pages.
  const RaftLog& log() const { return log_; }
  const Progress* PeerProgress(NodeId peer) const;

 private:
  struct PendingRead {
    std::string context;
    uint64_t index = 0;
    std::set<NodeId> acks;
  };

  RawNode(const Config& config, const Storage* storage);

  // election.cc
  void TickElection();
  void TickHeartbeat();
  void ResetTerm(uint64_t term);
  void ResetRandomizedTimeout();
  void BecomeFollower(uint64_t term, NodeId lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  // transfer: asked for by the leader's kTimeoutNow (voters ignore their leader stickiness).
  void StartElection(bool pre_vote, bool transfer = false);
  void HandleVoteRequest(const Message& m);
  void HandleVoteResponse(const Message& m);
  bool PastElectionTimeout() const;
  bool InLease() const;
  // Leader: lease reads may be answered now (see ReadIndex).
  bool LeaseValid() const;
  bool QuorumActive();
  size_t Quorum() const { return voters_ / 2 + 1; }
  bool IsVoter(NodeId id) const;
  // This node is a voter of the configuration in effect (not a learner, not removed) and has no
  // committed change left to apply from a snapshot: it may campaign.
  bool Promotable() const;

  // membership.cc
  // Records the kConfChange entries among `entries` (now in the log at their indexes). The
  // changes recorded at their indexes are dropped first, and with truncated_suffix also every
  // change above them (the log now ends with entries).
  void NoteAppended(const std::vector<Entry>& entries, bool truncated_suffix);
  // The log was replaced by a snapshot: its ConfState (or the bootstrap one) is the base.
  void NoteRestored(const raft::Snapshot& snap);
  // Folds the changes at or below `index` into the base (they cannot be truncated any more).
  void CompactConfHistory(uint64_t index);
  // Recomputes conf_ from the base and the recorded changes and brings prs_ in line.
  void RecomputeConf();
  // A leader removed by a committed change steps down.
  void MaybeStepDownRemoved();
  void AbortTransfer();
  void SendTimeoutNow(NodeId to);

  // replication.cc
  void StepLeader(const Message& m);
  void StepFollower(const Message& m);
  void HandleAppend(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  void HandleAppendResponse(const Message& m);
  void HandleHeartbeatResponse(const Message& m);
  void AppendEntries(std::vector<Entry> entries);
  void SendAppend(NodeId to, bool send_if_empty);
  // The follower needs compacted entries: sends the snapshot (false if storage has none now).
  bool SendSnapshot(NodeId to, Progress& pr);
  void BroadcastAppend();
  void BroadcastHeartbeat(const std::string& context);
  bool MaybeCommit();
  bool CommittedInCurrentTerm() const;
  void StartRead(std::string context);
  void ReleaseReadsUpTo(size_t count);
  void Send(Message m);

  Config config_;
  Rand rand_;
  const Storage* storage_;
  RaftLog log_;

  NodeId id_;
  uint64_t term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  std::map<NodeId, Progress> prs_;  // every voter and learner, self included (a leader that
                                    // removed itself keeps its own entry as a non-voter)
  ConfState bootstrap_conf_;        // from Config::peers/learners
  ConfState conf_base_;             // the configuration as of conf_base_index_
  uint64_t conf_base_index_ = 0;
  std::map<uint64_t, ConfChange> conf_changes_;  // changes in the log above conf_base_index_
  ConfState conf_;                               // in effect: the base with every change applied
  ConfState prev_conf_;                          // as reported in the last Ready
  size_t voters_ = 0;
  bool learner_ = false;
  NodeId lead_transferee_ = kNoNode;
  int transfer_elapsed_ = 0;  // ticks since the transfer started
  std::map<NodeId, bool> votes_;

  int election_elapsed_ = 0;
  uint64_t ticks_ = 1;          // ticks since this RawNode was created (lease clock)
  bool start_quiet_ = false;    // lease reads: a restarted voter grants no votes for a while
  bool lease_revoked_ = false;  // a kTimeoutNow went out in this term
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
  std::deque<PendingRead> pending_reads_;         // sent, waiting for a quorum of heartbeat acks
  std::vector<std::string> reads_before_commit_;  // waiting for the first commit in the term

  HardState prev_hard_state_;
  SoftState prev_soft_state_;
  bool ready_outstanding_ = false;
};

}  // namespace dtx::raft
