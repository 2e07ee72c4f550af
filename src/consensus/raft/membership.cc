// Membership change, one server at a time: the configuration history in the log, its effect on
// the leader's Progress map, and the proposal checks.
#include <algorithm>
#include <iterator>
#include <utility>

#include "consensus/raft/raft.h"

namespace dtx::raft {
namespace {

bool Contains(const std::vector<NodeId>& v, NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

void Erase(std::vector<NodeId>& v, NodeId id) {
  v.erase(std::remove(v.begin(), v.end(), id), v.end());
}

void Insert(std::vector<NodeId>& v, NodeId id) {
  v.insert(std::upper_bound(v.begin(), v.end(), id), id);
}

// Empty when the change applies to cs, else why not.
std::string CheckChange(const ConfState& cs, const ConfChange& cc) {
  if (cc.node == kNoNode) return "node id 0 is reserved";
  const bool voter = Contains(cs.voters, cc.node);
  const bool learner = Contains(cs.learners, cc.node);
  switch (cc.type) {
    case ConfChangeType::kAddVoter:
      if (voter) return "node " + std::to_string(cc.node) + " is already a voter";
      return "";
    case ConfChangeType::kAddLearner:
      if (voter || learner) return "node " + std::to_string(cc.node) + " is already a member";
      return "";
    case ConfChangeType::kRemoveVoter:
      if (!voter && !learner) return "node " + std::to_string(cc.node) + " is not a member";
      if (voter && cs.voters.size() == 1)
        return "removing node " + std::to_string(cc.node) + " would leave no voter";
      return "";
  }
  return "unknown change type";
}

// Applies a change that CheckChange accepted; a change it refuses is skipped (a leader never
// proposes one, so only a corrupt log could carry it, and skipping keeps every node alike).
void ApplyChange(ConfState& cs, const ConfChange& cc) {
  if (!CheckChange(cs, cc).empty()) return;
  switch (cc.type) {
    case ConfChangeType::kAddVoter:
      Erase(cs.learners, cc.node);
      Insert(cs.voters, cc.node);
      break;
    case ConfChangeType::kAddLearner:
      Insert(cs.learners, cc.node);
      break;
    case ConfChangeType::kRemoveVoter:
      Erase(cs.voters, cc.node);
      Erase(cs.learners, cc.node);
      break;
  }
}

}  // namespace

std::string EncodeConfChange(const ConfChange& cc) {
  std::string s(1, static_cast<char>(cc.type));
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((cc.node >> (8 * i)) & 0xff));
  return s;
}

bool DecodeConfChange(std::string_view data, ConfChange* out) {
  if (data.size() != 9) return false;
  const auto type = static_cast<uint8_t>(data[0]);
  if (type > static_cast<uint8_t>(ConfChangeType::kAddLearner)) return false;
  uint64_t node = 0;
  for (int i = 0; i < 8; ++i) node |= uint64_t{static_cast<uint8_t>(data[1 + i])} << (8 * i);
  if (node == kNoNode) return false;
  out->type = static_cast<ConfChangeType>(type);
  out->node = node;
  return true;
}

Result<uint64_t> RawNode::ProposeConfChange(const ConfChange& cc) {
  if (role_ != Role::kLeader) {
    return FailedPrecondition("raft: node " + std::to_string(id_) +
                              " is not the leader and cannot change the membership (leader: " +
                              (lead_ == kNoNode ? std::string("unknown") : std::to_string(lead_)) +
                              ")");
  }
  if (lead_transferee_ != kNoNode) {
    return Unavailable("raft: leadership transfer in progress (to " +
                       std::to_string(lead_transferee_) + "); membership change refused");
  }
  if (!CommittedInCurrentTerm()) {
    return FailedPrecondition(
        "raft: the leader has not committed an entry of its term yet; membership change refused");
  }
  if (!conf_changes_.empty() && conf_changes_.rbegin()->first > log_.committed()) {
    return FailedPrecondition("raft: the membership change at index " +
                              std::to_string(conf_changes_.rbegin()->first) +
                              " is not committed yet; one change at a time");
  }
  if (std::string why = CheckChange(conf_, cc); !why.empty()) {
    const bool last_voter = why.find("no voter") != std::string::npos;
    return last_voter ? FailedPrecondition("raft: " + why) : InvalidArgument("raft: " + why);
  }
  Entry e;
  e.type = EntryType::kConfChange;
  e.data = EncodeConfChange(cc);
  AppendEntries({std::move(e)});
  BroadcastAppend();
  return log_.LastIndex();
}

Result<ConfState> RawNode::ConfStateAt(uint64_t index) const {
  if (index < conf_base_index_ || index > log_.LastIndex()) {
    return NotFound("raft: the configuration at index " + std::to_string(index) +
                    " is not known (history kept from " + std::to_string(conf_base_index_) +
                    " to " + std::to_string(log_.LastIndex()) + ")");
  }
  ConfState cs = conf_base_;
  for (auto it = conf_changes_.begin(); it != conf_changes_.end() && it->first <= index; ++it) {
    ApplyChange(cs, it->second);
  }
  return cs;
}

void RawNode::NoteAppended(const std::vector<Entry>& entries, bool truncated_suffix) {
  if (entries.empty()) return;
  bool changed = false;
  auto from = conf_changes_.lower_bound(entries.front().index);
  auto to =
      truncated_suffix ? conf_changes_.end() : conf_changes_.upper_bound(entries.back().index);
  if (from != to) {
    conf_changes_.erase(from, to);
    changed = true;
  }
  for (const Entry& e : entries) {
    ConfChange cc;
    if (e.type != EntryType::kConfChange || e.index <= conf_base_index_) continue;
    if (!DecodeConfChange(e.data, &cc)) continue;
    conf_changes_[e.index] = cc;
    changed = true;
  }
  if (changed) RecomputeConf();
}

void RawNode::NoteRestored(const raft::Snapshot& snap) {
  conf_base_ = snap.metadata.conf_state.empty() ? bootstrap_conf_ : snap.metadata.conf_state;
  conf_base_index_ = snap.metadata.index;
  conf_changes_.clear();
  RecomputeConf();
}

void RawNode::CompactConfHistory(uint64_t index) {
  auto it = conf_changes_.begin();
  for (; it != conf_changes_.end() && it->first <= index; ++it) ApplyChange(conf_base_, it->second);
  conf_changes_.erase(conf_changes_.begin(), it);
  conf_base_index_ = std::max(conf_base_index_, index);
}

void RawNode::RecomputeConf() {
  ConfState cs = conf_base_;
  for (const auto& [index, cc] : conf_changes_) ApplyChange(cs, cc);
  conf_ = std::move(cs);
  const bool leader = role_ == Role::kLeader;
  const uint64_t last = log_.LastIndex();
  std::vector<NodeId> added;
  for (auto it = prs_.begin(); it != prs_.end();) {
    const NodeId id = it->first;
    if (Contains(conf_.voters, id) || Contains(conf_.learners, id)) {
      ++it;
    } else if (id == id_ && leader) {
      // A leader that removes itself replicates the change until it is committed.
      it->second.is_learner = true;
      ++it;
    } else {
      if (id == lead_transferee_) AbortTransfer();
      it = prs_.erase(it);
    }
  }
  auto ensure = [&](NodeId id, bool learner) {
    auto [it, inserted] = prs_.emplace(id, Progress(config_.max_inflight_msgs));
    if (inserted) {
      it->second.next = last + 1;
      if (id == id_) it->second.match = last;
      added.push_back(id);
    }
    it->second.is_learner = learner;
  };
  for (NodeId id : conf_.voters) ensure(id, false);
  for (NodeId id : conf_.learners) ensure(id, true);
  if (leader && !Contains(conf_.voters, id_) && !Contains(conf_.learners, id_)) ensure(id_, true);
  voters_ = conf_.voters.size();
  learner_ = Contains(conf_.learners, id_);
  if (lead_transferee_ != kNoNode && !IsVoter(lead_transferee_)) AbortTransfer();
  if (!leader) {
    if (role_ != Role::kFollower && !IsVoter(id_)) BecomeFollower(term_, kNoNode);
    return;
  }
  // A smaller quorum may commit at once; new members hear from the leader right away.
  if (MaybeCommit()) BroadcastAppend();
  for (NodeId id : added) {
    if (id != id_) SendAppend(id, true);
  }
}

void RawNode::MaybeStepDownRemoved() {
  if (role_ != Role::kLeader || IsVoter(id_)) return;
  if (!conf_changes_.empty() && conf_changes_.rbegin()->first > log_.committed()) return;
  BecomeFollower(term_, kNoNode);
  prs_.erase(id_);
}

bool RawNode::Promotable() const {
  // A snapshot not yet applied may carry another configuration.
  if (log_.HasPendingSnapshot()) return false;
  if (IsVoter(id_)) return true;
  // Removed by a change that is not committed: this node may hold the only copy a quorum of the
  // new configuration lacks (a leader that removed itself and lost leadership before the commit),
  // so it must still be able to campaign - for the votes of the new configuration, its own not
  // counted - or the cluster could stall.
  if (conf_changes_.empty() || conf_changes_.rbegin()->first <= log_.committed()) return false;
  ConfState before = conf_base_;
  for (auto it = conf_changes_.begin(); it != std::prev(conf_changes_.end()); ++it) {
    ApplyChange(before, it->second);
  }
  return Contains(before.voters, id_);
}

}  // namespace dtx::raft
