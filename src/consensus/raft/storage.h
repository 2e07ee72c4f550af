// Storage: what the Raft core reads from stable storage - the hard state at start and the stable
// prefix of the log. The host writes to it (from Ready) and the core only reads. MemoryStorage is
// the in-memory implementation for tests and the simulator; src/wal provides the durable one.
//
// Snapshots and compaction: the log before FirstIndex() is compacted into the latest snapshot,
// which covers every entry up to FirstIndex()-1; Term(FirstIndex()-1) is the snapshot's term
// (index 0, term 0 when there is no snapshot: FirstIndex() is then 1).
//
// Thread-safety: Storage implementations need not be thread-safe; the core calls them from the
// thread that drives it, and the host must not write concurrently with a core call.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "consensus/raft/types.h"

namespace dtx::raft {

class Storage {
 public:
  virtual ~Storage() = default;

  virtual HardState InitialState() const = 0;
  // Index of the first entry available: the latest snapshot's index + 1 (1 without one).
  virtual uint64_t FirstIndex() const = 0;
  // Index of the last stable entry (0 when the log is empty).
  virtual uint64_t LastIndex() const = 0;
  // Term of entry i, for FirstIndex()-1 <= i <= LastIndex(); otherwise kNotFound.
  virtual Result<uint64_t> Term(uint64_t i) const = 0;
  // Entries [lo, hi) with total EntrySize() at most max_bytes, but at least one entry when
  // lo < hi. REQUIRES FirstIndex() <= lo <= hi <= LastIndex()+1, else kInvalidArgument.
  virtual Result<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi,
                                             uint64_t max_bytes) const = 0;
  // The latest snapshot (index >= FirstIndex()-1; an empty one, index 0, when there is none).
  // May be costly (reads it from disk): the core calls it only when a follower needs it.
  // kUnavailable when it cannot be produced now (the core retries later); other errors as the
  // implementation reports them.
  virtual Result<raft::Snapshot> Snapshot() const = 0;
  // The latest snapshot's metadata (its configuration included); cheap in the implementations
  // here. The default reads the whole snapshot.
  virtual Result<SnapshotMetadata> LatestSnapshotMetadata() const {
    Result<raft::Snapshot> s = Snapshot();
    if (!s.ok()) return s.status();
    return s->metadata;
  }
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  HardState InitialState() const override { return hard_state_; }
  uint64_t FirstIndex() const override { return offset() + 1; }
  uint64_t LastIndex() const override { return offset() + entries_.size() - 1; }
  Result<uint64_t> Term(uint64_t i) const override;
  Result<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override;
  Result<raft::Snapshot> Snapshot() const override { return snapshot_; }
  Result<SnapshotMetadata> LatestSnapshotMetadata() const override { return snapshot_.metadata; }

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  // Appends entries (consecutive indexes), first truncating any stored suffix they overwrite.
  // Entries at or below the snapshot index are skipped (already covered). kInvalidArgument if
  // they leave a gap after LastIndex() or are not consecutive.
  Status Append(const std::vector<Entry>& entries);

  // The persist step of a Ready's snapshot (a follower restoring from its leader): the snapshot
  // replaces the whole log, which then ends at its index. kFailedPrecondition if it is not newer
  // than the current snapshot.
  Status ApplySnapshot(raft::Snapshot snap);
  // Host-side compaction, step 1: records `data` as the snapshot at `index` (its term is the
  // entry's), the state machine's image after applying entries up to index. Entries are kept
  // until Compact. conf_state is the configuration at index (RawNode::ConfStateAt(index));
  // empty records none (a restart then falls back to Config::peers/learners, so hosts that
  // change the membership must pass it). kFailedPrecondition if index is not beyond the current
  // snapshot, kInvalidArgument if index > LastIndex().
  Status CreateSnapshot(uint64_t index, std::string data, ConfState conf_state = {});
  // Step 2: drops every entry up to and including index (the term of entry index is kept, so
  // FirstIndex() becomes index+1). REQUIRES index <= the snapshot index, so the snapshot always
  // covers what is dropped (kFailedPrecondition otherwise); kInvalidArgument if index <
  // FirstIndex()-1 (already compacted) or index > LastIndex(). Compact(FirstIndex()-1) is a
  // no-op.
  Status Compact(uint64_t index);

 private:
  uint64_t offset() const { return entries_[0].index; }

  HardState hard_state_;
  raft::Snapshot snapshot_;
  // entries_[i].index == offset() + i; entries_[0] is a dummy at the compaction point carrying
  // that entry's term (index 0, term 0 before any compaction).
  std::vector<Entry> entries_;
};

}  // namespace dtx::raft
