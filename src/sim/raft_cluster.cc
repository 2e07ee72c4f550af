#include "sim/raft_cluster.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "base/coding.h"
#include "sim/conf_util.h"

namespace dtx::sim {
namespace {

using raft::Entry;
using raft::Message;
using raft::NodeId;
using raft::Role;

constexpr const char* kWalDir = "/raft";
// Far above what any test needs (a 7-node cluster does ~20k events per virtual second); a
// livelocked core ends the run with a violation instead of spinning.
constexpr uint64_t kMaxEvents = 50'000'000;
constexpr int kMaxReadyRounds = 1000;
constexpr size_t kMaxViolations = 64;
constexpr double kDropChance = 0.10;
constexpr double kDuplicateChance = 0.05;
constexpr int64_t kUnreliableMaxDelayUs = 15'000;
constexpr double kLongDelayChance = 1.0 / 3;
constexpr int64_t kLongDelayMinUs = 100'000;
constexpr int64_t kLongDelayMaxUs = 1'000'000;

std::string Quote(const std::string& s) { return s.empty() ? "(no-op)" : "\"" + s + "\""; }

// The committed configuration `cs` already reflects the change.
bool Reflects(const raft::ConfState& cs, const raft::ConfChange& cc) {
  switch (cc.type) {
    case raft::ConfChangeType::kAddVoter:
      return Contains(cs.voters, cc.node);
    case raft::ConfChangeType::kAddLearner:
      return Contains(cs.learners, cc.node);
    case raft::ConfChangeType::kRemoveVoter:
      return !Contains(cs.voters, cc.node) && !Contains(cs.learners, cc.node);
  }
  return false;
}

}  // namespace

Status RaftClusterOptions::Validate() const {
  if (nodes < 3 || nodes > 7) {
    return InvalidArgument(fmt::format("raft cluster: nodes must be 3..7, got {}", nodes));
  }
  if (spares < 0 || spares > 4) {
    return InvalidArgument(fmt::format("raft cluster: spares must be 0..4, got {}", spares));
  }
  if (tick.count() <= 0) return InvalidArgument("raft cluster: tick must be positive");
  if (min_delay.count() <= 0 || min_delay > max_delay || max_delay >= tick) {
    return InvalidArgument(fmt::format(
        "raft cluster: need 0 < min_delay <= max_delay < tick, got {}us, {}us, tick {}us",
        min_delay.count(), max_delay.count(), tick.count()));
  }
  return Status::Ok();
}

RaftCluster::RaftCluster(const RaftClusterOptions& options)
    : opts_(options), rand_(options.seed), test_rand_(options.seed ^ 0x9e3779b97f4a7c15ull) {}

RaftCluster::~RaftCluster() = default;

Result<std::unique_ptr<RaftCluster>> RaftCluster::Create(const RaftClusterOptions& options) {
  DTX_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<RaftCluster> c(new RaftCluster(options));
  c->nodes_.resize(options.nodes + options.spares);
  for (size_t i = 0; i < c->nodes_.size(); ++i) {
    c->nodes_[i].id = static_cast<NodeId>(i + 1);
    c->nodes_[i].env = std::make_unique<MemEnv>();
  }
  raft::ConfState& initial = c->confs_[0];
  for (int i = 0; i < options.nodes; ++i) {
    initial.voters.push_back(static_cast<NodeId>(i + 1));
    DTX_RETURN_IF_ERROR(c->Start(c->nodes_[i]));
  }
  return c;
}

Status RaftCluster::BadId(NodeId id) const {
  return InvalidArgument(
      fmt::format("seed {}: node id {} outside 1..{}", opts_.seed, id, nodes_.size()));
}

void RaftCluster::Violation(const std::string& what) {
  if (violations_.size() < kMaxViolations) {
    violations_.push_back(
        fmt::format("seed {}, t={}.{:03}ms: {}", opts_.seed, now_us_ / 1000, now_us_ % 1000, what));
  }
}

Status RaftCluster::Fail(const std::string& what) const {
  return Internal(
      fmt::format("seed {}, t={}.{:03}ms: {}", opts_.seed, now_us_ / 1000, now_us_ % 1000, what));
}

Status RaftCluster::Check() const {
  if (violations_.empty()) return Status::Ok();
  return Internal(violations_.size() == 1
                      ? violations_.front()
                      : fmt::format("{} (and {} more violations)", violations_.front(),
                                    violations_.size() - 1));
}

void RaftCluster::Push(Event ev) {
  ev.seq = next_seq_++;
  queue_.push_back(std::move(ev));
  std::push_heap(queue_.begin(), queue_.end(), [](const Event& a, const Event& b) {
    return a.t != b.t ? a.t > b.t : a.seq > b.seq;
  });
}

Status RaftCluster::Start(Node& node) {
  raft::WalStorageOptions wo;
  wo.dir = kWalDir;
  wo.segment_bytes = 16 << 10;  // small, so long tests also roll segments
  wo.sync = !opts_.skip_sync;
  Result<std::unique_ptr<raft::WalStorage>> st = raft::WalStorage::Open(node.env.get(), wo);
  if (!st.ok()) {
    Status s = Fail(fmt::format("n{} cannot open its WAL: {}", node.id, st.status().ToString()));
    Violation(s.message());
    return s;
  }
  node.applied.clear();
  node.snapshot_index = (*st)->snapshot_metadata().index;
  if (node.snapshot_index > 0) {
    Result<raft::Snapshot> snap = (*st)->Snapshot();
    Status s = snap.ok() ? Restore(node, *snap) : snap.status();
    if (!s.ok()) {
      s = Fail(fmt::format("n{} cannot restore its stored snapshot: {}", node.id, s.ToString()));
      Violation(s.message());
      return s;
    }
  }
  raft::Config c;
  c.id = node.id;
  for (int i = 1; i <= opts_.nodes; ++i) c.peers.push_back(static_cast<NodeId>(i));
  if (node.id > static_cast<NodeId>(opts_.nodes)) c.learners.push_back(node.id);
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.seed = rand_.Next();
  c.applied = node.applied.size();
  Result<std::unique_ptr<raft::RawNode>> rn = raft::RawNode::Create(c, st->get());
  if (!rn.ok()) {
    Status s = Fail(fmt::format("n{} cannot restart: {}", node.id, rn.status().ToString()));
    Violation(s.message());
    return s;
  }
  node.storage = std::move(st).value();
  node.raft = std::move(rn).value();
  node.up = true;
  ++node.incarnation;
  Event ev;
  ev.t = now_us_ + static_cast<int64_t>(rand_.Uniform(opts_.tick.count())) + 1;
  ev.tick = true;
  ev.node = node.id;
  ev.incarnation = node.incarnation;
  Push(std::move(ev));
  return Status::Ok();
}

void RaftCluster::RunFor(Duration d) {
  const int64_t end = now_us_ + std::max<int64_t>(0, d.count());
  const auto later = [](const Event& a, const Event& b) {
    return a.t != b.t ? a.t > b.t : a.seq > b.seq;
  };
  while (!stopped_ && !queue_.empty() && queue_.front().t <= end) {
    if (++events_ > kMaxEvents) {
      Violation(fmt::format("livelock: more than {} events", kMaxEvents));
      stopped_ = true;
      break;
    }
    std::pop_heap(queue_.begin(), queue_.end(), later);
    Event ev = std::move(queue_.back());
    queue_.pop_back();
    now_us_ = ev.t;
    if (ev.tick) {
      OnTick(ev.node, ev.incarnation);
    } else {
      OnDeliver(ev);
    }
  }
  now_us_ = end;
}

void RaftCluster::OnTick(NodeId id, uint64_t incarnation) {
  Node& node = N(id);
  if (!node.up || node.incarnation != incarnation) return;
  node.raft->Tick();
  Process(node);
  if (!node.up) return;
  Event ev;
  ev.t = now_us_ + opts_.tick.count();
  ev.tick = true;
  ev.node = id;
  ev.incarnation = incarnation;
  Push(std::move(ev));
}

void RaftCluster::OnDeliver(Event& ev) {
  const Message& m = ev.msg;
  if (!ValidId(m.to) || !ValidId(m.from)) return;
  Node& to = N(m.to);
  if (!to.up || to.incarnation != ev.incarnation) return;
  if (!to.connected || !N(m.from).connected) return;
  Status s = to.raft->Step(m);
  if (!s.ok()) {
    Violation(fmt::format("n{} refused {}: {}", to.id, raft::DescribeMessage(m), s.ToString()));
  }
  Process(to);
}

void RaftCluster::Send(const Message& m) {
  ++sent_total_;
  const size_t type = static_cast<size_t>(m.type);
  if (type < sent_by_type_.size()) ++sent_by_type_[type];
  if (observer_) observer_(m);
  if (!ValidId(m.to)) {
    Violation(fmt::format("message to an unknown node: {}", raft::DescribeMessage(m)));
    return;
  }
  if (!N(m.from).connected || !N(m.to).connected) return;
  int copies = 1;
  if (unreliable_) {
    if (rand_.Chance(kDropChance)) return;
    if (rand_.Chance(kDuplicateChance)) copies = 2;
  }
  for (int i = 0; i < copies; ++i) {
    int64_t delay = rand_.Range(opts_.min_delay.count(), opts_.max_delay.count());
    if (unreliable_) delay = rand_.Range(opts_.min_delay.count(), kUnreliableMaxDelayUs);
    if (long_reordering_ && rand_.Chance(kLongDelayChance)) {
      delay = rand_.Range(kLongDelayMinUs, kLongDelayMaxUs);
    }
    Event ev;
    ev.t = now_us_ + delay;
    ev.node = m.to;
    ev.incarnation = N(m.to).incarnation;
    ev.msg = m;
    Push(std::move(ev));
  }
}

void RaftCluster::Process(Node& node) {
  for (int round = 0; round < kMaxReadyRounds && node.up && node.raft->HasReady(); ++round) {
    raft::Ready rd = node.raft->Ready();
    InstallCrash crash = InstallCrash::kNone;
    if (rd.snapshot) {
      crash = node.install_crash;
      node.install_crash = InstallCrash::kNone;
    }
    if (crash == InstallCrash::kInsidePersist) node.env->SetSyncError(true);
    Status s = node.storage->Persist(rd);
    if (crash == InstallCrash::kInsidePersist) {
      Crash(node.id);
      node.env->SetSyncError(false);
      return;
    }
    if (!s.ok()) {
      Violation(fmt::format("n{} cannot persist: {}", node.id, s.ToString()));
      Crash(node.id);
      return;
    }
    if (rd.snapshot) node.snapshot_index = rd.snapshot->metadata.index;
    if (crash == InstallCrash::kBeforeSend) return Crash(node.id);
    for (const Message& m : rd.messages) Send(m);
    if (crash == InstallCrash::kAfterSend) return Crash(node.id);
    if (rd.snapshot) {
      Status r = Restore(node, *rd.snapshot);
      if (!r.ok()) {
        Violation(fmt::format("n{} cannot restore the snapshot at {} from its leader: {}", node.id,
                              rd.snapshot->metadata.index, r.ToString()));
        return Crash(node.id);
      }
      ++installs_;
    }
    for (const Entry& e : rd.committed_entries) Apply(node, e);
    node.raft->Advance(rd);
    MaybeCompact(node);
    if (!node.up) return;
  }
  if (!node.up) return;
  if (node.raft->HasReady()) {
    Violation(fmt::format("n{} still has a Ready after {} rounds", node.id, kMaxReadyRounds));
  }
  if (node.raft->role() == Role::kLeader) {
    auto [it, inserted] = leaders_.emplace(node.raft->term(), node.id);
    if (!inserted && it->second != node.id) {
      Violation(fmt::format("election safety: n{} and n{} both lead term {}", it->second, node.id,
                            node.raft->term()));
    }
  }
}

void RaftCluster::Apply(Node& node, const Entry& e) {
  const uint64_t expected = node.applied.size() + 1;
  if (e.index != expected) {
    Violation(fmt::format("n{} applied index {} when {} was next", node.id, e.index, expected));
    return;
  }
  if (e.type == raft::EntryType::kConfChange) CheckConfChange(node, e);
  AppliedEntry entry{e.term, e.data, e.type};
  if (node.corrupt_next_apply) {
    node.corrupt_next_apply = false;
    entry.command += "#corrupted";
  }
  CheckApplied(node, e.index, entry, "applied");
  node.applied.push_back(std::move(entry));
}

void RaftCluster::CheckApplied(const Node& node, uint64_t index, const AppliedEntry& entry,
                               const char* how) {
  auto [it, inserted] =
      applied_.emplace(index, AppliedRecord{entry.command, entry.term, node.id, entry.type});
  if (!inserted && (it->second.command != entry.command || it->second.term != entry.term ||
                    it->second.type != entry.type)) {
    Violation(fmt::format(
        "state-machine safety: n{} {} {} (term {}) at index {}, but n{} applied {} (term {}) "
        "there",
        node.id, how, Quote(entry.command), entry.term, index, it->second.node,
        Quote(it->second.command), it->second.term));
  }
}

// The image is the whole applied sequence, so a restored state machine can be checked entry by
// entry against what the other nodes applied.
Status RaftCluster::Restore(Node& node, const raft::Snapshot& snap) {
  ByteReader r(snap.data);
  const uint64_t count = r.U64();
  if (!r.ok() || count != snap.metadata.index) {
    return DataLoss(
        fmt::format("snapshot at {} holds an image of {} entries", snap.metadata.index, count));
  }
  if (count < node.applied.size()) {
    Violation(fmt::format("n{} would go back from applied index {} to a snapshot at {}", node.id,
                          node.applied.size(), count));
  }
  std::vector<AppliedEntry> image;
  image.reserve(std::min<uint64_t>(count, snap.data.size() / 16));
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    AppliedEntry e;
    e.term = r.U64();
    e.command = std::string(r.Bytes());
    const uint8_t type = r.U8();
    if (type > static_cast<uint8_t>(raft::EntryType::kConfChange)) {
      return DataLoss(
          fmt::format("snapshot at {} has an entry of unknown type {}", snap.metadata.index, type));
    }
    e.type = static_cast<raft::EntryType>(type);
    image.push_back(std::move(e));
  }
  if (!r.done()) {
    return DataLoss(fmt::format("snapshot at {} has a malformed image", snap.metadata.index));
  }
  const raft::ConfState& want = std::prev(confs_.upper_bound(count))->second;
  raft::ConfState got = snap.metadata.conf_state;
  // A spare's own snapshot taken before its add committed records it as the learner it boots as;
  // harmless (its add is then a no-op).
  if (node.id > static_cast<NodeId>(opts_.nodes) && !Contains(want.voters, node.id) &&
      !Contains(want.learners, node.id)) {
    std::erase(got.learners, node.id);
  }
  if (got != want) {
    Violation(fmt::format("snapshot at {} records the configuration {} but {} was committed there",
                          count, DescribeConf(snap.metadata.conf_state), DescribeConf(want)));
  }
  if (count > 0 && image.back().term != snap.metadata.term) {
    Violation(fmt::format("snapshot at {} has term {} but its last entry term {}",
                          snap.metadata.index, snap.metadata.term, image.back().term));
  }
  for (uint64_t i = 0; i < count; ++i) CheckApplied(node, i + 1, image[i], "restored");
  node.applied = std::move(image);
  return Status::Ok();
}

void RaftCluster::MaybeCompact(Node& node) {
  const uint64_t applied = node.applied.size();
  if (opts_.snapshot_every == 0 || applied < node.snapshot_index + opts_.snapshot_every) return;
  std::string data;
  PutU64(data, applied);
  for (const AppliedEntry& e : node.applied) {
    PutU64(data, e.term);
    PutBytes(data, node.corrupt_snapshots && &e == &node.applied.back() ? e.command + "#corrupted"
                                                                        : e.command);
    PutU8(data, static_cast<uint8_t>(e.type));
  }
  Result<raft::ConfState> conf = node.raft->ConfStateAt(applied);
  if (!conf.ok()) {
    Violation(fmt::format("n{} knows no configuration at its applied index {}: {}", node.id,
                          applied, conf.status().ToString()));
    return;
  }
  Status s = node.storage->SaveSnapshotAndCompact(applied, std::move(data), std::move(*conf));
  if (!s.ok()) {
    Violation(fmt::format("n{} cannot compact up to {}: {}", node.id, applied, s.ToString()));
    return Crash(node.id);
  }
  node.snapshot_index = applied;
  ++compactions_;
}

void RaftCluster::CheckConfChange(Node& node, const Entry& e) {
  Result<raft::ConfState> cs = node.raft->ConfStateAt(e.index);
  if (!cs.ok()) {
    return Violation(
        fmt::format("n{} applies a configuration change at {} but knows no "
                    "configuration there: {}",
                    node.id, e.index, cs.status().ToString()));
  }
  auto it = confs_.find(e.index);
  const raft::ConfState& ref = it != confs_.end() ? it->second : cs.value();
  // A spare boots listing itself as a learner (see the file comment): until its log reaches its
  // own add, it sees itself as a learner where the others see no such member.
  if (node.id > static_cast<NodeId>(opts_.nodes) && !Contains(ref.voters, node.id) &&
      !Contains(ref.learners, node.id)) {
    std::erase(cs->learners, node.id);
  }
  if (it != confs_.end()) {
    if (it->second != *cs) {
      Violation(
          fmt::format("configuration agreement: n{} has {} after the change at {}, another "
                      "node had {}",
                      node.id, DescribeConf(*cs), e.index, DescribeConf(it->second)));
    }
    return;
  }
  // Nodes apply in index order and snapshots come from nodes that applied, so the first node to
  // apply a change knows every committed change before it.
  const auto prev = std::prev(confs_.upper_bound(e.index));
  if (VoterDistance(prev->second, *cs) > 1) {
    Violation(
        fmt::format("single-server steps: the committed configuration goes from {} (index "
                    "{}) to {} (index {})",
                    DescribeConf(prev->second), prev->first, DescribeConf(*cs), e.index));
  }
  confs_[e.index] = *cs;
}

Status RaftCluster::AddNode(NodeId id) {
  if (!ValidId(id)) return BadId(id);
  if (id <= static_cast<NodeId>(opts_.nodes)) {
    return InvalidArgument(fmt::format("seed {}: n{} is no spare (spares are {}..{})", opts_.seed,
                                       id, opts_.nodes + 1, nodes_.size()));
  }
  Node& node = N(id);
  if (node.up || node.incarnation > 0) {
    return FailedPrecondition(fmt::format("seed {}: spare n{} was started before", opts_.seed, id));
  }
  DTX_RETURN_IF_ERROR(Start(node));
  Process(node);
  return Status::Ok();
}

Result<uint64_t> RaftCluster::ProposeConfChange(NodeId id, const raft::ConfChange& cc) {
  if (!ValidId(id)) return BadId(id);
  Node& node = N(id);
  if (!node.up) return FailedPrecondition(fmt::format("seed {}: n{} is down", opts_.seed, id));
  Result<uint64_t> index = node.raft->ProposeConfChange(cc);
  if (!index.ok()) return index.status();
  Process(node);
  return index;
}

Status RaftCluster::ChangeConf(const raft::ConfChange& cc, const std::function<void()>& between) {
  const int64_t deadline = now_us_ + 10'000'000;
  std::string last_refusal = "no leader";
  while (now_us_ < deadline) {
    DTX_RETURN_IF_ERROR(Check());
    const NodeId leader = Leader();
    if (leader != raft::kNoNode) {
      const raft::RawNode& rn = *N(leader).raft;
      Result<raft::ConfState> committed = rn.ConfStateAt(rn.log().committed());
      if (committed.ok() && Reflects(*committed, cc)) return Status::Ok();
      if (!Reflects(rn.conf_state(), cc)) {
        Result<uint64_t> index = ProposeConfChange(leader, cc);
        if (!index.ok()) last_refusal = index.status().ToString();
      }
    }
    if (between) between();
    RunFor(std::chrono::milliseconds(20));
  }
  return Fail(fmt::format("membership change of n{} (type {}) not committed in 10s (last: {})",
                          cc.node, static_cast<int>(cc.type), last_refusal));
}

raft::ConfState RaftCluster::conf_state(NodeId id) const {
  return up(id) ? N(id).raft->conf_state() : raft::ConfState{};
}

void RaftCluster::Disconnect(NodeId id) {
  if (!ValidId(id)) return Violation(BadId(id).message());
  N(id).connected = false;
}

void RaftCluster::Connect(NodeId id) {
  if (!ValidId(id)) return Violation(BadId(id).message());
  N(id).connected = true;
}

bool RaftCluster::connected(NodeId id) const { return ValidId(id) && N(id).connected; }

bool RaftCluster::up(NodeId id) const { return ValidId(id) && N(id).up; }

void RaftCluster::Crash(NodeId id) {
  if (!ValidId(id)) return Violation(BadId(id).message());
  Node& node = N(id);
  if (!node.up) return;
  node.env->SimulateCrash(rand_);
  node.raft.reset();
  node.storage.reset();
  node.up = false;
  node.applied.clear();
  // Ticks and in-flight messages of the dead incarnation are ignored from now on.
  ++node.incarnation;
}

Status RaftCluster::Restart(NodeId id) {
  if (!ValidId(id)) return BadId(id);
  Crash(id);
  DTX_RETURN_IF_ERROR(Start(N(id)));
  Process(N(id));
  return Status::Ok();
}

Result<Proposal> RaftCluster::Propose(NodeId id, std::string command) {
  if (!ValidId(id)) return BadId(id);
  if (command.empty()) {
    return InvalidArgument(fmt::format("seed {}: empty command (reserved for no-ops)", opts_.seed));
  }
  Node& node = N(id);
  if (!node.up) return FailedPrecondition(fmt::format("seed {}: n{} is down", opts_.seed, id));
  Result<uint64_t> index = node.raft->Propose(std::move(command));
  if (!index.ok()) return index.status();
  Proposal p{*index, node.raft->term()};
  Process(node);
  return p;
}

void RaftCluster::CorruptNextApply(NodeId id) {
  if (!ValidId(id)) return Violation(BadId(id).message());
  N(id).corrupt_next_apply = true;
}

void RaftCluster::CorruptSnapshots(NodeId id) {
  if (!ValidId(id)) return Violation(BadId(id).message());
  N(id).corrupt_snapshots = true;
}

void RaftCluster::CrashDuringNextInstall(NodeId id, InstallCrash where) {
  if (!ValidId(id)) return Violation(BadId(id).message());
  N(id).install_crash = where;
}

Role RaftCluster::role(NodeId id) const { return up(id) ? N(id).raft->role() : Role::kFollower; }

uint64_t RaftCluster::term(NodeId id) const { return up(id) ? N(id).raft->term() : 0; }

uint64_t RaftCluster::last_index(NodeId id) const {
  return up(id) ? N(id).raft->log().LastIndex() : 0;
}

uint64_t RaftCluster::applied(NodeId id) const { return up(id) ? N(id).applied.size() : 0; }

uint64_t RaftCluster::first_index(NodeId id) const {
  return up(id) ? N(id).storage->FirstIndex() : 0;
}

NodeId RaftCluster::Leader() const {
  NodeId best = raft::kNoNode;
  uint64_t best_term = 0;
  for (const Node& node : nodes_) {
    if (node.up && node.connected && node.raft->role() == Role::kLeader &&
        node.raft->term() >= best_term) {
      best = node.id;
      best_term = node.raft->term();
    }
  }
  return best;
}

uint64_t RaftCluster::messages_sent(raft::MessageType type) const {
  const size_t t = static_cast<size_t>(type);
  return t < sent_by_type_.size() ? sent_by_type_[t] : 0;
}

Result<NodeId> RaftCluster::CheckOneLeader() {
  for (int iter = 0; iter < 10; ++iter) {
    RunFor(Duration(450'000 + static_cast<int64_t>(test_rand_.Uniform(100'000))));
    DTX_RETURN_IF_ERROR(Check());
    std::map<uint64_t, std::vector<NodeId>> leaders;
    for (const Node& node : nodes_) {
      if (node.up && node.connected && node.raft->role() == Role::kLeader) {
        leaders[node.raft->term()].push_back(node.id);
      }
    }
    for (const auto& [t, ids] : leaders) {
      if (ids.size() > 1) {
        return Fail(
            fmt::format("term {} has {} leaders (n{} and n{})", t, ids.size(), ids[0], ids[1]));
      }
    }
    if (!leaders.empty()) return leaders.rbegin()->second.front();
  }
  return Fail("expected one leader among the connected nodes, got none in 10 rounds");
}

Status RaftCluster::CheckNoLeader() {
  DTX_RETURN_IF_ERROR(Check());
  for (const Node& node : nodes_) {
    if (node.up && node.connected && node.raft->role() == Role::kLeader) {
      return Fail(fmt::format("expected no leader among the connected nodes, but n{} leads term {}",
                              node.id, node.raft->term()));
    }
  }
  return Status::Ok();
}

Result<uint64_t> RaftCluster::CheckTerms() {
  DTX_RETURN_IF_ERROR(Check());
  uint64_t t = 0;
  NodeId first = raft::kNoNode;
  for (const Node& node : nodes_) {
    if (!node.up || !node.connected) continue;
    if (first == raft::kNoNode) {
      first = node.id;
      t = node.raft->term();
    } else if (node.raft->term() != t) {
      return Fail(fmt::format("nodes disagree on the term: n{} is in {}, n{} in {}", first, t,
                              node.id, node.raft->term()));
    }
  }
  if (first == raft::kNoNode) return Fail("no up, connected node to ask for its term");
  return t;
}

Result<Committed> RaftCluster::NCommitted(uint64_t index) {
  DTX_RETURN_IF_ERROR(Check());
  if (index == 0) return InvalidArgument(fmt::format("seed {}: index 0 is no entry", opts_.seed));
  Committed c;
  NodeId first = raft::kNoNode;
  for (const Node& node : nodes_) {
    if (!node.up || node.applied.size() < index) continue;
    const std::string& cmd = node.applied[index - 1].command;
    if (c.count > 0 && cmd != c.command) {
      return Fail(fmt::format("committed values at index {} differ: n{} has {}, n{} has {}", index,
                              first, Quote(c.command), node.id, Quote(cmd)));
    }
    if (c.count == 0) {
      first = node.id;
      c.command = cmd;
    }
    ++c.count;
  }
  return c;
}

Result<uint64_t> RaftCluster::One(const std::string& command, int expected, bool retry) {
  if (expected < 1 || expected > size()) {
    return InvalidArgument(fmt::format("seed {}: one({}) expects {} of {} nodes", opts_.seed,
                                       command, expected, size()));
  }
  if (command.empty()) {
    return InvalidArgument(fmt::format("seed {}: empty command (reserved for no-ops)", opts_.seed));
  }
  const int64_t deadline = now_us_ + 10'000'000;
  NodeId start = 1;
  std::string last_seen;
  while (now_us_ < deadline) {
    DTX_RETURN_IF_ERROR(Check());
    uint64_t index = 0;
    for (int k = 0; k < size() && index == 0; ++k) {
      const NodeId id = start;
      start = start % nodes_.size() + 1;
      if (!N(id).up || !N(id).connected) continue;
      Result<Proposal> p = Propose(id, command);
      if (p.ok()) index = p->index;
    }
    if (index == 0) {
      RunFor(std::chrono::milliseconds(50));
      continue;
    }
    const int64_t wait_end = now_us_ + 2'000'000;
    while (now_us_ < wait_end) {
      RunFor(std::chrono::milliseconds(20));
      Result<Committed> c = NCommitted(index);
      if (!c.ok()) return c.status();
      if (c->count > 0 && c->count >= expected && c->command == command) return index;
      last_seen = fmt::format("index {}: {} nodes applied {}", index, c->count,
                              c->count ? Quote(c->command) : "nothing");
    }
    if (!retry) {
      return Fail(fmt::format("one({}) failed to reach agreement of {} nodes without retry ({})",
                              command, expected, last_seen));
    }
  }
  return Fail(fmt::format("one({}) failed to reach agreement of {} nodes in 10s ({})", command,
                          expected, last_seen.empty() ? "no node accepted it" : last_seen));
}

}  // namespace dtx::sim
