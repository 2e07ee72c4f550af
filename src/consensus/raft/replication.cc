// Log replication, commit and ReadIndex.
#include <algorithm>
#include <functional>
#include <utility>

#include "consensus/raft/raft.h"

namespace dtx::raft {

void RawNode::StepFollower(const Message& m) {
  switch (m.type) {
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleAppend(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleHeartbeat(m);
      break;
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      break;
    case MessageType::kTimeoutNow:
      // The leader asked: campaign now, without pre-vote (it would only delay the handover).
      if (Promotable()) StartElection(false, true);
      break;
    default:
      break;
  }
}

void RawNode::StepLeader(const Message& m) {
  if (!prs_.contains(m.from)) return;
  switch (m.type) {
    case MessageType::kAppResp:
      HandleAppendResponse(m);
      break;
    case MessageType::kHeartbeatResp:
      HandleHeartbeatResponse(m);
      break;
    default:
      break;
  }
}

void RawNode::HandleAppend(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.index < log_.committed()) {
    resp.index = log_.committed();
    Send(std::move(resp));
    return;
  }
  const uint64_t old_last = log_.LastIndex();
  if (std::optional<uint64_t> last = log_.MaybeAppend(m.index, m.log_term, m.commit, m.entries)) {
    NoteAppended(m.entries, log_.LastIndex() < old_last);
    resp.index = *last;
    Send(std::move(resp));
    return;
  }
  // Fast backtracking: point the leader at our last entry whose term is <= the term it probed
  // with; every index between there and m.index is known not to match.
  const auto [hint_index, hint_term] =
      log_.FindConflictByTerm(std::min(m.index, log_.LastIndex()), m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = hint_index;
  resp.log_term = hint_term;
  Send(std::move(resp));
}

void RawNode::HandleSnapshot(const Message& m) {
  const SnapshotMetadata& md = m.snapshot.metadata;
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (md.index <= log_.committed()) {
    // Stale or duplicate: what we have committed already covers it.
    resp.index = log_.committed();
  } else if (log_.MatchTerm(md.index, md.term)) {
    // The snapshot describes a prefix of our log: the entries after it are still valid. The
    // answer is the commit index, not the last index: later entries may not match the leader's.
    log_.CommitTo(md.index);
    resp.index = log_.committed();
  } else {
    log_.Restore(m.snapshot);
    NoteRestored(m.snapshot);
    resp.index = log_.LastIndex();
  }
  Send(std::move(resp));
}

void RawNode::HandleHeartbeat(const Message& m) {
  log_.CommitTo(std::min(m.commit, log_.LastIndex()));
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.index = log_.LastIndex();
  resp.context = m.context;
  resp.commit = m.index;
  Send(std::move(resp));
}

void RawNode::HandleAppendResponse(const Message& m) {
  Progress& pr = prs_.at(m.from);
  pr.recent_active = true;
  if (m.reject) {
    uint64_t hint = m.reject_hint;
    // The follower's entry at reject_hint has term log_term: skip every leader entry above the
    // leader's last entry with a term <= log_term, as none of them can match.
    if (m.log_term > 0) hint = log_.FindConflictByTerm(m.reject_hint, m.log_term).first;
    if (pr.MaybeDecrTo(m.index, hint)) {
      if (pr.state == Progress::State::kReplicate) pr.BecomeProbe();
      SendAppend(m.from, true);
    }
    return;
  }
  if (!pr.MaybeUpdate(m.index)) return;
  if (pr.state == Progress::State::kProbe) {
    pr.BecomeReplicate();
  } else if (pr.state == Progress::State::kSnapshot) {
    // Resume once the follower holds everything before what we can still send; if we compacted
    // further meanwhile, probing sends the newer snapshot.
    if (pr.match + 1 >= log_.FirstIndex()) {
      pr.BecomeReplicate();
    } else if (pr.match >= pr.pending_snapshot) {
      pr.BecomeProbe();
    }
  } else {
    pr.inflights.FreeLE(m.index);
  }
  if (MaybeCommit()) {
    BroadcastAppend();
  } else {
    SendAppend(m.from, false);
  }
  if (m.from == lead_transferee_ && pr.match == log_.LastIndex()) SendTimeoutNow(m.from);
  MaybeStepDownRemoved();
}

void RawNode::HandleHeartbeatResponse(const Message& m) {
  Progress& pr = prs_.at(m.from);
  pr.recent_active = true;
  pr.probe_sent = false;
  if (m.commit <= ticks_) pr.lease_ack_tick = std::max(pr.lease_ack_tick, m.commit);
  if (pr.state == Progress::State::kReplicate) {
    if (pr.inflights.Full()) pr.inflights.FreeFirstOne();
    // On an ordered channel the follower has seen every append sent before this heartbeat; a
    // last index below them means they were lost - resume from the known match.
    if (m.index + 1 < pr.next && pr.match < log_.LastIndex()) pr.BecomeProbe();
  }
  // Even with nothing new to send: the follower's acknowledgement of the last entries may have
  // been lost, and without another append (an empty one asks for a fresh acknowledgement) its
  // match would not advance until the next proposal - which may never come.
  if (pr.match < log_.LastIndex()) SendAppend(m.from, true);

  if (m.context.empty() || pending_reads_.empty()) return;
  for (size_t k = 0; k < pending_reads_.size(); ++k) {
    if (pending_reads_[k].context != m.context) continue;
    if (pr.is_learner) return;  // a learner's ack does not confirm leadership
    pending_reads_[k].acks.insert(m.from);
    // Counted against the configuration now in effect: an ack from a node removed since the
    // read started does not count.
    const auto voters = std::count_if(pending_reads_[k].acks.begin(), pending_reads_[k].acks.end(),
                                      [this](NodeId id) { return IsVoter(id); });
    if (static_cast<size_t>(voters) >= Quorum()) ReleaseReadsUpTo(k + 1);
    return;
  }
}

void RawNode::ReleaseReadsUpTo(size_t count) {
  // A quorum acknowledged a round sent after every earlier request: they are confirmed too.
  for (size_t k = 0; k < count && !pending_reads_.empty(); ++k) {
    read_states_.push_back(
        ReadState{pending_reads_.front().index, std::move(pending_reads_.front().context)});
    pending_reads_.pop_front();
  }
}

void RawNode::StartRead(std::string context) {
  if (Quorum() == 1 && IsVoter(id_)) {
    read_states_.push_back(ReadState{log_.committed(), std::move(context)});
    return;
  }
  PendingRead read;
  read.context = context;
  read.index = log_.committed();
  if (IsVoter(id_)) read.acks.insert(id_);
  pending_reads_.push_back(std::move(read));
  BroadcastHeartbeat(context);
}

void RawNode::AppendEntries(std::vector<Entry> entries) {
  uint64_t index = log_.LastIndex();
  for (Entry& e : entries) {
    e.term = term_;
    e.index = ++index;
  }
  log_.Append(entries);
  NoteAppended(entries, false);
  // The leader's own copy counts toward the quorum now: the host persists it before it sends
  // anything and before it applies anything this commit allows. With leader_parallel_persist
  // the host may send appends first, so the copy counts only once persisted (Advance).
  if (!config_.leader_parallel_persist) prs_.at(id_).MaybeUpdate(index);
  MaybeCommit();
}

bool RawNode::MaybeCommit() {
  std::vector<uint64_t> matches;
  matches.reserve(voters_);
  for (const auto& [id, pr] : prs_) {
    if (!pr.is_learner) matches.push_back(pr.match);
  }
  std::sort(matches.begin(), matches.end(), std::greater<>());
  // Figure 8: only an entry of the current term is committed by counting replicas.
  if (!log_.MaybeCommit(matches[Quorum() - 1], term_)) return false;
  if (CommittedInCurrentTerm() && !reads_before_commit_.empty()) {
    std::vector<std::string> waiting = std::move(reads_before_commit_);
    reads_before_commit_.clear();
    for (std::string& ctx : waiting) StartRead(std::move(ctx));
  }
  return true;
}

bool RawNode::CommittedInCurrentTerm() const { return log_.TermOrZero(log_.committed()) == term_; }

void RawNode::SendAppend(NodeId to, bool send_if_empty) {
  Progress& pr = prs_.at(to);
  // Replicate state streams up to the in-flight bound; probe state sends one message.
  for (size_t round = 0; round <= config_.max_inflight_msgs; ++round) {
    if (pr.IsPaused()) return;
    if (pr.next < log_.FirstIndex()) {
      SendSnapshot(to, pr);
      return;
    }
    const uint64_t last = log_.LastIndex();
    Message m;
    m.type = MessageType::kApp;
    m.to = to;
    m.index = pr.next - 1;
    m.log_term = log_.TermOrZero(m.index);
    if (pr.next <= last) m.entries = log_.Slice(pr.next, last + 1, config_.max_size_per_msg);
    if (m.entries.empty() && !send_if_empty) return;
    m.commit = log_.committed();
    const size_t n = m.entries.size();
    const uint64_t sent_last = n == 0 ? m.index : m.entries.back().index;
    Send(std::move(m));
    pr.SentAppend(sent_last, n);
    send_if_empty = false;
    if (pr.state == Progress::State::kProbe) return;
  }
}

bool RawNode::SendSnapshot(NodeId to, Progress& pr) {
  Result<raft::Snapshot> snap = log_.Snapshot();
  // Unavailable now (or a storage error): the next heartbeat response tries again.
  if (!snap.ok() || snap->empty()) return false;
  Message m;
  m.type = MessageType::kSnap;
  m.to = to;
  pr.BecomeSnapshot(snap->metadata.index);
  m.snapshot = std::move(snap).value();
  Send(std::move(m));
  return true;
}

void RawNode::BroadcastAppend() {
  for (const auto& [id, pr] : prs_) {
    if (id != id_) SendAppend(id, true);
  }
}

void RawNode::BroadcastHeartbeat(const std::string& context) {
  for (const auto& [id, pr] : prs_) {
    if (id == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = id;
    // Never beyond what the follower is known to hold: it cannot commit entries it lacks.
    m.commit = std::min(pr.match, log_.committed());
    m.context = context;
    if (config_.read_only == ReadOnly::kLeaseBased) m.index = ticks_;
    Send(std::move(m));
  }
}

}  // namespace dtx::raft
