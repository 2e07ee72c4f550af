// Elections: ticks, roles, (pre-)vote requests and responses, check-quorum.
#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "consensus/raft/raft.h"

namespace dtx::raft {

void RawNode::Tick() {
  ++ticks_;
  if (role_ == Role::kLeader) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void RawNode::TickElection() {
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_tick) start_quiet_ = false;
  if (PastElectionTimeout()) {
    if (Promotable()) {
      election_elapsed_ = 0;
      StartElection(config_.pre_vote);
    } else {
      // A node that cannot campaign stays past its timeout, out of the leader-stickiness window,
      // so a candidate of a newer configuration that counts on its vote can get it.
      election_elapsed_ = randomized_election_timeout_;
    }
  }
}

void RawNode::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (lead_transferee_ != kNoNode && ++transfer_elapsed_ >= config_.election_tick) {
    // The target did not win within an election timeout (unreachable, or lost the vote): keep
    // serving rather than stay unavailable.
    AbortTransfer();
  }
  for (auto& [id, pr] : prs_) {
    // A lost kSnap (or its lost answer) must not stall the follower: probe it again.
    if (pr.state == Progress::State::kSnapshot &&
        ++pr.snapshot_elapsed >= config_.snapshot_timeout_tick) {
      pr.BecomeProbe();
    }
  }
  if (election_elapsed_ >= config_.election_tick) {
    election_elapsed_ = 0;
    if (config_.check_quorum && !QuorumActive()) {
      BecomeFollower(term_, kNoNode);
      return;
    }
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_tick) {
    heartbeat_elapsed_ = 0;
    // Repeating the newest pending read's context lets reads complete although earlier
    // heartbeat rounds were lost.
    BroadcastHeartbeat(pending_reads_.empty() ? std::string() : pending_reads_.back().context);
  }
}

bool RawNode::PastElectionTimeout() const {
  return election_elapsed_ >= randomized_election_timeout_;
}

bool RawNode::InLease() const {
  return config_.check_quorum && (lead_ != kNoNode || start_quiet_) &&
         election_elapsed_ < config_.election_tick;
}

bool RawNode::LeaseValid() const {
  if (role_ != Role::kLeader || lease_revoked_ || !CommittedInCurrentTerm()) return false;
  std::vector<uint64_t> acks;
  for (const auto& [id, pr] : prs_) {
    if (!pr.is_learner) acks.push_back(id == id_ ? ticks_ : pr.lease_ack_tick);
  }
  std::sort(acks.begin(), acks.end(), std::greater<>());
  const uint64_t t = acks[Quorum() - 1];
  return t > 0 && ticks_ - t <= static_cast<uint64_t>(config_.LeaseTicks());
}

bool RawNode::QuorumActive() {
  size_t active = 0;
  for (auto& [id, pr] : prs_) {
    if (!pr.is_learner && (id == id_ || pr.recent_active)) ++active;
    if (id != id_) pr.recent_active = false;
  }
  return active >= Quorum();
}

void RawNode::ResetRandomizedTimeout() {
  randomized_election_timeout_ =
      config_.election_tick +
      static_cast<int>(rand_.Uniform(static_cast<uint64_t>(config_.election_tick)));
}

void RawNode::ResetTerm(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedTimeout();
  votes_.clear();
  const uint64_t last = log_.LastIndex();
  for (auto& [id, pr] : prs_) {
    const bool learner = pr.is_learner;
    pr = Progress(config_.max_inflight_msgs);
    pr.is_learner = learner;
    pr.next = last + 1;
    if (id == id_) pr.match = last;
  }
  // Reads not yet answered are dropped; their callers time out and retry elsewhere.
  pending_reads_.clear();
  reads_before_commit_.clear();
  AbortTransfer();
  lease_revoked_ = false;
}

void RawNode::BecomeFollower(uint64_t term, NodeId lead) {
  ResetTerm(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void RawNode::BecomePreCandidate() {
  // Neither term nor vote change: a pre-candidate that loses leaves no trace.
  votes_.clear();
  lead_ = kNoNode;
  role_ = Role::kPreCandidate;
}

void RawNode::BecomeCandidate() {
  ResetTerm(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void RawNode::BecomeLeader() {
  ResetTerm(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  // A leader outside its configuration (see Promotable) keeps a non-voting entry for itself.
  if (!prs_.contains(id_)) RecomputeConf();
  // Section 8: an entry of the new term lets the leader learn what is committed.
  AppendEntries({Entry{}});
}

void RawNode::StartElection(bool pre_vote, bool transfer) {
  uint64_t vote_term;
  MessageType type;
  if (pre_vote) {
    BecomePreCandidate();
    vote_term = term_ + 1;
    type = MessageType::kPreVote;
  } else {
    BecomeCandidate();
    vote_term = term_;
    type = MessageType::kVote;
  }
  if (IsVoter(id_)) votes_[id_] = true;
  if (Quorum() == 1 && IsVoter(id_)) {
    if (pre_vote) {
      StartElection(false);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (const auto& [id, pr] : prs_) {
    if (id == id_ || pr.is_learner) continue;
    Message m;
    m.type = type;
    m.transfer = transfer;
    m.to = id;
    m.term = vote_term;
    m.index = log_.LastIndex();
    m.log_term = log_.LastTerm();
    Send(std::move(m));
  }
}

void RawNode::HandleVoteRequest(const Message& m) {
  const bool pre = m.type == MessageType::kPreVote;
  // Section 5.2: at most one vote per term, first come first served; a follower that knows a
  // leader of this term votes for nobody else.
  // The answer does not consult this node's own membership (thesis 4.1): a candidate asks only
  // the voters of its configuration, which may be newer than ours - a learner (or a joining
  // node) here may be a voter there, and refusing would leave the candidate without a quorum.
  // For the same reason a candidate unknown here is answered (a removed node cannot disrupt a
  // live leader's followers: they ignore requests while they hear from it, see Step); only a
  // known learner is refused.
  auto from = prs_.find(m.from);
  const bool can_vote =
      (from == prs_.end() || !from->second.is_learner) &&
      (vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) || (pre && m.term > term_));
  Message resp;
  resp.type = pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  resp.to = m.from;
  if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
    resp.term = m.term;
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
  }
  Send(std::move(resp));
}

void RawNode::HandleVoteResponse(const Message& m) {
  const bool mine = (role_ == Role::kPreCandidate && m.type == MessageType::kPreVoteResp) ||
                    (role_ == Role::kCandidate && m.type == MessageType::kVoteResp);
  if (!mine || !IsVoter(m.from)) return;
  votes_.emplace(m.from, !m.reject);
  size_t granted = 0;
  size_t rejected = 0;
  for (const auto& [id, v] : votes_) (v ? granted : rejected)++;
  if (granted >= Quorum()) {
    if (role_ == Role::kPreCandidate) {
      StartElection(false);
    } else {
      BecomeLeader();
      BroadcastAppend();
    }
  } else if (rejected >= Quorum()) {
    BecomeFollower(term_, kNoNode);
  }
}

}  // namespace dtx::raft
