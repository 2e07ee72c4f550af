#include "consensus/raft/raft.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace dtx::raft {

std::string_view MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResp:
      return "PreVoteResp";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResp:
      return "VoteResp";
    case MessageType::kApp:
      return "App";
    case MessageType::kAppResp:
      return "AppResp";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResp:
      return "HeartbeatResp";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kSnap:
      return "Snap";
  }
  return "?";
}

std::string DescribeMessage(const Message& m) {
  std::string s(MessageTypeName(m.type));
  s += " " + std::to_string(m.from) + "->" + std::to_string(m.to) + " t=" + std::to_string(m.term) +
       " i=" + std::to_string(m.index) + " lt=" + std::to_string(m.log_term) +
       " n=" + std::to_string(m.entries.size()) + " c=" + std::to_string(m.commit);
  if (m.reject) s += " reject hint=" + std::to_string(m.reject_hint);
  if (!m.context.empty()) s += " ctx=" + m.context;
  if (m.transfer) s += " transfer";
  if (!m.snapshot.empty()) {
    s += " snap=" + std::to_string(m.snapshot.metadata.index) + "@" +
         std::to_string(m.snapshot.metadata.term);
  }
  return s;
}

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

Status Config::Validate() const {
  if (id == kNoNode) return InvalidArgument("raft config: id must be > 0");
  if (peers.empty()) return InvalidArgument("raft config: peers must name at least one voter");
  const bool in_peers = std::find(peers.begin(), peers.end(), id) != peers.end();
  const bool in_learners = std::find(learners.begin(), learners.end(), id) != learners.end();
  if (!in_peers && !in_learners) {
    return InvalidArgument("raft config: peers or learners must include the node's own id " +
                           std::to_string(id));
  }
  std::vector<NodeId> sorted = peers;
  sorted.insert(sorted.end(), learners.begin(), learners.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return InvalidArgument("raft config: duplicate member id (in peers, in learners, or in both)");
  }
  if (sorted.front() == kNoNode) return InvalidArgument("raft config: member id 0 is reserved");
  if (heartbeat_tick < 1) return InvalidArgument("raft config: heartbeat_tick must be >= 1");
  if (election_tick <= heartbeat_tick) {
    return InvalidArgument("raft config: election_tick must be greater than heartbeat_tick");
  }
  if (max_inflight_msgs < 1) return InvalidArgument("raft config: max_inflight_msgs must be >= 1");
  if (!(max_clock_drift >= 0 && max_clock_drift < 0.5)) {
    return InvalidArgument("raft config: max_clock_drift must be in [0, 0.5)");
  }
  if (read_only == ReadOnly::kLeaseBased) {
    if (!check_quorum) return InvalidArgument("raft config: lease reads require check_quorum");
    if (LeaseTicks() < 1) {
      return InvalidArgument("raft config: election_tick " + std::to_string(election_tick) +
                             " leaves no lease with max_clock_drift " +
                             std::to_string(max_clock_drift));
    }
  }
  if (snapshot_timeout_tick < 1) {
    return InvalidArgument("raft config: snapshot_timeout_tick must be >= 1");
  }
  return Status::Ok();
}

int Config::LeaseTicks() const {
  const double ticks =
      static_cast<double>(election_tick - 1) * (1 - max_clock_drift) / (1 + max_clock_drift);
  return static_cast<int>(ticks) - 1;
}

Result<std::unique_ptr<RawNode>> RawNode::Create(const Config& config, const Storage* storage) {
  DTX_RETURN_IF_ERROR(config.Validate());
  if (storage == nullptr) return InvalidArgument("raft: storage is null");
  const HardState hs = storage->InitialState();
  if (hs.commit > storage->LastIndex()) {
    return DataLoss("raft: stored commit index " + std::to_string(hs.commit) +
                    " is beyond the last stored entry " + std::to_string(storage->LastIndex()));
  }
  const uint64_t snapshot_index = storage->FirstIndex() - 1;
  if (config.applied > std::max(hs.commit, snapshot_index)) {
    return InvalidArgument("raft config: applied " + std::to_string(config.applied) +
                           " is beyond the stored commit index " + std::to_string(hs.commit));
  }
  if (snapshot_index > 0) {
    Result<uint64_t> t = storage->Term(snapshot_index);
    if (!t.ok() || *t == 0) {
      return DataLoss("raft: storage starts after index " + std::to_string(snapshot_index) +
                      " but does not know that entry's term");
    }
  }
  // (A stored vote may name a node removed since: votes are not checked against the members.)
  Result<SnapshotMetadata> md = storage->LatestSnapshotMetadata();
  if (!md.ok()) return md.status();
  std::unique_ptr<RawNode> node(new RawNode(config, storage));
  if (!md->conf_state.empty()) node->conf_base_ = md->conf_state;
  node->conf_base_index_ = snapshot_index;
  // The configuration is the latest one in the log: replay the stored changes.
  const uint64_t last = storage->LastIndex();
  for (uint64_t lo = snapshot_index + 1; lo <= last;) {
    Result<std::vector<Entry>> es = storage->Entries(lo, last + 1, 64ull << 20);
    if (!es.ok()) return es.status();
    if (es->empty()) return DataLoss("raft: storage returned no entries at " + std::to_string(lo));
    for (const Entry& e : *es) {
      ConfChange cc;
      if (e.type == EntryType::kConfChange && DecodeConfChange(e.data, &cc)) {
        node->conf_changes_[e.index] = cc;
      }
    }
    lo = es->back().index + 1;
  }
  node->RecomputeConf();
  node->CompactConfHistory(node->log_.applied());
  node->prev_conf_ = node->conf_;
  return node;
}

RawNode::RawNode(const Config& config, const Storage* storage)
    : config_(config), rand_(config.seed), storage_(storage), log_(storage), id_(config.id) {
  bootstrap_conf_.voters = config.peers;
  bootstrap_conf_.learners = config.learners;
  std::sort(bootstrap_conf_.voters.begin(), bootstrap_conf_.voters.end());
  std::sort(bootstrap_conf_.learners.begin(), bootstrap_conf_.learners.end());
  conf_base_ = bootstrap_conf_;
  const HardState hs = storage->InitialState();
  term_ = hs.term;
  vote_ = hs.vote;
  RecomputeConf();
  if (config.applied > log_.applied()) log_.AppliedTo(config.applied);
  BecomeFollower(term_, kNoNode);
  // This node may have acknowledged a leader's heartbeat just before it restarted; its
  // stickiness toward that leader's lease must survive the restart. (At term 0 it never heard
  // of a leader.)
  start_quiet_ = config.read_only == ReadOnly::kLeaseBased && term_ > 0;
  prev_hard_state_ = HardState{term_, vote_, log_.committed()};
  prev_soft_state_ = SoftState{lead_, role_};
}

Status RawNode::Step(const Message& m) {
  if (m.to != id_) {
    return InvalidArgument("raft: message for " + std::to_string(m.to) + " delivered to " +
                           std::to_string(id_));
  }
  if (m.from == id_ || m.from == kNoNode) {
    return InvalidArgument("raft: message from invalid peer " + std::to_string(m.from));
  }
  const bool is_vote = m.type == MessageType::kVote || m.type == MessageType::kPreVote;
  if (m.type == MessageType::kSnap &&
      (m.snapshot.metadata.index == 0 || m.snapshot.metadata.term == 0)) {
    return InvalidArgument("raft: kSnap from " + std::to_string(m.from) + " carries no snapshot");
  }
  const bool from_leader = m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
                           m.type == MessageType::kSnap;
  if (m.term > term_) {
    // Leader stickiness: a node that heard from a live leader lately ignores a disruptive
    // candidate (a partitioned node rejoining with a high term cannot depose it) - unless the
    // leader itself asked for the campaign.
    const bool forced = m.type == MessageType::kVote && m.transfer;
    if (is_vote && !forced && InLease()) return Status::Ok();
    if (m.type == MessageType::kPreVote) {
      // A pre-vote never changes our term.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // Granted pre-votes carry the term the pre-candidate would campaign at.
    } else {
      BecomeFollower(m.term, from_leader ? m.from : kNoNode);
    }
  } else if (m.term < term_) {
    if ((config_.check_quorum || config_.pre_vote) && from_leader) {
      // A leader isolated long enough would otherwise never learn its term is over: with
      // pre-vote, nobody bumps terms in messages it receives.
      Message resp;
      resp.type = MessageType::kAppResp;
      resp.to = m.from;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.type = MessageType::kPreVoteResp;
      resp.to = m.from;
      resp.reject = true;
      Send(std::move(resp));
    }
    return Status::Ok();
  }
  if (is_vote) {
    HandleVoteRequest(m);
    return Status::Ok();
  }
  switch (role_) {
    case Role::kLeader:
      StepLeader(m);
      break;
    case Role::kPreCandidate:
    case Role::kCandidate:
      if (from_leader) {
        BecomeFollower(m.term, m.from);
        StepFollower(m);
      } else if (m.type == MessageType::kPreVoteResp || m.type == MessageType::kVoteResp) {
        HandleVoteResponse(m);
      } else if (m.type == MessageType::kTimeoutNow && role_ == Role::kPreCandidate &&
                 Promotable()) {
        // The leader of our term asks us to take over: our pre-vote is moot.
        StartElection(false, true);
      }
      break;
    case Role::kFollower:
      StepFollower(m);
      break;
  }
  return Status::Ok();
}

Result<uint64_t> RawNode::Propose(std::string data) {
  if (role_ != Role::kLeader) {
    return FailedPrecondition("raft: node " + std::to_string(id_) + " is not the leader (leader: " +
                              (lead_ == kNoNode ? std::string("unknown") : std::to_string(lead_)) +
                              ")");
  }
  if (lead_transferee_ != kNoNode) {
    return Unavailable("raft: leadership transfer in progress (to " +
                       std::to_string(lead_transferee_) + "); proposal refused");
  }
  Entry e;
  e.data = std::move(data);
  AppendEntries({std::move(e)});
  BroadcastAppend();
  return log_.LastIndex();
}

Status RawNode::ReadIndex(std::string context) {
  if (role_ != Role::kLeader) {
    return FailedPrecondition("raft: node " + std::to_string(id_) +
                              " is not the leader and cannot serve ReadIndex (leader: " +
                              (lead_ == kNoNode ? std::string("unknown") : std::to_string(lead_)) +
                              ")");
  }
  if (config_.read_only == ReadOnly::kLeaseBased && LeaseValid()) {
    read_states_.push_back(ReadState{log_.committed(), std::move(context)});
    return Status::Ok();
  }
  if (!CommittedInCurrentTerm()) {
    // The commit index of a fresh leader may lag what earlier leaders committed.
    reads_before_commit_.push_back(std::move(context));
    return Status::Ok();
  }
  StartRead(std::move(context));
  return Status::Ok();
}

Status RawNode::Campaign() {
  if (role_ == Role::kLeader) return FailedPrecondition("raft: already the leader");
  if (learner_) {
    return FailedPrecondition("raft: node " + std::to_string(id_) +
                              " is a learner and cannot campaign");
  }
  if (!Promotable()) {
    return FailedPrecondition("raft: node " + std::to_string(id_) +
                              " is not a voter of the current configuration and cannot campaign");
  }
  StartElection(config_.pre_vote);
  return Status::Ok();
}

Status RawNode::TransferLeadership(NodeId target) {
  if (role_ != Role::kLeader) {
    return FailedPrecondition("raft: node " + std::to_string(id_) +
                              " is not the leader and cannot transfer leadership (leader: " +
                              (lead_ == kNoNode ? std::string("unknown") : std::to_string(lead_)) +
                              ")");
  }
  auto it = prs_.find(target);
  if (it == prs_.end()) {
    return InvalidArgument("raft: leadership transfer target " + std::to_string(target) +
                           " is not a member");
  }
  if (it->second.is_learner) {
    return InvalidArgument("raft: leadership transfer target " + std::to_string(target) +
                           " is a learner");
  }
  // The first request's deadline stands: a caller repeating it cannot keep proposals blocked.
  if (target == lead_transferee_) return Status::Ok();
  AbortTransfer();
  if (target == id_) return Status::Ok();
  lead_transferee_ = target;
  if (it->second.match == log_.LastIndex()) {
    SendTimeoutNow(target);
  } else {
    SendAppend(target, true);
  }
  return Status::Ok();
}

void RawNode::AbortTransfer() {
  lead_transferee_ = kNoNode;
  transfer_elapsed_ = 0;
}

void RawNode::SendTimeoutNow(NodeId to) {
  // The target's forced campaign ignores the voters' stickiness that the lease rests on.
  lease_revoked_ = true;
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  Send(std::move(m));
}

bool RawNode::IsVoter(NodeId id) const {
  auto it = prs_.find(id);
  return it != prs_.end() && !it->second.is_learner;
}

bool RawNode::HasReady() const {
  if (ready_outstanding_) return false;
  if (SoftState{lead_, role_} != prev_soft_state_) return true;
  if (HardState{term_, vote_, log_.committed()} != prev_hard_state_) return true;
  if (conf_ != prev_conf_) return true;
  return log_.HasPendingSnapshot() || log_.HasUnstable() || !msgs_.empty() ||
         log_.HasNextCommitted() || !read_states_.empty();
}

Ready RawNode::Ready() {
  if (ready_outstanding_) {
    std::fprintf(stderr, "raft: Ready() called before Advance() of the previous Ready\n");
    std::abort();
  }
  ready_outstanding_ = true;
  raft::Ready rd;
  const SoftState ss{lead_, role_};
  if (ss != prev_soft_state_) rd.soft_state = ss;
  const HardState hs{term_, vote_, log_.committed()};
  if (hs != prev_hard_state_) rd.hard_state = hs;
  rd.snapshot = log_.PendingSnapshot();
  rd.entries = log_.UnstableEntries();
  rd.must_sync = rd.snapshot.has_value() || !rd.entries.empty() ||
                 hs.term != prev_hard_state_.term || hs.vote != prev_hard_state_.vote;
  rd.messages = std::move(msgs_);
  msgs_.clear();
  if (config_.leader_parallel_persist && role_ == Role::kLeader &&
      hs.term == prev_hard_state_.term && hs.vote == prev_hard_state_.vote) {
    auto is_append = [](const Message& m) { return m.type == MessageType::kApp; };
    auto later = std::stable_partition(rd.messages.begin(), rd.messages.end(), is_append);
    rd.early_messages.assign(std::make_move_iterator(rd.messages.begin()),
                             std::make_move_iterator(later));
    rd.messages.erase(rd.messages.begin(), later);
  }
  if (log_.HasNextCommitted())
    rd.committed_entries = log_.NextCommitted(config_.max_committed_size_per_ready);
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  if (conf_ != prev_conf_) rd.conf_state = conf_;
  return rd;
}

void RawNode::Advance(const raft::Ready& rd) {
  ready_outstanding_ = false;
  if (rd.soft_state) prev_soft_state_ = *rd.soft_state;
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  if (rd.snapshot) {
    log_.StableSnapTo(rd.snapshot->metadata.index);
    log_.AppliedTo(rd.snapshot->metadata.index);
  }
  if (!rd.entries.empty()) log_.StableTo(rd.entries.back().index, rd.entries.back().term);
  if (config_.leader_parallel_persist && role_ == Role::kLeader && !rd.entries.empty() &&
      rd.entries.back().term == term_) {
    // The leader's own copy is on disk now: it joins the quorum.
    if (auto self = prs_.find(id_); self != prs_.end()) {
      self->second.MaybeUpdate(rd.entries.back().index);
      if (MaybeCommit()) {
        BroadcastAppend();
        MaybeStepDownRemoved();
      }
    }
  }
  if (!rd.committed_entries.empty()) log_.AppliedTo(rd.committed_entries.back().index);
  if (rd.conf_state) prev_conf_ = *rd.conf_state;
  CompactConfHistory(log_.applied());
}

NodeStatus RawNode::GetStatus() const {
  NodeStatus s;
  s.id = id_;
  s.role = role_;
  s.lead = lead_;
  s.term = term_;
  s.vote = vote_;
  s.commit = log_.committed();
  s.applied = log_.applied();
  s.last_index = log_.LastIndex();
  s.snapshot_index = log_.FirstIndex() - 1;
  s.learner = learner_;
  s.lead_transferee = lead_transferee_;
  s.conf_state = conf_;
  return s;
}

const Progress* RawNode::PeerProgress(NodeId peer) const {
  auto it = prs_.find(peer);
  return it == prs_.end() ? nullptr : &it->second;
}

void RawNode::Send(Message m) {
  m.from = id_;
  if (m.term == 0) m.term = term_;
  msgs_.push_back(std::move(m));
}

}  // namespace dtx::raft
