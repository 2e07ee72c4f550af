// Test-only harness: a few RawNodes, each persisting every Ready to its own MemoryStorage before
// its messages enter one shared queue that the test delivers, drops, reorders or partitions by
// hand. It records every leader seen per term (election safety) and each node's applied entries.
// Its snapshots (Compact) carry the applied entries themselves, so a node restored from one
// "applies" exactly the entries it covers and the prefix check still sees them.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/coding.h"
#include "base/rand.h"
#include "consensus/raft/raft.h"

namespace dtx::raft::testing {

// Persists rd to storage (the part a host must do before sending) and returns its messages
// (early_messages first: a host may send them before the persist).
inline std::vector<Message> PersistReady(MemoryStorage& storage, const Ready& rd) {
  if (rd.snapshot) {
    Status st = storage.ApplySnapshot(*rd.snapshot);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  if (rd.hard_state) storage.SetHardState(*rd.hard_state);
  Status s = storage.Append(rd.entries);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::vector<Message> out = rd.early_messages;
  out.insert(out.end(), rd.messages.begin(), rd.messages.end());
  return out;
}

// Drives one node alone: persists and advances all its Readies, returns the messages.
inline std::vector<Message> Drain(RawNode& node, MemoryStorage& storage,
                                  std::vector<Entry>* committed = nullptr) {
  std::vector<Message> out;
  for (int round = 0; round < 100 && node.HasReady(); ++round) {
    Ready rd = node.Ready();
    std::vector<Message> msgs = PersistReady(storage, rd);
    out.insert(out.end(), msgs.begin(), msgs.end());
    if (committed) {
      committed->insert(committed->end(), rd.committed_entries.begin(), rd.committed_entries.end());
    }
    node.Advance(rd);
  }
  return out;
}

// The test snapshots' data: the entries applied up to the snapshot, and back.
inline std::string EncodeEntries(const std::vector<Entry>& entries) {
  std::string out;
  for (const Entry& e : entries) {
    PutU64(out, e.index);
    PutU64(out, e.term);
    PutU64(out, static_cast<uint64_t>(e.type));
    PutBytes(out, e.data);
  }
  return out;
}
inline std::vector<Entry> DecodeEntries(std::string_view data) {
  std::vector<Entry> out;
  ByteReader r(data);
  while (r.ok() && r.remaining() > 0) {
    Entry e;
    e.index = r.U64();
    e.term = r.U64();
    e.type = static_cast<EntryType>(r.U64());
    e.data = std::string(r.Bytes());
    if (r.ok()) out.push_back(std::move(e));
  }
  EXPECT_TRUE(r.done()) << "malformed test snapshot";
  return out;
}

inline std::vector<NodeId> Ids(size_t n) {
  std::vector<NodeId> ids;
  for (size_t i = 1; i <= n; ++i) ids.push_back(i);
  return ids;
}

inline Config TestConfig(NodeId id, size_t n, uint64_t seed = 1) {
  Config c;
  c.id = id;
  c.peers = Ids(n);
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.seed = seed * 1000 + id;
  return c;
}

inline std::unique_ptr<RawNode> MustCreate(const Config& c, const Storage* s) {
  Result<std::unique_ptr<RawNode>> r = RawNode::Create(c, s);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

class TestCluster {
 public:
  explicit TestCluster(size_t n, uint64_t seed = 1, std::function<void(Config&)> tweak = nullptr)
      : n_(n), seed_(seed), tweak_(std::move(tweak)) {
    for (NodeId id = 1; id <= n; ++id) storages_.push_back(std::make_unique<MemoryStorage>());
    nodes_.resize(n);
    applied_.resize(n);
    reads_.resize(n);
    for (NodeId id = 1; id <= n; ++id) Start(id);
  }

  size_t size() const { return n_; }
  RawNode& node(NodeId id) { return *nodes_[id - 1]; }
  MemoryStorage& storage(NodeId id) { return *storages_[id - 1]; }
  const std::vector<Entry>& applied(NodeId id) const { return applied_[id - 1]; }
  std::vector<ReadState>& reads(NodeId id) { return reads_[id - 1]; }
  std::deque<Message>& queue() { return queue_; }
  bool election_safety_violated() const { return election_safety_violated_; }
  // Called for every message just before it is stepped into its target.
  std::function<void(const Message&)> on_deliver;
  // Asked for every Ready with early_messages (Config::leader_parallel_persist): true makes the
  // node send them and crash before persisting the Ready (it restarts from its storage).
  std::function<bool(NodeId)> crash_after_early_send;

  // (Re)creates node id from its storage, as after a crash: volatile state and the state
  // machine are lost; the log and hard state survive (every Ready was persisted).
  void Start(NodeId id) {
    Config c = TestConfig(id, n_, seed_ + restarts_++ * 7919);
    if (tweak_) tweak_(c);
    nodes_[id - 1] = MustCreate(c, storages_[id - 1].get());
    Result<Snapshot> snap = storages_[id - 1]->Snapshot();
    applied_[id - 1] = snap.ok() ? DecodeEntries(snap->data) : std::vector<Entry>();
  }

  // Host-side compaction on node id: snapshots its applied entries up to index (<= its applied
  // index) and drops the log up to there.
  ::testing::AssertionResult Compact(NodeId id, uint64_t index) {
    const std::vector<Entry>& ap = applied_[id - 1];
    std::vector<Entry> covered;
    for (const Entry& e : ap) {
      if (e.index <= index) covered.push_back(e);
    }
    if (covered.empty() || covered.back().index != index) {
      return ::testing::AssertionFailure() << "node " << id << " has not applied " << index;
    }
    Status st = storage(id).CreateSnapshot(index, EncodeEntries(covered));
    if (st.ok()) st = storage(id).Compact(index);
    if (!st.ok()) return ::testing::AssertionFailure() << st.ToString();
    return ::testing::AssertionSuccess();
  }

  void Cut(NodeId a, NodeId b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void Isolate(NodeId id) {
    for (NodeId p = 1; p <= n_; ++p) {
      if (p != id) Cut(id, p);
    }
  }
  void Heal() { cut_.clear(); }
  bool Blocked(const Message& m) const { return cut_.contains({m.from, m.to}); }

  void Process(NodeId id) {
    RawNode& n = node(id);
    for (int round = 0; round < 1000 && n.HasReady(); ++round) {
      Ready rd = n.Ready();
      if (!rd.early_messages.empty() && crash_after_early_send && crash_after_early_send(id)) {
        for (const Message& m : rd.early_messages) queue_.push_back(m);
        Start(id);
        return;
      }
      for (Message& m : PersistReady(storage(id), rd)) queue_.push_back(std::move(m));
      std::vector<Entry>& ap = applied_[id - 1];
      if (rd.snapshot) ap = DecodeEntries(rd.snapshot->data);
      ap.insert(ap.end(), rd.committed_entries.begin(), rd.committed_entries.end());
      reads_[id - 1].insert(reads_[id - 1].end(), rd.read_states.begin(), rd.read_states.end());
      n.Advance(rd);
    }
    if (n.role() == Role::kLeader) {
      auto [it, inserted] = leaders_.emplace(n.term(), id);
      if (!inserted && it->second != id) election_safety_violated_ = true;
    }
  }
  void ProcessAll() {
    for (NodeId id = 1; id <= n_; ++id) Process(id);
  }

  // Delivers one message (unless its link is cut); returns false on a blocked message.
  bool Deliver(const Message& m) {
    if (Blocked(m)) return false;
    if (on_deliver) on_deliver(m);
    Status s = node(m.to).Step(m);
    EXPECT_TRUE(s.ok()) << s.ToString();
    Process(m.to);
    return true;
  }
  // One step of a randomized run's network, for r = a random number in [0, 100): below 30 the
  // node `id` ticks, below 80 a random queued message is dropped (10 %), delivered, or delivered
  // twice (5 %). Returns false when r >= 80: the caller picks its own action.
  bool RandomNetworkStep(Rand& rng, uint64_t r, NodeId id) {
    if (r < 30) {
      node(id).Tick();
      Process(id);
      return true;
    }
    if (r >= 80) return false;
    if (queue_.empty()) return true;
    const size_t k = rng.Uniform(queue_.size());
    Message m = queue_[k];
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(k));
    if (rng.Chance(0.1)) return true;
    Deliver(m);
    if (rng.Chance(0.05)) Deliver(m);
    return true;
  }

  // Delivers queued messages in order until the queue is empty; returns how many were delivered.
  size_t DeliverAll(size_t limit = 200000) {
    size_t delivered = 0;
    for (size_t k = 0; k < limit && !queue_.empty(); ++k) {
      Message m = std::move(queue_.front());
      queue_.pop_front();
      if (Deliver(m)) ++delivered;
    }
    EXPECT_TRUE(queue_.empty()) << "message storm: delivery limit reached";
    return delivered;
  }

  void TickAll() {
    for (NodeId id = 1; id <= n_; ++id) {
      node(id).Tick();
      Process(id);
    }
  }

  // Ticks and delivers until a node other than `other_than` leads with a majority following
  // it; returns the leader or kNoNode after max_ticks.
  NodeId WaitLeader(int max_ticks = 500, NodeId other_than = kNoNode) {
    for (int t = 0; t < max_ticks; ++t) {
      DeliverAll();
      NodeId leader = Leader(other_than);
      if (leader != kNoNode) return leader;
      TickAll();
    }
    return kNoNode;
  }

  // A leader (other than `other_than`) that a majority follows in its term, or kNoNode.
  NodeId Leader(NodeId other_than = kNoNode) {
    for (NodeId id = 1; id <= n_; ++id) {
      if (id == other_than || node(id).role() != Role::kLeader) continue;
      size_t followers = 0;
      for (NodeId p = 1; p <= n_; ++p) {
        if (node(p).lead() == id && node(p).term() == node(id).term()) ++followers;
      }
      if (followers >= n_ / 2 + 1) return id;
    }
    return kNoNode;
  }

  // Proposes on the leader and delivers until quiet; returns the entry's index (0 on failure).
  uint64_t ProposeAndSettle(NodeId leader, std::string data) {
    Result<uint64_t> r = node(leader).Propose(std::move(data));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Process(leader);
    DeliverAll();
    return r.ok() ? *r : 0;
  }

  // True if every node's applied sequence is a prefix of every other's (state-machine safety).
  ::testing::AssertionResult AppliedArePrefixes() const {
    for (size_t a = 0; a < n_; ++a) {
      for (size_t b = 0; b < n_; ++b) {
        const auto& x = applied_[a];
        const auto& y = applied_[b];
        const size_t common = std::min(x.size(), y.size());
        for (size_t k = 0; k < common; ++k) {
          if (!(x[k] == y[k])) {
            return ::testing::AssertionFailure()
                   << "nodes " << a + 1 << " and " << b + 1 << " applied different entries at "
                   << "position " << k << ": (" << x[k].index << "," << x[k].term << ","
                   << x[k].data << ") vs (" << y[k].index << "," << y[k].term << "," << y[k].data
                   << ")";
          }
        }
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  size_t n_;
  uint64_t seed_;
  std::function<void(Config&)> tweak_;
  uint64_t restarts_ = 0;
  std::vector<std::unique_ptr<MemoryStorage>> storages_;
  std::vector<std::unique_ptr<RawNode>> nodes_;
  std::vector<std::vector<Entry>> applied_;
  std::vector<std::vector<ReadState>> reads_;
  std::deque<Message> queue_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::map<uint64_t, NodeId> leaders_;
  bool election_safety_violated_ = false;
};

}  // namespace dtx::raft::testing
