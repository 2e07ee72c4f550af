// WalStorage: the durable raft::Storage. Entries live in a dtx::wal::Wal (one record per entry,
// record index = entry index); the hard state lives in the WAL's atomic meta file "hardstate",
// the latest snapshot (index, term, data) in the meta file "snapshot".
//
// The host calls Persist(ready) for the persist step of each Ready (raft.h): it appends the
// Ready's entries (first truncating a conflicting suffix), syncs them when the Ready says
// must_sync, and saves the hard state when its term or vote changed - before the host sends the
// Ready's messages. A hard state whose only change is the commit index is kept in memory and
// written with the next term/vote change: the stored commit index may lag, which is safe (commit
// only grows and a restarted node learns it again from the leader) and saves an fsync'ed file
// replacement per Ready.
//
// Snapshots: a Ready's snapshot (a follower restoring from its leader) is saved, then the WAL is
// reset to start right after it. Host-side compaction is one call, SaveSnapshotAndCompact: the
// snapshot is saved, then the entries it covers are dropped from memory and the WAL segments
// holding only such entries are removed. The snapshot's data stays on disk only: Snapshot()
// reads it back. Each step is durable before the next starts, so a crash anywhere leaves the old
// or the new snapshot and a WAL that Open reconciles with it: entries at or below the snapshot
// are ignored, and a WAL left over from before a restore (its entry at the snapshot's index is
// missing or has another term) is discarded after the snapshot.
//
// The stable log after the snapshot is also kept in memory so that the core's reads never touch
// the Env; the WAL is read only at Open.
//
// Thread-safety: not thread-safe; the thread that drives the RawNode calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "consensus/raft/raft.h"
#include "consensus/raft/storage.h"
#include "wal/wal.h"

namespace dtx::raft {

struct WalStorageOptions {
  std::string dir;                    // the WAL's directory (created if missing)
  uint64_t segment_bytes = 64 << 20;  // WAL segment size
  // false is a deliberately broken variant for the simulator's self-test: appends are
  // acknowledged without a sync and Open forgives a commit index beyond the surviving log.
  bool sync = true;
};

class WalStorage final : public Storage {
 public:
  // Opens (or creates) the storage in options.dir on `env`. kDataLoss when the WAL or the hard
  // state is corrupt or the entries are not consecutive from 1; other WAL errors as they come.
  // REQUIRES: env outlives the storage.
  static Result<std::unique_ptr<WalStorage>> Open(Env* env, const WalStorageOptions& options);

  HardState InitialState() const override { return hs_; }
  uint64_t FirstIndex() const override { return snap_.index + 1; }
  uint64_t LastIndex() const override { return snap_.index + entries_.size(); }
  Result<uint64_t> Term(uint64_t i) const override;
  Result<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override;
  // Reads the snapshot file (kDataLoss if it is corrupt or not the one expected).
  Result<raft::Snapshot> Snapshot() const override;
  // The latest snapshot's metadata, without reading its data.
  SnapshotMetadata snapshot_metadata() const { return snap_; }
  Result<SnapshotMetadata> LatestSnapshotMetadata() const override { return snap_; }

  // Host-side compaction: saves `data` (the state machine's image after applying every entry up
  // to index) as the snapshot at index, then drops the entries up to index (FirstIndex() becomes
  // index+1). Call it with the applied index, between Ready rounds; conf_state is the
  // configuration at index (RawNode::ConfStateAt(index)) - empty records none, and a restart
  // then falls back to Config::peers/learners. Errors: kFailedPrecondition
  // if index is not beyond the current snapshot or beyond the commit index known to the storage
  // (only committed entries may be compacted), kInvalidArgument if index > LastIndex(); I/O
  // errors as they come (then the storage must not be used again, as after Persist).
  Status SaveSnapshotAndCompact(uint64_t index, std::string data, ConfState conf_state = {});

  // The persist step of a Ready (see above). After an error the storage must not be used again:
  // the host stops the node (a later Open recovers whatever reached the disk).
  Status Persist(const raft::Ready& rd);

 private:
  WalStorage(std::unique_ptr<wal::Wal> wal, bool sync);

  Status Recover(const std::string& dir);
  Status SaveSnapshot(const raft::Snapshot& snap);

  std::unique_ptr<wal::Wal> wal_;
  bool sync_;
  HardState hs_;                // the latest hard state
  HardState saved_hs_;          // what the meta file holds
  SnapshotMetadata snap_;       // the latest snapshot (index 0: none)
  std::vector<Entry> entries_;  // entries_[i] has index snap_.index + 1 + i
};

// The WAL record payload of an entry (term, type, data) and its inverse; kDataLoss if malformed.
std::string EncodeEntryPayload(const Entry& e);
Result<Entry> DecodeEntryPayload(uint64_t index, std::string_view payload);

}  // namespace dtx::raft
