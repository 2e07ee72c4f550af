// WalStorage: the durable raft::Storage. Entries live in a dtx::wal::Wal (one record per entry,
// record index = entry index); the hard state lives in the WAL's atomic meta file "hardstate".
//
// The host calls Persist(ready) for the persist step of each Ready (raft.h): it appends the
// Ready's entries (first truncating a conflicting suffix), syncs them when the Ready says
// must_sync, and saves the hard state when its term or vote changed - before the host sends the
// Ready's messages. A hard state whose only change is the commit index is kept in memory and
// written with the next term/vote change: the stored commit index may lag, which is safe (commit
// only grows and a restarted node learns it again from the leader) and saves an fsync'ed file
// replacement per Ready.
//
// The stable log is also kept in memory so that the core's reads never touch the Env; the WAL
// is read only at Open.
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
  uint64_t FirstIndex() const override { return 1; }
  uint64_t LastIndex() const override { return entries_.size(); }
  Result<uint64_t> Term(uint64_t i) const override;
  Result<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override;
  // No compaction yet: always the empty snapshot.
  Result<raft::Snapshot> Snapshot() const override { return raft::Snapshot{}; }

  // The persist step of a Ready (see above). After an error the storage must not be used again:
  // the host stops the node (a later Open recovers whatever reached the disk).
  Status Persist(const raft::Ready& rd);

 private:
  WalStorage(std::unique_ptr<wal::Wal> wal, bool sync);

  std::unique_ptr<wal::Wal> wal_;
  bool sync_;
  HardState hs_;                // the latest hard state
  HardState saved_hs_;          // what the meta file holds
  std::vector<Entry> entries_;  // entries_[i] has index i + 1
};

// The WAL record payload of an entry (term, type, data) and its inverse; kDataLoss if malformed.
std::string EncodeEntryPayload(const Entry& e);
Result<Entry> DecodeEntryPayload(uint64_t index, std::string_view payload);

}  // namespace dtx::raft
