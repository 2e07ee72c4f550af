#include "consensus/raft/log.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace dtx::raft {

namespace {

[[noreturn]] void Bug(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr, "raft log invariant violated: %s (%llu, %llu)\n", what,
               static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  std::abort();
}

}  // namespace

RaftLog::RaftLog(const Storage* storage)
    : storage_(storage), unstable_offset_(storage->LastIndex() + 1) {
  // The stored commit index may lag a snapshot (hosts persist it lazily); a snapshot is committed.
  applied_ = storage->FirstIndex() - 1;
  committed_ = std::max(std::min(storage->InitialState().commit, storage->LastIndex()), applied_);
}

uint64_t RaftLog::TermOrZero(uint64_t i) const {
  if (i >= unstable_offset_) {
    const uint64_t k = i - unstable_offset_;
    return k < unstable_.size() ? unstable_[k].term : 0;
  }
  if (pending_snapshot_) {
    return i == pending_snapshot_->metadata.index ? pending_snapshot_->metadata.term : 0;
  }
  if (i + 1 < storage_->FirstIndex()) return 0;
  Result<uint64_t> t = storage_->Term(i);
  return t.ok() ? *t : 0;
}

bool RaftLog::MatchTerm(uint64_t i, uint64_t term) const {
  if (i > LastIndex() || i + 1 < FirstIndex()) return false;
  return TermOrZero(i) == term;
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t last_term) const {
  return last_term > LastTerm() || (last_term == LastTerm() && last_index >= LastIndex());
}

uint64_t RaftLog::FindConflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!MatchTerm(e.index, e.term)) return e.index;
  }
  return 0;
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term, uint64_t commit,
                                             const std::vector<Entry>& entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const uint64_t last_new = index + entries.size();
  const uint64_t conflict = FindConflict(entries);
  if (conflict != 0) {
    if (conflict <= committed_) Bug("conflicting entry at or below commit", conflict, committed_);
    std::vector<Entry> tail(entries.begin() + static_cast<std::ptrdiff_t>(conflict - index - 1),
                            entries.end());
    TruncateAndAppend(tail);
  }
  CommitTo(std::min(commit, last_new));
  return last_new;
}

void RaftLog::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  if (entries.front().index != LastIndex() + 1) {
    Bug("leader append not at the end", entries.front().index, LastIndex());
  }
  TruncateAndAppend(entries);
}

void RaftLog::TruncateAndAppend(const std::vector<Entry>& entries) {
  const uint64_t after = entries.front().index;
  if (after == unstable_offset_ + unstable_.size()) {
    unstable_.insert(unstable_.end(), entries.begin(), entries.end());
  } else if (after <= unstable_offset_) {
    // Replaces stable entries too; the host truncates storage when it persists these.
    unstable_offset_ = after;
    unstable_ = entries;
  } else {
    unstable_.resize(after - unstable_offset_);
    unstable_.insert(unstable_.end(), entries.begin(), entries.end());
  }
}

std::pair<uint64_t, uint64_t> RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, LastIndex());
  // Each step moves one index down; the loop ends at the sentinel (term 0) at the latest.
  for (; index >= FirstIndex(); --index) {
    const uint64_t t = TermOrZero(index);
    if (t <= term) return {index, t};
  }
  return {index, TermOrZero(index)};
}

void RaftLog::CommitTo(uint64_t commit) {
  if (commit <= committed_) return;
  if (commit > LastIndex()) Bug("commit beyond the last index", commit, LastIndex());
  committed_ = commit;
}

bool RaftLog::MaybeCommit(uint64_t max_index, uint64_t term) {
  if (max_index > committed_ && TermOrZero(max_index) == term) {
    CommitTo(max_index);
    return true;
  }
  return false;
}

void RaftLog::AppliedTo(uint64_t index) {
  if (index == 0) return;
  if (index > committed_ || index < applied_) Bug("applied out of range", index, committed_);
  applied_ = index;
}

std::vector<Entry> RaftLog::Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes) const {
  std::vector<Entry> out;
  if (lo >= hi) return out;
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    Result<std::vector<Entry>> stored =
        storage_->Entries(lo, std::min(hi, unstable_offset_), max_bytes);
    if (!stored.ok()) Bug("storage cannot serve a slice it should hold", lo, unstable_offset_);
    out = std::move(*stored);
    for (const Entry& e : out) bytes += EntrySize(e);
    if (out.size() < std::min(hi, unstable_offset_) - lo) return out;
  }
  for (uint64_t i = std::max(lo, unstable_offset_); i < hi; ++i) {
    const Entry& e = unstable_[i - unstable_offset_];
    bytes += EntrySize(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

void RaftLog::StableTo(uint64_t index, uint64_t term) {
  if (index < unstable_offset_ || index > LastIndex()) return;
  if (TermOrZero(index) != term) return;
  unstable_.erase(unstable_.begin(),
                  unstable_.begin() + static_cast<std::ptrdiff_t>(index + 1 - unstable_offset_));
  unstable_offset_ = index + 1;
}

std::vector<Entry> RaftLog::NextCommitted(uint64_t max_bytes) const {
  return Slice(std::max(applied_ + 1, FirstIndex()), committed_ + 1, max_bytes);
}

void RaftLog::Restore(raft::Snapshot snap) {
  const uint64_t index = snap.metadata.index;
  if (index <= committed_)
    Bug("restoring a snapshot at or below the commit index", index, committed_);
  committed_ = index;
  unstable_.clear();
  unstable_offset_ = index + 1;
  pending_snapshot_ = std::move(snap);
}

void RaftLog::StableSnapTo(uint64_t index) {
  if (pending_snapshot_ && pending_snapshot_->metadata.index == index) pending_snapshot_.reset();
}

Result<raft::Snapshot> RaftLog::Snapshot() const {
  if (pending_snapshot_) return *pending_snapshot_;
  return storage_->Snapshot();
}

}  // namespace dtx::raft
