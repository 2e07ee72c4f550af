// Progress: the leader's view of one follower's log (etcd's tracker.Progress), and Inflights, the
// bound on un-acknowledged append messages to it. Internal to the core.
//
// States: kProbe - the leader does not know where the follower's log matches; it sends one append
// at a time and waits for the answer (or a heartbeat response) before sending the next.
// kReplicate - the logs match up to `match`; the leader streams appends optimistically (next is
// advanced on send), at most Inflights::capacity() un-acknowledged messages at once.
// kSnapshot - the follower needs entries the leader has compacted; a kSnap message carrying the
// snapshot at pending_snapshot is outstanding. Nothing else is sent until the follower answers
// (kAppResp at or beyond what the leader still holds: back to replicate) or snapshot_timeout_tick
// ticks pass (back to probe, which re-sends the snapshot if it is still needed).
//
// Thread-safety: not thread-safe (owned by one RawNode).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace dtx::raft {

class Inflights {
 public:
  explicit Inflights(size_t capacity) : capacity_(capacity) {}

  size_t capacity() const { return capacity_; }
  size_t count() const { return last_indexes_.size(); }
  bool Full() const { return last_indexes_.size() >= capacity_; }
  // Records a message whose last entry is `last_index`. REQUIRES: !Full(), increasing indexes.
  void Add(uint64_t last_index) { last_indexes_.push_back(last_index); }
  // Frees every message whose last entry is <= index (it was acknowledged).
  void FreeLE(uint64_t index);
  void FreeFirstOne();
  void Reset() { last_indexes_.clear(); }

 private:
  size_t capacity_;
  std::deque<uint64_t> last_indexes_;
};

struct Progress {
  enum class State { kProbe, kReplicate, kSnapshot };

  explicit Progress(size_t max_inflight) : inflights(max_inflight) {}

  uint64_t match = 0;
  uint64_t next = 1;
  State state = State::kProbe;
  // kProbe: an append is outstanding; wait for its answer or a heartbeat response.
  bool probe_sent = false;
  // Heard from within the current election timeout (check-quorum).
  bool recent_active = false;
  // A non-voting member: replicated to, never counted for commit or quorum.
  bool is_learner = false;
  // kSnapshot: the index of the snapshot sent, and the leader's ticks since it was sent.
  uint64_t pending_snapshot = 0;
  int snapshot_elapsed = 0;
  // Lease reads: the leader's tick count when it sent the latest heartbeat this follower
  // acknowledged (0: none this term).
  uint64_t lease_ack_tick = 0;
  Inflights inflights;

  bool IsPaused() const;
  // From kSnapshot, probing resumes after the pending snapshot (the follower most likely
  // installed it); a rejection then moves next back as usual.
  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // An acknowledgement up to n: raises match/next; false if it was stale.
  bool MaybeUpdate(uint64_t n);
  // An append of entries up to last_index was sent (entries_sent > 0) or an empty probe.
  void SentAppend(uint64_t last_index, size_t entries_sent);
  // The follower rejected an append at `rejected`, suggesting `probe_hint` as the highest index
  // that may match. Returns false if the rejection is stale (answers an older message) or the
  // follower is in kSnapshot (only the snapshot's answer or its timeout moves it).
  bool MaybeDecrTo(uint64_t rejected, uint64_t probe_hint);
};

}  // namespace dtx::raft
