// RaftLog: the core's view of the log - a stable prefix read from Storage plus an unstable suffix
// the host has not yet persisted - with the commit and apply cursors. Internal to the core.
//
// Indexes: entries are FirstIndex()..LastIndex(); FirstIndex()-1 is the snapshot point (index 0,
// term 0 without a snapshot) whose term is still known. Entries in [unstable offset,
// LastIndex()] are handed out by UnstableEntries() until StableTo() confirms their persistence.
// A snapshot received from the leader (Restore) is pending until StableSnapTo(): while it is,
// it replaces the storage's log entirely (FirstIndex() = its index + 1) and nothing is handed out
// for applying. Invariant: applied <= committed <= LastIndex(), FirstIndex()-1 <= committed.
//
// Thread-safety: not thread-safe (owned by one RawNode).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "consensus/raft/storage.h"
#include "consensus/raft/types.h"

namespace dtx::raft {

class RaftLog {
 public:
  // REQUIRES: storage outlives the log.
  explicit RaftLog(const Storage* storage);

  uint64_t FirstIndex() const {
    return pending_snapshot_ ? pending_snapshot_->metadata.index + 1 : storage_->FirstIndex();
  }
  uint64_t LastIndex() const { return unstable_offset_ + unstable_.size() - 1; }
  uint64_t LastTerm() const { return TermOrZero(LastIndex()); }
  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }

  // Term of entry i, or 0 if i is outside [FirstIndex()-1, LastIndex()].
  uint64_t TermOrZero(uint64_t i) const;
  bool MatchTerm(uint64_t i, uint64_t term) const;
  // The election restriction (section 5.4.1): is a log ending at (last_index, last_term) at least
  // as up to date as this one?
  bool IsUpToDate(uint64_t last_index, uint64_t last_term) const;

  // Follower side of AppendEntries: if the entry at `index` has `log_term`, appends `entries`
  // after it (dropping a conflicting suffix), commits up to min(commit, last new index) and
  // returns the last new index; otherwise nullopt.
  // Aborts (a bug elsewhere) if a conflicting entry is at or below the commit index.
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t commit,
                                      const std::vector<Entry>& entries);
  // Leader side: appends entries (indexes already assigned, starting at LastIndex()+1).
  void Append(const std::vector<Entry>& entries);

  // The largest index <= index whose term is <= term, with that term (fast backtracking).
  std::pair<uint64_t, uint64_t> FindConflictByTerm(uint64_t index, uint64_t term) const;

  // Raises the commit index (never lowers it). REQUIRES: commit <= LastIndex().
  void CommitTo(uint64_t commit);
  // Commits max_index if it is beyond the commit index and has the given term (figure 8).
  bool MaybeCommit(uint64_t max_index, uint64_t term);
  void AppliedTo(uint64_t index);

  // Entries [lo, hi) bounded by max_bytes (at least one when lo < hi), from storage and the
  // unstable suffix. REQUIRES FirstIndex() <= lo <= hi <= LastIndex()+1.
  std::vector<Entry> Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes) const;

  bool HasUnstable() const { return !unstable_.empty(); }
  const std::vector<Entry>& UnstableEntries() const { return unstable_; }
  // The host persisted entries up to (index, term): drop them from the unstable suffix, unless
  // they were replaced since (then the term no longer matches and nothing happens).
  void StableTo(uint64_t index, uint64_t term);

  // Replaces the log by snap (the caller checked that it is beyond the commit index and not in
  // the log): the log ends at its index, which is committed.
  void Restore(raft::Snapshot snap);
  bool HasPendingSnapshot() const { return pending_snapshot_.has_value(); }
  const std::optional<raft::Snapshot>& PendingSnapshot() const { return pending_snapshot_; }
  // The host persisted the pending snapshot at index (a no-op if another one replaced it).
  void StableSnapTo(uint64_t index);
  // The pending snapshot, else the storage's.
  Result<raft::Snapshot> Snapshot() const;

  bool HasNextCommitted() const { return !pending_snapshot_ && committed_ > applied_; }
  std::vector<Entry> NextCommitted(uint64_t max_bytes) const;

 private:
  uint64_t FindConflict(const std::vector<Entry>& entries) const;
  void TruncateAndAppend(const std::vector<Entry>& entries);

  const Storage* storage_;
  std::vector<Entry> unstable_;
  uint64_t unstable_offset_;  // index of unstable_[0]
  std::optional<raft::Snapshot> pending_snapshot_;
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
};

}  // namespace dtx::raft
