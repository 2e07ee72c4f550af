#include "sim/raft_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <utility>

#include "base/coding.h"
#include "base/env.h"
#include "base/rand.h"
#include "base/status.h"
#include "check/history.h"
#include "check/linearizability.h"
#include "consensus/raft/raft.h"
#include "consensus/raft/storage.h"
#include "consensus/raft/wal_storage.h"
#include "sim/conf_util.h"
#include "wal/wal.h"

namespace dtx::sim {
namespace {

using raft::Entry;
using raft::HardState;
using raft::Message;
using raft::NodeId;
using raft::Role;

constexpr uint64_t kMaxEvents = 400'000;
constexpr size_t kMaxViolations = 32;
constexpr int kMaxViolationsPerKind = 3;
constexpr int kMaxReadyRounds = 1000;
constexpr int64_t kCheckEveryUs = 100'000;
constexpr int64_t kClientResendUs = 60'000;
constexpr uint64_t kCheckerStates = 2'000'000;
constexpr const char* kWalDir = "/raft";

// ---- little-endian encoding of client commands: base/coding.h

// ---- the key-value state machine's commands and results

struct Command {
  uint64_t client = 0;
  uint64_t req = 0;
  check::Op op;
};

std::string EncodeCommand(const Command& c) {
  std::string out;
  PutU64(out, c.client);
  PutU64(out, c.req);
  out.push_back(static_cast<char>(c.op.type));
  PutBytes(out, c.op.key);
  out.push_back(c.op.expected ? 1 : 0);
  PutBytes(out, c.op.expected.value_or(""));
  PutBytes(out, c.op.value);
  return out;
}

std::optional<Command> DecodeCommand(std::string_view data) {
  ByteReader r(data);
  Command c;
  c.client = r.U64();
  c.req = r.U64();
  uint8_t type = r.U8();
  c.op.key = std::string(r.Bytes());
  bool has_expected = r.U8() != 0;
  std::string expected(r.Bytes());
  c.op.value = std::string(r.Bytes());
  if (!r.done() || type > static_cast<uint8_t>(check::OpType::kCas)) return std::nullopt;
  c.op.type = static_cast<check::OpType>(type);
  if (has_expected) c.op.expected = std::move(expected);
  return c;
}

struct OpResult {
  bool swapped = false;
  std::optional<std::string> value;  // gets
};

enum class ReplyKind { kOk, kRefused, kRetry };

struct ClientReply {
  uint64_t client = 0;
  uint64_t req = 0;
  ReplyKind kind = ReplyKind::kOk;
  NodeId from = raft::kNoNode;
  NodeId hint = raft::kNoNode;  // kRefused: the leader the node knows of
  uint64_t index = 0;           // kOk of a write: the entry's index
  OpResult result;
};

std::string DescribeOp(const check::Op& op) {
  switch (op.type) {
    case check::OpType::kRead:
      return "get " + op.key;
    case check::OpType::kWrite:
      return "put " + op.key + "=" + op.value;
    case check::OpType::kCas:
      return "cas " + op.key + " " + op.expected.value_or("nil") + "->" + op.value;
  }
  return "?";
}

// The state machine's snapshot image: the kv map and the dedup sessions.
std::string EncodeState(const std::map<std::string, std::string>& kv,
                        const std::map<uint64_t, std::pair<uint64_t, OpResult>>& sessions) {
  std::string out;
  PutU64(out, kv.size());
  for (const auto& [k, v] : kv) {
    PutBytes(out, k);
    PutBytes(out, v);
  }
  PutU64(out, sessions.size());
  for (const auto& [client, s] : sessions) {
    PutU64(out, client);
    PutU64(out, s.first);
    PutU8(out, s.second.swapped ? 1 : 0);
    PutU8(out, s.second.value ? 1 : 0);
    PutBytes(out, s.second.value.value_or(""));
  }
  return out;
}

bool DecodeState(std::string_view data, std::map<std::string, std::string>* kv,
                 std::map<uint64_t, std::pair<uint64_t, OpResult>>* sessions) {
  ByteReader r(data);
  kv->clear();
  sessions->clear();
  const uint64_t nkv = r.U64();
  for (uint64_t i = 0; i < nkv && r.ok(); ++i) {
    std::string k(r.Bytes());
    std::string v(r.Bytes());
    (*kv)[std::move(k)] = std::move(v);
  }
  const uint64_t ns = r.U64();
  for (uint64_t i = 0; i < ns && r.ok(); ++i) {
    const uint64_t client = r.U64();
    const uint64_t req = r.U64();
    OpResult res;
    res.swapped = r.U8() != 0;
    const bool has_value = r.U8() != 0;
    std::string v(r.Bytes());
    if (has_value) res.value = std::move(v);
    (*sessions)[client] = {req, std::move(res)};
  }
  return r.done();
}

// FNV-1a: a cheap fingerprint of a state machine image.
uint64_t Fingerprint(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

struct ReadRequest {
  uint64_t client = 0;
  uint64_t req = 0;
  std::string key;
};

struct Node {
  NodeId id = raft::kNoNode;
  std::unique_ptr<MemEnv> env = std::make_unique<MemEnv>();
  std::unique_ptr<raft::WalStorage> storage;
  std::unique_ptr<raft::RawNode> raft;
  bool up = false;
  uint64_t incarnation = 0;  // ticks of an earlier incarnation are ignored
  int64_t tick_period_us = 0;
  Role last_role = Role::kFollower;
  uint64_t last_term = 0;
  // The state machine (volatile: rebuilt from the log after a restart).
  std::map<std::string, std::string> kv;
  std::map<uint64_t, std::pair<uint64_t, OpResult>> sessions;  // client -> (last req, result)
  uint64_t applied = 0;
  // Volatile request bookkeeping.
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> proposals;  // index -> (client, req)
  std::map<std::string, ReadRequest> reads_pending;             // ReadIndex context -> request
  std::vector<std::pair<uint64_t, ReadRequest>> reads_ready;    // (read index, request)
  uint64_t read_seq = 0;
  // Membership changes: removed from the configuration (committed) and shut down for good.
  bool retired = false;
  bool rejoined = false;  // RaftBreak::kReuseRemovedIds: back under its old id, disk wiped
};

struct Client {
  uint64_t id = 0;
  uint64_t req = 0;
  bool in_flight = false;
  check::Op op;
  NodeId target = 1;
  uint64_t value_seq = 0;
  bool final_writer = false;
};

std::string DescribeChange(const raft::ConfChange& cc) {
  switch (cc.type) {
    case raft::ConfChangeType::kAddVoter:
      return fmt::format("add voter n{}", cc.node);
    case raft::ConfChangeType::kRemoveVoter:
      return fmt::format("remove n{}", cc.node);
    case raft::ConfChangeType::kAddLearner:
      return fmt::format("add learner n{}", cc.node);
  }
  return "?";
}

// The sim's own model of a committed change: the configuration it leads to from `cs`, or why the
// change does not apply there (a leader must never get such a change committed).
std::string ModelChange(raft::ConfState& cs, const raft::ConfChange& cc) {
  auto erase = [](std::vector<NodeId>& v, NodeId id) {
    v.erase(std::remove(v.begin(), v.end(), id), v.end());
  };
  const bool voter = Contains(cs.voters, cc.node);
  const bool learner = Contains(cs.learners, cc.node);
  switch (cc.type) {
    case raft::ConfChangeType::kAddVoter:
      if (voter) return "already a voter";
      erase(cs.learners, cc.node);
      cs.voters.push_back(cc.node);
      std::sort(cs.voters.begin(), cs.voters.end());
      return "";
    case raft::ConfChangeType::kAddLearner:
      if (voter || learner) return "already a member";
      cs.learners.push_back(cc.node);
      std::sort(cs.learners.begin(), cs.learners.end());
      return "";
    case raft::ConfChangeType::kRemoveVoter:
      if (!voter && !learner) return "not a member";
      if (voter && cs.voters.size() == 1) return "the last voter";
      erase(cs.voters, cc.node);
      erase(cs.learners, cc.node);
      return "";
  }
  return "unknown change type";
}

struct CommitRecord {
  uint64_t term = 0;         // the entry's term
  uint64_t commit_term = 0;  // the first leader term known to have committed it
};

class RaftSim {
 public:
  explicit RaftSim(const RaftSimOptions& o) : opts_(o), rand_(o.seed) {}

  RaftSimReport Run() {
    report_.seed = opts_.seed;
    int n = opts_.nodes;
    if (n != 3 && n != 5) n = rand_.Chance(0.7) ? 3 : 5;
    report_.stats.nodes = n;
    snapshot_every_ =
        opts_.snapshot_every >= 0 ? opts_.snapshot_every : static_cast<int>(rand_.Range(5, 50));
    report_.stats.snapshot_every = snapshot_every_;
    fault_end_ = opts_.fault_phase_us;
    for (int i = 1; i <= n; ++i) {
      Node node;
      node.id = static_cast<NodeId>(i);
      const double drift = (rand_.NextDouble() * 2 - 1) * opts_.max_drift;
      node.tick_period_us = std::max<int64_t>(
          1, static_cast<int64_t>(static_cast<double>(opts_.tick_us) * (1 + drift)));
      nodes_.push_back(std::move(node));
    }
    initial_nodes_ = n;
    raft::ConfState initial;
    for (int i = 1; i <= n; ++i) initial.voters.push_back(static_cast<NodeId>(i));
    confs_[0] = initial;
    Trace("cluster of {} nodes, fault phase {}ms, snapshot every {} entries{}", n,
          opts_.fault_phase_us / 1000, snapshot_every_,
          opts_.membership_changes ? ", membership changes" : "");
    for (Node& node : nodes_) Start(node);
    for (int c = 1; c <= opts_.clients + 1; ++c) {
      Client cl;
      cl.id = static_cast<uint64_t>(c);
      cl.final_writer = c == opts_.clients + 1;
      cl.target = RandomNode();
      clients_.push_back(cl);
    }
    for (Client& cl : clients_) {
      if (!cl.final_writer) At(now_ + rand_.Range(0, 20'000), [this, id = cl.id] { NextOp(id); });
    }
    if (opts_.crashes) ScheduleCrash();
    if (opts_.faults) SchedulePartition();
    if (opts_.membership_changes) ScheduleMembership();
    At(fault_end_, [this] { Heal(); });
    At(kCheckEveryUs, [this] { PeriodicCheck(); });

    const int64_t deadline = fault_end_ + opts_.liveness_us;
    while (!queue_.empty() && !done_) {
      if (report_.stats.events >= kMaxEvents) {
        Violation("livelock", fmt::format("{} events without finishing", kMaxEvents));
        break;
      }
      std::pop_heap(queue_.begin(), queue_.end(), Later());
      Event ev = std::move(queue_.back());
      queue_.pop_back();
      now_ = ev.t;
      if (now_ > deadline) break;
      ++report_.stats.events;
      ev.fn();
    }
    if (!done_) {
      Violation("liveness",
                final_index_ == 0
                    ? fmt::format("no final write acknowledged {}ms after the heal",
                                  opts_.liveness_us / 1000)
                    : fmt::format("final write (index {}) not applied on every node and clients "
                                  "not finished {}ms after the heal",
                                  final_index_, opts_.liveness_us / 1000));
    }
    CheckLogMatching();
    CheckHistory();
    report_.stats.committed = applied_log_.size();
    report_.stats.elections = static_cast<int>(leaders_.size());
    report_.stats.end_us = now_;
    return std::move(report_);
  }

 private:
  struct Event {
    int64_t t;
    uint64_t seq;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.t != b.t ? a.t > b.t : a.seq > b.seq;
    }
  };

  void At(int64_t t, std::function<void()> fn) {
    queue_.push_back(Event{std::max(t, now_), next_seq_++, std::move(fn)});
    std::push_heap(queue_.begin(), queue_.end(), Later());
  }

  template <typename... Args>
  void Trace(fmt::format_string<Args...> f, Args&&... args) {
    if (!opts_.trace) return;
    report_.trace.push_back(fmt::format("t={}.{:03}ms ", now_ / 1000, now_ % 1000) +
                            fmt::format(f, std::forward<Args>(args)...));
  }

  void Violation(const std::string& what, const std::string& detail) {
    std::string v = fmt::format("{}: {} (t={}.{:03}ms)", what, detail, now_ / 1000, now_ % 1000);
    if (opts_.trace) report_.trace.push_back("VIOLATION " + v);
    if (++violations_per_kind_[what] > kMaxViolationsPerKind) return;
    if (report_.violations.size() < kMaxViolations) report_.violations.push_back(std::move(v));
  }

  bool FaultsOn() const { return opts_.faults && !healed_; }
  // The nodes not retired (all of them without membership changes), in id order.
  std::vector<NodeId> Active() const {
    std::vector<NodeId> ids;
    for (const Node& node : nodes_) {
      if (!node.retired) ids.push_back(node.id);
    }
    return ids;
  }
  NodeId RandomNode() {
    if (!opts_.membership_changes) return rand_.Uniform(nodes_.size()) + 1;
    const std::vector<NodeId> ids = Active();
    return ids[rand_.Uniform(ids.size())];
  }
  // The up node of the highest term that thinks it leads, or kNoNode.
  NodeId Leader() const {
    NodeId best = raft::kNoNode;
    uint64_t term = 0;
    for (const Node& node : nodes_) {
      if (node.up && node.raft->role() == Role::kLeader && node.raft->term() >= term) {
        best = node.id;
        term = node.raft->term();
      }
    }
    return best;
  }
  Node& N(NodeId id) { return nodes_[id - 1]; }

  // ---- nodes

  void Start(Node& node) {
    raft::WalStorageOptions wo;
    wo.dir = kWalDir;
    wo.segment_bytes = 16 << 10;  // small, so runs also exercise segment rolls
    wo.sync = opts_.break_mode != RaftBreak::kUnsyncedAppends;
    Result<std::unique_ptr<raft::WalStorage>> st = raft::WalStorage::Open(node.env.get(), wo);
    if (!st.ok()) {
      Violation("restart",
                fmt::format("n{} cannot open its WAL: {}", node.id, st.status().ToString()));
      return;
    }
    raft::Config c;
    c.id = node.id;
    if (opts_.membership_changes) {
      // Every node boots with the initial configuration; one added later also lists itself as
      // a learner, so it never campaigns before its log (or snapshot) makes it a voter. Replaying
      // the log from index 1 over that base gives the true configuration at every index: each
      // id is added at most once and removed at most once (ids are never reused), so the
      // history's changes of other ids apply exactly as they did, and the node's own add is
      // either skipped (already a learner) or promotes it. Snapshots record their configuration.
      for (int i = 1; i <= initial_nodes_; ++i) c.peers.push_back(static_cast<NodeId>(i));
      if (node.id > static_cast<NodeId>(initial_nodes_) || node.rejoined) {
        std::erase(c.peers, node.id);
        c.learners.push_back(node.id);
      }
    } else {
      for (const Node& p : nodes_) c.peers.push_back(p.id);
    }
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_inflight_msgs = 64;
    c.max_size_per_msg = 4096;
    c.seed = rand_.Next();
    if (opts_.lease_reads) {
      c.read_only = raft::ReadOnly::kLeaseBased;
      c.max_clock_drift = opts_.max_drift;
    }
    c.leader_parallel_persist = opts_.leader_parallel_persist;
    Result<std::unique_ptr<raft::RawNode>> rn = raft::RawNode::Create(c, st->get());
    if (!rn.ok()) {
      Violation("restart", fmt::format("n{} cannot restart from its WAL: {}", node.id,
                                       rn.status().ToString()));
      return;
    }
    node.storage = std::move(st).value();
    node.raft = std::move(rn).value();
    node.up = true;
    ++node.incarnation;
    node.last_role = Role::kFollower;
    node.last_term = node.raft->term();
    node.kv.clear();
    node.sessions.clear();
    node.applied = 0;
    node.proposals.clear();
    node.reads_pending.clear();
    node.reads_ready.clear();
    if (node.storage->snapshot_metadata().index > 0) {
      Result<raft::Snapshot> snap = node.storage->Snapshot();
      if (!snap.ok()) {
        Violation("restart", fmt::format("n{} cannot read its snapshot: {}", node.id,
                                         snap.status().ToString()));
        node.up = false;
        return;
      }
      ++report_.stats.restarts_from_snapshot;
      Restore(node, *snap);
    }
    Trace("n{} starts: term {}, snapshot {}, last index {}, commit {}", node.id, node.raft->term(),
          node.storage->snapshot_metadata().index, node.storage->LastIndex(),
          node.storage->InitialState().commit);
    At(now_ + rand_.Range(0, node.tick_period_us),
       [this, id = node.id, inc = node.incarnation] { Tick(id, inc); });
  }

  void Tick(NodeId id, uint64_t inc) {
    Node& node = N(id);
    if (!node.up || node.incarnation != inc) return;
    node.raft->Tick();
    Process(node);
    if (node.up) At(now_ + node.tick_period_us, [this, id, inc] { Tick(id, inc); });
  }

  void Crash(Node& node) {
    ++report_.stats.crashes;
    node.env->SimulateCrash(rand_);
    node.raft.reset();
    node.storage.reset();
    node.up = false;
    Trace("n{} CRASHES (unsynced writes lost)", node.id);
  }

  void Process(Node& node) {
    for (int round = 0; round < kMaxReadyRounds && node.up && node.raft->HasReady(); ++round) {
      raft::Ready rd = node.raft->Ready();
      // A crash in the middle of a persist: the fsync fails after the write (so the write is on
      // its way but not durable) and the node dies before sending anything.
      // A leader's early appends leave before its own write; crashing right after them is the
      // case leader_parallel_persist must survive, so it is tried more often.
      for (const Message& m : rd.early_messages) SendRaft(m);
      const bool crash_in_persist = opts_.crashes && !healed_ &&
                                    (!rd.entries.empty() || rd.snapshot) &&
                                    rand_.Chance(rd.snapshot                  ? 0.2
                                                 : !rd.early_messages.empty() ? 0.02
                                                                              : 0.004);
      if (crash_in_persist) node.env->SetSyncError(true);
      Status st = node.storage->Persist(rd);
      if (crash_in_persist) {
        ++report_.stats.persist_crashes;
        if (!rd.early_messages.empty()) ++report_.stats.early_send_crashes;
        Trace("n{} crashes inside a persist of {} entries{} ({})", node.id, rd.entries.size(),
              rd.snapshot ? " and a snapshot" : "", st.ok() ? "nothing to sync" : "fsync failed");
        Crash(node);
        node.env->SetSyncError(false);
        ScheduleRestart(node.id);
        return;
      }
      if (!st.ok()) {
        Violation("storage", fmt::format("n{} cannot persist: {}", node.id, st.ToString()));
        Crash(node);
        return;
      }
      for (const Message& m : rd.messages) SendRaft(m);
      if (rd.snapshot) {
        ++report_.stats.installs;
        Trace("n{} installs the leader's snapshot at {} (term {})", node.id,
              rd.snapshot->metadata.index, rd.snapshot->metadata.term);
        Restore(node, *rd.snapshot);
      }
      for (const Entry& e : rd.committed_entries) Apply(node, e);
      for (const raft::ReadState& rs : rd.read_states) {
        auto it = node.reads_pending.find(rs.context);
        if (it == node.reads_pending.end()) continue;
        node.reads_ready.emplace_back(rs.index, std::move(it->second));
        node.reads_pending.erase(it);
      }
      ServeReads(node);
      node.raft->Advance(rd);
      MaybeCompact(node);
      if (!node.up) return;
    }
    if (!node.up) return;
    ObserveRole(node);
  }

  // Replaces the state machine by a snapshot's image and checks it against what the nodes that
  // applied up to its index had.
  void Restore(Node& node, const raft::Snapshot& snap) {
    if (!DecodeState(snap.data, &node.kv, &node.sessions)) {
      Violation("snapshot",
                fmt::format("n{} cannot decode the snapshot at {}", node.id, snap.metadata.index));
    }
    node.applied = snap.metadata.index;
    RecordState(node, "restores");
    if (opts_.membership_changes) {
      // The configuration a snapshot records is the committed one at its index.
      auto it = confs_.upper_bound(snap.metadata.index);
      const raft::ConfState& want = std::prev(it)->second;
      raft::ConfState got = snap.metadata.conf_state;
      // A node's own snapshot taken before its add committed records it as the learner it boots
      // as (see Start); harmless: its add is then skipped as a no-op.
      if (node.id > static_cast<NodeId>(initial_nodes_) && !Contains(want.voters, node.id) &&
          !Contains(want.learners, node.id)) {
        std::erase(got.learners, node.id);
      }
      if (got != want) {
        Violation("snapshot configuration",
                  fmt::format("n{} restores a snapshot at {} recording {}, but the committed "
                              "configuration there is {}",
                              node.id, snap.metadata.index, DescribeConf(snap.metadata.conf_state),
                              DescribeConf(want)));
      }
    }
  }

  // State-machine safety across snapshots: one fingerprint per index, whoever got there first.
  void RecordState(Node& node, std::string_view how) {
    const uint64_t fp = Fingerprint(EncodeState(node.kv, node.sessions));
    auto [it, inserted] = state_at_.emplace(node.applied, fp);
    if (!inserted && it->second != fp) {
      Violation("state-machine safety",
                fmt::format("n{} {} a state at index {} that differs from the state another node "
                            "had there",
                            node.id, how, node.applied));
    }
  }

  // Every snapshot_every applied entries: snapshot the state machine and compact the log.
  void MaybeCompact(Node& node) {
    if (snapshot_every_ == 0) return;
    const uint64_t since = node.storage->snapshot_metadata().index;
    if (node.applied < since + static_cast<uint64_t>(snapshot_every_)) return;
    // A crash either makes the snapshot file's fsync fail or hits right after the compaction.
    const bool crash = opts_.crashes && !healed_ && rand_.Chance(0.05);
    const bool fail_sync = crash && rand_.Chance(0.5);
    if (fail_sync) node.env->SetSyncError(true);
    std::map<std::string, std::string> kv = node.kv;
    if (opts_.break_mode == RaftBreak::kBadSnapshots && !kv.empty()) kv.erase(kv.begin());
    raft::ConfState conf;
    if (opts_.membership_changes) {
      Result<raft::ConfState> cs = node.raft->ConfStateAt(node.applied);
      if (!cs.ok()) {
        Violation("configuration",
                  fmt::format("n{} has no configuration at its applied index {}: {}", node.id,
                              node.applied, cs.status().ToString()));
      } else {
        conf = std::move(cs).value();
      }
    }
    Status st = node.storage->SaveSnapshotAndCompact(node.applied, EncodeState(kv, node.sessions),
                                                     std::move(conf));
    if (crash) {
      ++report_.stats.compaction_crashes;
      Trace("n{} crashes inside a compaction at {} ({})", node.id, node.applied,
            st.ok() ? "completed" : st.ToString());
      Crash(node);
      node.env->SetSyncError(false);
      ScheduleRestart(node.id);
      return;
    }
    if (!st.ok()) {
      Violation("storage",
                fmt::format("n{} cannot compact at {}: {}", node.id, node.applied, st.ToString()));
      Crash(node);
      return;
    }
    ++report_.stats.snapshots;
    Trace("n{} snapshots at {} and compacts its log", node.id, node.applied);
  }

  void ObserveRole(Node& node) {
    const Role role = node.raft->role();
    const uint64_t term = node.raft->term();
    if (role == Role::kLeader) {
      auto [it, inserted] = leaders_.emplace(term, node.id);
      if (!inserted && it->second != node.id) {
        Violation("election safety",
                  fmt::format("n{} and n{} both lead term {}", it->second, node.id, term));
      }
      if (node.last_role != Role::kLeader || node.last_term != term) {
        Trace("n{} becomes LEADER of term {} (last index {})", node.id, term,
              node.raft->log().LastIndex());
        CheckLeaderCompleteness(node);
        if (opts_.membership_changes && removal_committed_.contains(node.id)) {
          ++report_.stats.leaders_after_removal;
          Trace("n{} leads term {} though its removal is committed (it has not learned that yet)",
                node.id, term);
        }
      }
      RecordLeaderCommit(node);
      if (opts_.membership_changes) CheckLeaderMembership(node);
    } else if (node.last_role == Role::kLeader) {
      Trace("n{} steps down in term {}", node.id, term);
    }
    if (role != Role::kLeader) {
      // A deposed leader's proposals may still commit; their clients resend or time out.
      node.proposals.clear();
      node.reads_pending.clear();
    }
    node.last_role = role;
    node.last_term = term;
  }

  void RecordLeaderCommit(Node& node) {
    const uint64_t commit = node.raft->log().committed();
    while (commit_records_.size() < commit) {
      const uint64_t i = commit_records_.size() + 1;
      // Term 0: compacted here before any leader was seen committing it (unknown, not checked).
      commit_records_.push_back(CommitRecord{node.raft->log().TermOrZero(i), node.raft->term()});
    }
  }

  // What the one-server-at-a-time algorithm guarantees about a leader's configuration.
  //
  // Not checked, because the algorithm does not guarantee it: "a node whose removal committed
  // never leads a later term". The core lets a node removed by a change that is uncommitted in
  // its own view campaign (see RawNode::Promotable: it may hold entries the new quorum needs),
  // and a node's view of the commit index can lag: a restart resumes from the stored hard
  // state, whose commit index WalStorage writes lazily. A leader that removed itself, learned of
  // the commit, stepped down and crashed before its hard state recorded that commit restarts
  // with the change uncommitted in its view and a log as up to date as the new voters' (if no
  // new leader appended yet), so they may elect it; it steps down again once it commits an
  // entry of its term. (Once another leader has committed the removal, the removed node cannot
  // win: that leader committed an entry of its own term on a majority of the new configuration,
  // whose logs are then more up to date than the removed node's.) Rare - none in 3000 seeds -
  // so it is only counted: RaftSimStats::leaders_after_removal.
  //
  // Checked instead:
  //   - a leader missing from the voters of the configuration in effect is one whose removal
  //     is the last change in its log and beyond its own commit index, and it was a voter
  //     before that change: it steps down once the change commits and never campaigns after it
  //     learned of the commit. (Its commit index may lag far behind - a restart resumes from the
  //     stored one - so a node may even have been added, promoted and removed beyond it.)
  //   - a leader's log holds at most one configuration change beyond the highest commit index
  //     any leader reported: a change is proposed only once the previous one is committed, and
  //     a log with two uncommitted changes could put two configurations that differ by two
  //     voters (no overlapping majorities) in use at once.
  void CheckLeaderMembership(Node& node) {
    const raft::RaftLog& log = node.raft->log();
    const raft::ConfState& in_effect = node.raft->conf_state();
    if (!Contains(in_effect.voters, node.id)) {
      uint64_t last_change = 0;
      for (uint64_t i = log.LastIndex(); i > log.committed() && i >= log.FirstIndex(); --i) {
        if (log.Slice(i, i + 1, UINT64_MAX).front().type == raft::EntryType::kConfChange) {
          last_change = i;
          break;
        }
      }
      Result<raft::ConfState> before =
          last_change == 0 ? raft::ConfState{} : node.raft->ConfStateAt(last_change - 1);
      if (last_change == 0 || !before.ok() || !Contains(before->voters, node.id)) {
        Violation(
            "removed leader",
            fmt::format("n{} leads term {} though its removal is at or below its commit "
                        "index {} (configuration in effect {})",
                        node.id, node.raft->term(), log.committed(), DescribeConf(in_effect)));
      }
    }
    const uint64_t from = std::max<uint64_t>(commit_records_.size() + 1, log.FirstIndex());
    if (from > log.LastIndex()) return;
    int pending = 0;
    for (const Entry& e : log.Slice(from, log.LastIndex() + 1, UINT64_MAX)) {
      if (e.type == raft::EntryType::kConfChange) ++pending;
    }
    if (pending > 1) {
      Violation("one change at a time",
                fmt::format("n{} leads term {} with {} configuration changes beyond the highest "
                            "commit index {}",
                            node.id, node.raft->term(), pending, commit_records_.size()));
    }
  }

  void CheckLeaderCompleteness(Node& node) {
    const uint64_t term = node.raft->term();
    // Below the snapshot the log is compacted: its entries were committed, and the state
    // fingerprints check what they did.
    const uint64_t from = std::max<uint64_t>(1, node.raft->log().FirstIndex() - 1);
    for (uint64_t i = from; i <= commit_records_.size(); ++i) {
      const CommitRecord& c = commit_records_[i - 1];
      if (c.commit_term >= term || c.term == 0) continue;
      const uint64_t have = node.raft->log().TermOrZero(i);
      if (have != c.term) {
        Violation("leader completeness",
                  fmt::format("n{} leads term {} but holds term {} at index {}, committed with "
                              "term {} in term {}",
                              node.id, term, have, i, c.term, c.commit_term));
        return;
      }
    }
  }

  void Apply(Node& node, const Entry& e) {
    if (e.index != node.applied + 1) {
      Violation("apply order",
                fmt::format("n{} applies index {} after {}", node.id, e.index, node.applied));
    }
    node.applied = e.index;
    if (e.index <= applied_log_.size()) {
      const Entry& first = applied_log_[e.index - 1];
      if (first.term != e.term || first.data != e.data) {
        Violation("state-machine safety",
                  fmt::format("n{} applies (term {}) at index {} where (term {}) was applied "
                              "before",
                              node.id, e.term, e.index, first.term));
      }
    } else {
      applied_log_.push_back(e);
    }
    if (e.index <= commit_records_.size() && commit_records_[e.index - 1].term != 0 &&
        commit_records_[e.index - 1].term != e.term) {
      Violation("state-machine safety",
                fmt::format("n{} applies term {} at index {}, a leader committed term {}", node.id,
                            e.term, e.index, commit_records_[e.index - 1].term));
    }
    auto prop = node.proposals.find(e.index);
    if (e.type == raft::EntryType::kConfChange) {
      ApplyConfChange(node, e);
      RecordState(node, "applies");
      if (prop != node.proposals.end()) {
        ReplyRetry(node, prop->second.first, prop->second.second);
        node.proposals.erase(prop);
      }
      return;
    }
    if (e.data.empty()) {
      RecordState(node, "applies");
      if (prop != node.proposals.end()) {
        ReplyRetry(node, prop->second.first, prop->second.second);
        node.proposals.erase(prop);
      }
      return;
    }
    std::optional<Command> cmd = DecodeCommand(e.data);
    if (!cmd) {
      Violation("apply", fmt::format("n{} cannot decode entry {}", node.id, e.index));
      return;
    }
    auto& session = node.sessions[cmd->client];
    if (cmd->req > session.first) {
      OpResult res;
      auto cur = node.kv.find(cmd->op.key);
      if (cmd->op.type == check::OpType::kWrite) {
        node.kv[cmd->op.key] = cmd->op.value;
      } else if (cmd->op.type == check::OpType::kCas) {
        const bool match = cmd->op.expected
                               ? (cur != node.kv.end() && cur->second == *cmd->op.expected)
                               : cur == node.kv.end();
        if (match) node.kv[cmd->op.key] = cmd->op.value;
        res.swapped = match;
      }
      session = {cmd->req, res};
    }
    RecordState(node, "applies");
    if (prop == node.proposals.end()) return;
    const auto [client, req] = prop->second;
    node.proposals.erase(prop);
    if (client != cmd->client || req != cmd->req) {
      ReplyRetry(node, client, req);
      return;
    }
    if (session.first != req) return;  // the client already moved on
    ClientReply r;
    r.client = client;
    r.req = req;
    r.from = node.id;
    r.index = e.index;
    r.result = session.second;
    SendReply(r);
  }

  // A committed configuration change reaches the state machine. Checks that every node sees the
  // same committed configuration at each index, that it follows from the previous committed one
  // by exactly this change (the sim's own model), and that consecutive committed configurations
  // differ by at most one voter. The first node to apply a change records it (every node applies
  // in index order and snapshots come from nodes that applied, so the previous change is known).
  void ApplyConfChange(Node& node, const Entry& e) {
    raft::ConfChange cc;
    if (!raft::DecodeConfChange(e.data, &cc)) {
      Violation("apply",
                fmt::format("n{} cannot decode the configuration change at {}", node.id, e.index));
      return;
    }
    Result<raft::ConfState> cs = node.raft->ConfStateAt(e.index);
    if (!cs.ok()) {
      Violation("configuration",
                fmt::format("n{} applies {} at {} but knows no configuration "
                            "there: {}",
                            node.id, DescribeChange(cc), e.index, cs.status().ToString()));
      return;
    }
    // A node added later boots listing itself as a learner (see Start), so until its log reaches
    // its own add it sees itself as a learner where the others see no such member.
    const auto own_boot_learner = [&](const raft::ConfState& ref) {
      if (node.id > static_cast<NodeId>(initial_nodes_) && !Contains(ref.voters, node.id) &&
          !Contains(ref.learners, node.id)) {
        std::erase(cs->learners, node.id);
      }
    };
    if (auto it = confs_.find(e.index); it != confs_.end()) {
      own_boot_learner(it->second);
      if (it->second != *cs) {
        Violation("configuration agreement",
                  fmt::format("n{} has {} after the change at {}, another node had {}", node.id,
                              DescribeConf(*cs), e.index, DescribeConf(it->second)));
      }
      return;
    }
    const auto prev = std::prev(confs_.upper_bound(e.index));
    raft::ConfState want = prev->second;
    if (std::string why = ModelChange(want, cc); !why.empty()) {
      Violation("configuration",
                fmt::format("the committed change at {} ({}) does not apply to the committed "
                            "configuration {}: {}",
                            e.index, DescribeChange(cc), DescribeConf(prev->second), why));
    } else if (own_boot_learner(want); want != *cs) {
      Violation("configuration",
                fmt::format("n{} has {} after the change at {} ({}), expected {}", node.id,
                            DescribeConf(*cs), e.index, DescribeChange(cc), DescribeConf(want)));
    }
    if (VoterDistance(prev->second, *cs) > 1) {
      Violation("single-server steps",
                fmt::format("the committed configuration goes from {} (index {}) to {} (index {})",
                            DescribeConf(prev->second), prev->first, DescribeConf(*cs), e.index));
    }
    confs_[e.index] = *cs;
    ++report_.stats.conf_changes;
    Trace("configuration change at {} committed: {} -> {}", e.index, DescribeChange(cc),
          DescribeConf(*cs));
    if (cc.type == raft::ConfChangeType::kRemoveVoter) {
      removal_committed_.insert(cc.node);
      // The operator shuts the removed node down a little later; until then it may still try
      // to take part (the checks above and election safety watch that).
      At(now_ + rand_.Range(0, 300'000), [this, id = cc.node] { Retire(id); });
    }
  }

  void ServeReads(Node& node) {
    auto& rr = node.reads_ready;
    for (auto it = rr.begin(); it != rr.end();) {
      if (it->first > node.applied) {
        ++it;
        continue;
      }
      ClientReply r;
      r.client = it->second.client;
      r.req = it->second.req;
      r.from = node.id;
      auto v = node.kv.find(it->second.key);
      if (v != node.kv.end()) r.result.value = v->second;
      SendReply(r);
      it = rr.erase(it);
    }
  }

  void ReplyRetry(Node& node, uint64_t client, uint64_t req) {
    ClientReply r;
    r.client = client;
    r.req = req;
    r.from = node.id;
    r.kind = ReplyKind::kRetry;
    SendReply(r);
  }

  // A client request arriving at a node.
  void HandleRequest(NodeId id, const Command& cmd) {
    Node& node = N(id);
    if (!node.up) return;
    auto refuse = [&] {
      ClientReply r;
      r.client = cmd.client;
      r.req = cmd.req;
      r.from = id;
      r.kind = ReplyKind::kRefused;
      r.hint = node.raft->lead();
      SendReply(r);
    };
    if (cmd.op.type == check::OpType::kRead) {
      if (opts_.break_mode == RaftBreak::kLocalReads && node.raft->role() == Role::kLeader) {
        node.reads_ready.emplace_back(0, ReadRequest{cmd.client, cmd.req, cmd.op.key});
        ServeReads(node);
        return;
      }
      std::string ctx = fmt::format("n{}.{}.{}", id, node.incarnation, ++node.read_seq);
      if (node.raft->role() != Role::kLeader || !node.raft->ReadIndex(ctx).ok()) {
        refuse();
        return;
      }
      node.reads_pending.emplace(std::move(ctx), ReadRequest{cmd.client, cmd.req, cmd.op.key});
      if (opts_.lease_reads && node.raft->HasReady()) {
        // Answered in the very next Ready without any message: a lease read.
        const size_t before = node.reads_pending.size();
        Process(node);
        if (node.reads_pending.size() < before) ++report_.stats.lease_reads;
        return;
      }
      Process(node);
      return;
    }
    if (node.raft->role() != Role::kLeader) {
      refuse();
      return;
    }
    Result<uint64_t> idx = node.raft->Propose(EncodeCommand(cmd));
    if (!idx.ok()) {
      refuse();
      return;
    }
    node.proposals[*idx] = {cmd.client, cmd.req};
    Process(node);
  }

  // ---- network

  // Delay of one message; also decides drops and duplicates. Returns the delays of the copies.
  std::vector<int64_t> Transmit() {
    std::vector<int64_t> copies;
    auto delay = [&]() -> int64_t {
      if (FaultsOn() && rand_.Chance(0.02)) return rand_.Range(20'000, 80'000);
      return rand_.Range(300, 4'000);
    };
    if (FaultsOn() && rand_.Chance(0.03)) {
      ++report_.stats.dropped;
      return copies;
    }
    copies.push_back(delay());
    if (FaultsOn() && rand_.Chance(0.02)) {
      ++report_.stats.duplicated;
      copies.push_back(delay());
    }
    return copies;
  }

  void SendRaft(const Message& m) {
    ++report_.stats.messages;
    if (blocked_.contains({m.from, m.to})) {
      ++report_.stats.dropped;
      if (opts_.trace) Trace("n{} -> n{} blocked: {}", m.from, m.to, raft::DescribeMessage(m));
      return;
    }
    std::vector<int64_t> copies = Transmit();
    if (opts_.trace) {
      Trace("send {}{}", raft::DescribeMessage(m),
            copies.empty()      ? " (dropped)"
            : copies.size() > 1 ? " (duplicated)"
                                : "");
    }
    for (int64_t d : copies) {
      At(now_ + d, [this, m] {
        if (m.to == raft::kNoNode || m.to > nodes_.size()) return;
        Node& to = N(m.to);
        if (!to.up) return;
        if (blocked_.contains({m.from, m.to})) return;
        Status st = to.raft->Step(m);
        if (!st.ok()) {
          Violation("step", fmt::format("n{} refuses {}: {}", m.to, raft::DescribeMessage(m),
                                        st.ToString()));
        }
        Process(to);
      });
    }
  }

  void SendRequest(Client& cl) {
    Command cmd{cl.id, cl.req, cl.op};
    const NodeId to = cl.target;
    for (int64_t d : Transmit()) At(now_ + d, [this, to, cmd] { HandleRequest(to, cmd); });
  }

  void SendReply(const ClientReply& r) {
    for (int64_t d : Transmit()) At(now_ + d, [this, r] { HandleReply(r); });
  }

  // ---- clients

  void NextOp(uint64_t id) {
    Client& cl = clients_[id - 1];
    if (cl.in_flight) return;
    if (!cl.final_writer && healed_) return;
    if (cl.final_writer && final_index_ != 0) return;
    const std::string key = cl.final_writer ? "k0" : fmt::format("k{}", rand_.Uniform(opts_.keys));
    const std::string value = fmt::format("c{}v{}", cl.id, ++cl.value_seq);
    const uint64_t kind = cl.final_writer ? 0 : rand_.Uniform(10);
    if (kind < 4) {
      cl.op = check::Op::Write(key, value);
    } else if (kind < 6) {
      std::optional<std::string> expected;
      if (!rand_.Chance(0.2)) {
        expected = fmt::format("c{}v{}", rand_.Uniform(opts_.clients) + 1, rand_.Range(1, 4));
        if (rand_.Chance(0.5) && last_written_.contains(key)) expected = last_written_[key];
      }
      cl.op = check::Op::Cas(key, expected, value);
    } else {
      cl.op = check::Op::Read(key);
    }
    if (cl.op.type != check::OpType::kRead) last_written_[key] = value;
    ++cl.req;
    cl.in_flight = true;
    ++report_.stats.ops;
    Status st = history_.Invoke(cl.id, cl.op);
    if (!st.ok()) Violation("history", st.ToString());
    Trace("client {} invokes #{} {} at n{}", cl.id, cl.req, DescribeOp(cl.op), cl.target);
    SendRequest(cl);
    At(now_ + kClientResendUs, [this, id, req = cl.req] { Resend(id, req, 1); });
    At(now_ + opts_.client_timeout_us, [this, id, req = cl.req] { Timeout(id, req); });
  }

  // Resending the same request id is safe: the state machine applies a request id once.
  void Resend(uint64_t id, uint64_t req, int attempt) {
    Client& cl = clients_[id - 1];
    if (!cl.in_flight || cl.req != req) return;
    if (attempt % 2 == 0) cl.target = RandomNode();
    SendRequest(cl);
    At(now_ + kClientResendUs, [this, id, req, attempt] { Resend(id, req, attempt + 1); });
  }

  void Timeout(uint64_t id, uint64_t req) {
    Client& cl = clients_[id - 1];
    if (!cl.in_flight || cl.req != req) return;
    cl.in_flight = false;
    ++report_.stats.unknown;
    Status st = history_.Info(cl.id);
    if (!st.ok()) Violation("history", st.ToString());
    Trace("client {} #{} times out: outcome unknown", cl.id, req);
    cl.target = RandomNode();
    At(now_ + rand_.Range(1'000, 20'000), [this, id] { NextOp(id); });
  }

  void HandleReply(const ClientReply& r) {
    Client& cl = clients_[r.client - 1];
    if (!cl.in_flight || cl.req != r.req) return;
    if (r.kind != ReplyKind::kOk) {
      cl.target = r.hint != raft::kNoNode ? r.hint : (r.from % nodes_.size()) + 1;
      Trace("client {} #{} {} by n{}, next n{}", cl.id, cl.req,
            r.kind == ReplyKind::kRefused ? "refused" : "to retry", r.from, cl.target);
      At(now_ + rand_.Range(2'000, 10'000), [this, id = cl.id, req = cl.req] {
        Client& c = clients_[id - 1];
        if (c.in_flight && c.req == req) SendRequest(c);
      });
      return;
    }
    cl.in_flight = false;
    cl.target = r.from;
    ++report_.stats.ok;
    Status st;
    switch (cl.op.type) {
      case check::OpType::kRead:
        st = history_.OkRead(cl.id, r.result.value);
        Trace("client {} #{} ok from n{}: {} = {}", cl.id, r.req, r.from, cl.op.key,
              r.result.value.value_or("nil"));
        break;
      case check::OpType::kWrite:
        st = history_.OkWrite(cl.id);
        Trace("client {} #{} ok from n{} (index {})", cl.id, r.req, r.from, r.index);
        break;
      case check::OpType::kCas:
        st = history_.OkCas(cl.id, r.result.swapped);
        Trace("client {} #{} ok from n{}: swapped={} (index {})", cl.id, r.req, r.from,
              r.result.swapped, r.index);
        break;
    }
    if (!st.ok()) Violation("history", st.ToString());
    if (cl.final_writer) {
      final_index_ = r.index;
      Trace("final write acknowledged at index {}", r.index);
      CheckDone();
      return;
    }
    At(now_ + rand_.Range(0, 20'000), [this, id = cl.id] { NextOp(id); });
  }

  // ---- faults

  void ScheduleRestart(NodeId id) {
    At(now_ + rand_.Range(20'000, 400'000), [this, id] {
      if (!N(id).up && !N(id).retired && !healed_) Start(N(id));
    });
  }

  void ScheduleCrash() {
    At(now_ + rand_.Range(100'000, 600'000), [this] {
      if (healed_) return;
      // Half of the crashes hit the leader: leader changes are where Raft gets interesting.
      NodeId victim = RandomNode();
      if (rand_.Chance(0.5) && Leader() != raft::kNoNode) victim = Leader();
      Node& node = N(victim);
      if (node.up) {
        Crash(node);
        ScheduleRestart(node.id);
      }
      ScheduleCrash();
    });
  }

  void SchedulePartition() {
    At(now_ + rand_.Range(50'000, 400'000), [this] {
      if (healed_) return;
      ++report_.stats.partitions;
      const std::vector<NodeId> ids = Active();
      const size_t n = ids.size();
      std::string what;
      const uint64_t kind = rand_.Uniform(3);
      if (kind < 2) {
        std::vector<bool> side(n);
        size_t in_a = 0;
        if (kind == 0 && Leader() != raft::kNoNode) {
          side[std::find(ids.begin(), ids.end(), Leader()) - ids.begin()] = true;
          in_a = 1;
        }
        for (int attempt = 0; attempt < 100 && (in_a == 0 || in_a == n); ++attempt) {
          in_a = 0;
          for (size_t i = 0; i < n; ++i) {
            side[i] = rand_.Chance(0.5);
            in_a += side[i] ? 1 : 0;
          }
        }
        if (in_a == 0 || in_a == n) {
          side.assign(n, false);
          side[0] = true;
        }
        for (size_t a = 0; a < n; ++a) {
          for (size_t b = 0; b < n; ++b) {
            if (side[a] != side[b]) blocked_.insert({ids[a], ids[b]});
          }
          if (side[a]) what += fmt::format(" n{}", ids[a]);
        }
        what = "symmetric partition {" + what + " } | rest";
      } else {
        const int links = static_cast<int>(rand_.Range(1, static_cast<int64_t>(n)));
        what = "one-way partition:";
        for (int k = 0; k < links; ++k) {
          const size_t pa = rand_.Uniform(n);
          const size_t pb = (pa + 1 + rand_.Uniform(n - 1)) % n;  // any node but a
          const NodeId a = ids[pa];
          const NodeId b = ids[pb];
          blocked_.insert({a, b});
          what += fmt::format(" n{}->n{}", a, b);
        }
      }
      Trace("{}", what);
      At(now_ + rand_.Range(50'000, 500'000), [this] {
        if (healed_) return;
        blocked_.clear();
        Trace("partition heals");
        SchedulePartition();
      });
    });
  }

  // ---- membership changes

  void ScheduleMembership() {
    At(now_ + rand_.Range(100'000, 400'000), [this] {
      if (healed_) return;
      ChangeMembership();
      ScheduleMembership();
    });
  }

  // The operator's next step, decided on the current leader's view: promote a learner once it
  // has caught up to the commit index, re-add a node whose add was lost, else grow or shrink
  // the voters within [3, 5]. New nodes join as learners and are promoted later (the usual
  // practice: an empty voter would count against the quorum until it caught up); one add in
  // five makes the new node a voter at once, so that path is covered too. A removed node's id
  // never comes back: its machine rejoins (if at all) as a new node with a new id and empty
  // storage. With the old id, a node that lags behind the removal still counts that id as a
  // voter of its old configuration, and the wiped node, which remembers no vote, grants it one:
  // two leaders in one term (RaftBreak::kReuseRemovedIds shows it, seed 616). Likewise messages
  // of its earlier life still in the network (an append acknowledgement) would be taken as the
  // empty node's.
  void ChangeMembership() {
    const NodeId lid = Leader();
    if (lid == raft::kNoNode) return;
    Node& leader = N(lid);
    raft::RawNode& rn = *leader.raft;
    const raft::ConfState cs = rn.conf_state();
    raft::ConfChange cc;
    bool new_node = false;
    NodeId orphan = raft::kNoNode;
    for (const Node& node : nodes_) {
      if (node.retired || removal_proposed_.contains(node.id)) continue;
      if (!Contains(cs.voters, node.id) && !Contains(cs.learners, node.id)) orphan = node.id;
    }
    if (!cs.learners.empty()) {
      const NodeId l = cs.learners[rand_.Uniform(cs.learners.size())];
      const raft::Progress* pr = rn.PeerProgress(l);
      if (pr == nullptr || pr->match < rn.log().committed()) return;  // not caught up yet
      cc = {raft::ConfChangeType::kAddVoter, l};
    } else if (orphan != raft::kNoNode) {
      cc = {raft::ConfChangeType::kAddLearner, orphan};
    } else {
      const size_t v = cs.voters.size();
      const bool add = v <= 3 || (v < 5 && rand_.Chance(0.5));
      if (add) {
        new_node = true;
        NodeId id = static_cast<NodeId>(nodes_.size() + 1);
        if (opts_.break_mode == RaftBreak::kReuseRemovedIds) {
          for (const Node& node : nodes_) {
            if (node.retired) id = node.id;
          }
        }
        cc = {
            rand_.Chance(0.2) ? raft::ConfChangeType::kAddVoter : raft::ConfChangeType::kAddLearner,
            id};
      } else {
        cc = {raft::ConfChangeType::kRemoveVoter, cs.voters[rand_.Uniform(v)]};
      }
    }
    Result<uint64_t> idx = rn.ProposeConfChange(cc);
    if (!idx.ok()) {
      Trace("n{} refuses to {}: {}", lid, DescribeChange(cc), idx.status().ToString());
      return;
    }
    ++report_.stats.conf_proposals;
    Trace("n{} proposes to {} at index {} (configuration was {})", lid, DescribeChange(cc), *idx,
          DescribeConf(cs));
    if (cc.type == raft::ConfChangeType::kRemoveVoter) {
      removal_proposed_.insert(cc.node);
      if (cc.node == lid) ++report_.stats.leader_removals;
    }
    if (new_node && cc.node <= nodes_.size()) {
      // The broken variant: the old id with a wiped disk.
      Node& node = N(cc.node);
      node.env = std::make_unique<MemEnv>();
      node.retired = false;
      node.rejoined = true;
      removal_proposed_.erase(cc.node);
      ++report_.stats.nodes_added;
      Start(node);
    } else if (new_node) {
      Node node;
      node.id = cc.node;
      const double drift = (rand_.NextDouble() * 2 - 1) * opts_.max_drift;
      node.tick_period_us = std::max<int64_t>(
          1, static_cast<int64_t>(static_cast<double>(opts_.tick_us) * (1 + drift)));
      nodes_.push_back(std::move(node));
      ++report_.stats.nodes_added;
      Start(nodes_.back());
    }
    Process(leader);
  }

  // The operator shuts down a node whose removal committed; it never comes back.
  void Retire(NodeId id) {
    Node& node = N(id);
    if (node.retired) return;
    node.retired = true;
    ++report_.stats.nodes_retired;
    if (node.up) {
      node.raft.reset();
      node.storage.reset();
      node.up = false;
    }
    Trace("n{} is shut down for good (removed from the configuration)", id);
  }

  void Heal() {
    healed_ = true;
    blocked_.clear();
    Trace("HEAL: faults off, every node up");
    for (Node& node : nodes_) {
      if (!node.up && !node.retired) Start(node);
    }
    At(now_, [this] { NextOp(clients_.back().id); });
  }

  // ---- checks

  void PeriodicCheck() {
    CheckLogMatching();
    CheckDone();
    if (!done_) At(now_ + kCheckEveryUs, [this] { PeriodicCheck(); });
  }

  void CheckDone() {
    if (final_index_ == 0) return;
    for (const Node& node : nodes_) {
      // With membership changes only the members of the latest committed configuration must
      // apply it (removed nodes are shut down; a node whose add was lost is no member).
      if (opts_.membership_changes) {
        const raft::ConfState& cs = confs_.rbegin()->second;
        if (!Contains(cs.voters, node.id) && !Contains(cs.learners, node.id)) continue;
      }
      if (!node.up || node.applied < final_index_) return;
    }
    for (const Client& cl : clients_) {
      if (cl.in_flight) return;
    }
    done_ = true;
    Trace("done: final write applied on every node");
  }

  void CheckLogMatching() {
    // Over the indexes both logs still hold (compaction drops prefixes).
    std::vector<std::pair<NodeId, std::vector<Entry>>> logs;
    for (const Node& node : nodes_) {
      if (!node.up) continue;
      const raft::RaftLog& log = node.raft->log();
      logs.emplace_back(node.id, log.Slice(log.FirstIndex(), log.LastIndex() + 1, UINT64_MAX));
    }
    for (size_t a = 0; a < logs.size(); ++a) {
      for (size_t b = a + 1; b < logs.size(); ++b) {
        const auto& x = logs[a].second;
        const auto& y = logs[b].second;
        if (x.empty() || y.empty()) continue;
        const uint64_t lo = std::max(x.front().index, y.front().index);
        uint64_t hi = std::min(x.back().index, y.back().index);
        auto at = [](const std::vector<Entry>& v, uint64_t i) -> const Entry& {
          return v[i - v.front().index];
        };
        while (hi >= lo && at(x, hi).term != at(y, hi).term) --hi;
        for (uint64_t i = lo; i <= hi; ++i) {
          if (!(at(x, i) == at(y, i))) {
            Violation("log matching",
                      fmt::format("n{} and n{} agree on term {} at index {} but differ at {}",
                                  logs[a].first, logs[b].first, at(x, hi).term, hi, i));
            return;
          }
        }
      }
    }
  }

  void CheckHistory() {
    // Operations still in flight stay pending; the checker treats them as unknown.
    check::CheckOptions co;
    co.max_states_per_key = kCheckerStates;
    check::CheckResult res = check::CheckLinearizable(history_, co);
    report_.stats.check_states = res.states;
    if (res.outcome == check::CheckOutcome::kViolation) {
      Violation("linearizability", res.explanation);
    } else if (res.outcome == check::CheckOutcome::kUnknown) {
      Violation("linearizability", "checker budget exhausted on key " + res.key);
    }
    Trace("history: {} events, linearizability {}", history_.events().size(),
          check::CheckOutcomeName(res.outcome));
  }

  const RaftSimOptions opts_;
  Rand rand_;
  RaftSimReport report_;
  std::deque<Node> nodes_;  // nodes_[id - 1]; a deque, so adding a node keeps references valid
  std::vector<Client> clients_;
  std::vector<Event> queue_;
  uint64_t next_seq_ = 0;
  int64_t now_ = 0;
  int64_t fault_end_ = 0;
  bool healed_ = false;
  bool done_ = false;
  uint64_t final_index_ = 0;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  std::map<uint64_t, NodeId> leaders_;     // term -> leader
  std::vector<Entry> applied_log_;         // what was applied at each index, first seen
  std::map<uint64_t, uint64_t> state_at_;  // index -> state machine fingerprint, first seen
  int snapshot_every_ = 0;
  std::vector<CommitRecord> commit_records_;
  std::map<std::string, std::string> last_written_;
  std::map<std::string, int> violations_per_kind_;
  int initial_nodes_ = 0;
  std::map<uint64_t, raft::ConfState> confs_;  // index -> committed configuration (0: initial)
  std::set<NodeId> removal_proposed_;
  std::set<NodeId> removal_committed_;
  check::History history_;
};

}  // namespace

Status ValidateRaftSimOptions(const RaftSimOptions& o) {
  if (o.nodes != 0 && o.nodes != 3 && o.nodes != 5) {
    return InvalidArgument(fmt::format("raft sim: nodes must be 0, 3 or 5, got {}", o.nodes));
  }
  if (o.clients < 1 || o.clients > 64) {
    return InvalidArgument(fmt::format("raft sim: clients must be in [1, 64], got {}", o.clients));
  }
  if (o.keys < 1 || o.keys > 1000) {
    return InvalidArgument(fmt::format("raft sim: keys must be in [1, 1000], got {}", o.keys));
  }
  if (o.fault_phase_us < 0 || o.fault_phase_us > 3'600'000'000) {
    return InvalidArgument("raft sim: fault_phase_us must be in [0, 1 h]");
  }
  if (o.liveness_us < 100'000 || o.liveness_us > 3'600'000'000) {
    return InvalidArgument("raft sim: liveness_us must be in [100 ms, 1 h]");
  }
  if (o.tick_us < 1'000 || o.tick_us > 1'000'000) {
    return InvalidArgument("raft sim: tick_us must be in [1 ms, 1 s]");
  }
  if (!(o.max_drift >= 0 && o.max_drift <= 0.5)) {
    return InvalidArgument("raft sim: max_drift must be in [0, 0.5]");
  }
  if (o.client_timeout_us < 10'000 || o.client_timeout_us > 60'000'000) {
    return InvalidArgument("raft sim: client_timeout_us must be in [10 ms, 60 s]");
  }
  if (o.snapshot_every < -1 || o.snapshot_every > 1'000'000) {
    return InvalidArgument(
        fmt::format("raft sim: snapshot_every must be in [-1, 1000000], got {}", o.snapshot_every));
  }
  return Status::Ok();
}

RaftSimReport RunRaftSim(const RaftSimOptions& options) {
  if (Status st = ValidateRaftSimOptions(options); !st.ok()) {
    RaftSimReport r;
    r.seed = options.seed;
    r.violations.push_back("options: " + st.message());
    return r;
  }
  return RaftSim(options).Run();
}

std::string FormatRaftStats(const RaftSimReport& r) {
  const RaftSimStats& s = r.stats;
  return fmt::format(
             "seed {}: {} nodes, {} ops ({} ok, {} unknown), {} committed, {} leaders, {} crashes, "
             "{} "
             "partitions, {} crashes inside a persist, {} inside a compaction, snapshot every {}: "
             "{} "
             "snapshots, {} installed, {} restarts from one, {} lease reads, {} messages ({} "
             "dropped, {} "
             "duplicated), {} "
             "events, {} checker states, end t={}ms",
             r.seed, s.nodes, s.ops, s.ok, s.unknown, s.committed, s.elections, s.crashes,
             s.partitions, s.persist_crashes, s.compaction_crashes, s.snapshot_every, s.snapshots,
             s.installs, s.restarts_from_snapshot, s.lease_reads, s.messages, s.dropped,
             s.duplicated, s.events, s.check_states, s.end_us / 1000) +
         (s.conf_proposals == 0
              ? std::string()
              : fmt::format(", membership: {} changes proposed ({} by a leader removing itself), "
                            "{} committed, {} nodes added, {} retired, {} leaders elected after "
                            "their removal committed",
                            s.conf_proposals, s.leader_removals, s.conf_changes, s.nodes_added,
                            s.nodes_retired, s.leaders_after_removal));
}

std::string RaftReplayCommand(const RaftSimOptions& o) {
  std::string cmd = fmt::format("dtxsim raft --seed {} --trace", o.seed);
  if (o.nodes == 3 || o.nodes == 5) cmd += fmt::format(" --nodes {}", o.nodes);
  if (!o.faults) cmd += " --no-faults";
  if (!o.crashes) cmd += " --no-crashes";
  if (o.lease_reads) cmd += " --lease-reads";
  if (o.membership_changes) cmd += " --membership-changes";
  if (o.leader_parallel_persist) cmd += " --leader-parallel-persist";
  if (o.snapshot_every >= 0) cmd += fmt::format(" --snapshot-every {}", o.snapshot_every);
  if (o.break_mode == RaftBreak::kUnsyncedAppends) cmd += " --break-unsynced-appends";
  if (o.break_mode == RaftBreak::kLocalReads) cmd += " --break-local-reads";
  if (o.break_mode == RaftBreak::kBadSnapshots) cmd += " --break-snapshots";
  if (o.break_mode == RaftBreak::kReuseRemovedIds) cmd += " --break-reuse-removed-ids";
  return cmd;
}

}  // namespace dtx::sim
