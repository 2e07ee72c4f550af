// Deterministic simulation of a Raft cluster (the real RawNode over the real WAL).
//
// One run is a pure function of RaftSimOptions (above all the seed): virtual time in
// microseconds, one event queue ordered by (time, sequence), one seeded dtx::Rand from which
// every random choice (and every node's own seed) is drawn, no threads, no real clock.
//
// The cluster: 3 or 5 nodes, each a dtx::raft::RawNode over a WalStorage - a raft::Storage whose
// hard state lives in Wal::SaveMeta and whose entries live in a dtx::wal::Wal - on the node's
// own MemEnv. A node handles each Ready by its contract: entries appended (truncating a
// conflicting suffix) and synced when must_sync, hard state saved, and only then its messages
// handed to the network, committed entries applied, read states answered.
//
// Faults during the fault phase (all drawn from the seed):
//   - network: random delay within bounds (so reordering), occasional long delays, drops,
//     duplicates; partitions for random periods, symmetric (two sides) or one-way (a set of
//     directed links blocked);
//   - crashes: MemEnv::SimulateCrash (unsynced writes lost, the last write possibly torn), a
//     random downtime, then a restart from the WAL with a fresh RawNode and a state machine
//     restored from the node's snapshot and rebuilt from the committed log after it; some crashes
//     hit inside a persist (the WAL's fsync fails after its write, the node dies before sending),
//     which leaves written but unsynced WAL data for the crash to drop or tear;
//   - clock drift: each node ticks at its own rate within +-max_drift of the nominal tick.
//   - crashes inside a compaction (the snapshot file's fsync fails) and inside the install of a
//     snapshot received from the leader (a persist whose Ready carries it).
// Then a heal phase: every node restarted, no partitions, drops, duplicates or crashes.
//
// Snapshots: every node snapshots its state machine (the kv map and the per-client dedup
// sessions) every K applied entries (RaftSimOptions::snapshot_every, K from the seed in [5, 50]
// by default) and compacts its WAL (WalStorage::SaveSnapshotAndCompact); a restarted node starts
// from its snapshot and applies only what follows; a node that fell behind a compaction gets
// the leader's snapshot (kSnap) and restores its state machine from it.
//
// Membership changes (RaftSimOptions::membership_changes, off by default): every 100..400 ms of
// the fault phase an operator acts through the current leader (RawNode::ProposeConfChange, one
// server at a time): a learner that caught up to the leader's commit index is promoted to voter;
// otherwise the voters grow or shrink within [3, 5]: a new node (the next unused id, empty
// storage) joins as a learner to be promoted later - one add in five makes it a voter at once -
// or a random voter is removed (the leader too: it steps down once the change commits). A
// node whose add was lost with an uncommitted suffix is added again. A removed node is shut
// down for good 0..300 ms after its removal commits (until then it may still try to take
// part); its machine could only rejoin under a new id, never its old one (see
// ChangeMembership in raft_sim.cc for why). Every node boots with the initial configuration,
// an added one listing itself as a learner; snapshots record the configuration at their index.
// The crash, partition and client choices draw only among the nodes not shut down; at the end
// only the members of the latest committed configuration must apply the final write.
//
// The workload: a few clients issue put, cas (expected value or absent) and get on a few keys,
// one operation at a time, to the node they think leads; a refusal names the leader to retry
// at. Writes go through the log (deduplicated per client request id by the state machine, since
// the network duplicates requests); gets are linearizable through ReadIndex (heartbeat rounds, or
// with lease_reads the leader's lease under the simulated clock drift). A client that hears
// nothing within its timeout records the outcome as unknown (info). The history is recorded as
// a dtx::check::History and checked with CheckLinearizable at the end.
//
// Invariants (violations are reported, never thrown):
//   - election safety: at most one leader per term;
//   - state-machine safety: every node applies, at each index, the same entry as every other
//     node ever did (also across restarts), so applied sequences are prefixes of each other;
//     and the state machine (a hash of kv map and sessions) after index i is the same on every
//     node, whether it got there by applying entries or by restoring a snapshot at i;
//   - log matching: two logs holding an entry with the same index and term are identical up to
//     it (checked periodically and at the end over the live nodes);
//   - leader completeness: a new leader's log holds every entry applied anywhere before;
//   - restart: a node's WAL and hard state always reopen (a commit index beyond the stored log
//     means acknowledged entries were lost);
//   - with membership changes: every node has the same committed configuration after each
//     committed change, and it is the previous one with exactly that change applied (the sim's
//     own model); consecutive committed configurations differ by at most one voter; a snapshot
//     records the committed configuration at its index; a leader outside the voters in effect
//     is one whose removal is the last change in its log and beyond its own commit index; a
//     leader's log holds at most one change beyond the highest commit index any leader
//     reported (one change at a time). Not a guarantee, so not checked: that a removed node
//     never leads again once its removal committed (raft_sim.cc explains why);
//   - linearizability of the client history (covers "no acknowledged write lost");
//   - liveness: after the heal, a final write is acknowledged and every node applies it.
//
// Thread-safety: RunRaftSim() is reentrant; concurrent runs share nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace dtx::sim {

enum class RaftBreak {
  kNone,
  // The storage acknowledges entries without syncing them: a crash loses acknowledged writes.
  kUnsyncedAppends,
  // A node that thinks it leads answers gets from its own state machine without ReadIndex.
  kLocalReads,
  // Snapshot images lose the state machine's first key: nodes restored from them diverge.
  kBadSnapshots,
  // With membership_changes: a removed node's machine rejoins under its old id with a wiped
  // disk (instead of under a new id): a lagging node of the old configuration gets its vote.
  kReuseRemovedIds,
};

struct RaftSimOptions {
  uint64_t seed = 1;
  // 3 or 5; 0 picks one from the seed (3 more often). The ranges of the fields below are
  // checked by ValidateRaftSimOptions.
  int nodes = 0;
  int clients = 4;
  int keys = 3;
  bool faults = true;   // network faults and partitions in the fault phase
  bool crashes = true;  // node crash-restarts in the fault phase
  bool trace = false;   // record the timeline in RaftSimReport::trace
  int64_t fault_phase_us = 4'000'000;
  // Virtual time after the heal within which the final write must be applied everywhere.
  int64_t liveness_us = 5'000'000;
  int64_t tick_us = 10'000;  // nominal tick; election_tick 10, heartbeat_tick 1
  double max_drift = 0.05;   // each node's tick period is tick_us * (1 + d), |d| <= max_drift
  int64_t client_timeout_us = 300'000;
  // Snapshot and compact every this many applied entries: -1 draws it from the seed in [5, 50],
  // 0 never snapshots.
  int snapshot_every = -1;
  // Gets are answered from the leader's lease (raft::ReadOnly::kLeaseBased, the nodes assume
  // max_clock_drift = max_drift, which the simulated clocks honour; election_tick 10 leaves a
  // lease for every max_drift < 0.5) instead of a heartbeat round.
  bool lease_reads = false;
  // The workload also changes the membership (see the file comment); off keeps the meaning of
  // existing seeds.
  bool membership_changes = false;
  // Leaders send their appends before persisting them (raft::Config::leader_parallel_persist, as
  // dtxkv runs); a crash inside such a persist then leaves followers with entries the leader
  // lost. Off keeps the meaning of existing seeds.
  bool leader_parallel_persist = false;
  // Deliberately broken variant, to prove the checks catch real bugs. Never set outside tests.
  RaftBreak break_mode = RaftBreak::kNone;
};

struct RaftSimStats {
  int nodes = 0;
  int ops = 0;                 // client operations invoked (the final write included)
  int ok = 0;                  // acknowledged
  int unknown = 0;             // timed out (info)
  int crashes = 0;             // all crashes, persist_crashes included
  int persist_crashes = 0;     // crashes inside a persist (written, fsync failed, not sent)
  int early_send_crashes = 0;  // of those, after a leader's early appends left (parallel persist)
  int partitions = 0;
  int elections = 0;  // distinct (term, leader) pairs seen
  uint64_t messages = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t committed = 0;  // highest index applied anywhere
  int snapshot_every = 0;  // K (0: no snapshots)
  int snapshots = 0;       // compactions done
  int installs = 0;        // snapshots received from a leader and restored
  int restarts_from_snapshot = 0;
  int compaction_crashes = 0;  // crashes inside a compaction
  int lease_reads = 0;         // gets answered from a lease (no heartbeat round)
  uint64_t events = 0;
  uint64_t check_states = 0;  // linearizability checker states explored
  int conf_proposals = 0;     // membership changes proposed (accepted by a leader)
  int conf_changes = 0;       // membership changes committed
  int leader_removals = 0;    // proposals of a leader to remove itself
  int nodes_added = 0;        // new nodes started (fresh ids, empty storage)
  int nodes_retired = 0;      // removed nodes shut down
  // Nodes elected leader after their removal had committed (legal; see raft_sim.cc).
  int leaders_after_removal = 0;
  int64_t end_us = 0;
};

struct RaftSimReport {
  uint64_t seed = 0;
  std::vector<std::string> violations;  // "invariant: explanation", in discovery order
  std::vector<std::string> trace;       // empty unless RaftSimOptions::trace
  RaftSimStats stats;
  bool ok() const { return violations.empty(); }
};

// kInvalidArgument naming the first option out of its range.
Status ValidateRaftSimOptions(const RaftSimOptions& options);

// Runs one simulation. Never throws on misbehaviour of the simulated system: everything wrong
// ends up in `violations`; invalid options give the single violation "options: ...".
RaftSimReport RunRaftSim(const RaftSimOptions& options);

// One line of run statistics, e.g. "seed 7: 3 nodes, 52 ops (47 ok, 5 unknown), ...".
std::string FormatRaftStats(const RaftSimReport& report);

// The command that replays the options' seed with a trace, e.g. "dtxsim raft --seed 7 --trace".
std::string RaftReplayCommand(const RaftSimOptions& options);

}  // namespace dtx::sim
