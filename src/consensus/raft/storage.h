// Storage: what the Raft core reads from stable storage - the hard state at start and the stable
// prefix of the log. The host writes to it (from Ready) and the core only reads. MemoryStorage is
// the in-memory implementation for tests and the simulator; src/wal provides the durable one.
//
// Snapshots and compaction are NOT in this version: FirstIndex() is always 1 and index 0 is a
// sentinel with term 0.
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
  // Index of the first entry available (1 while there is no compaction).
  virtual uint64_t FirstIndex() const = 0;
  // Index of the last stable entry (0 when the log is empty).
  virtual uint64_t LastIndex() const = 0;
  // Term of entry i, for FirstIndex()-1 <= i <= LastIndex(); otherwise kNotFound.
  virtual Result<uint64_t> Term(uint64_t i) const = 0;
  // Entries [lo, hi) with total EntrySize() at most max_bytes, but at least one entry when
  // lo < hi. REQUIRES FirstIndex() <= lo <= hi <= LastIndex()+1, else kInvalidArgument.
  virtual Result<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi,
                                             uint64_t max_bytes) const = 0;
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  HardState InitialState() const override { return hard_state_; }
  uint64_t FirstIndex() const override { return 1; }
  uint64_t LastIndex() const override { return entries_.size() - 1; }
  Result<uint64_t> Term(uint64_t i) const override;
  Result<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override;

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  // Appends entries (consecutive indexes), first truncating any stored suffix they overwrite.
  // kInvalidArgument if they do not start within [1, LastIndex()+1] or are not consecutive.
  Status Append(const std::vector<Entry>& entries);

 private:
  HardState hard_state_;
  std::vector<Entry> entries_;  // entries_[i].index == i; entries_[0] is the sentinel
};

}  // namespace dtx::raft
