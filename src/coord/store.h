// The coordinator's durable transaction store: persists the engine's write batches, reloads
// unfinished transactions after a restart, serves DTM's query API (/query, /all) and removes
// old finished transactions.
//
// Two implementations: OpenRocksStore() (RocksDB, synced writes; what dtxd runs on) and
// NewMemStore() (tests and simulation). Both keep the same indexes and give the same answers:
//   - an unfinished index, so LoadUnfinished() never touches finished transactions;
//   - a creation-order index (a sequence number that never goes backwards, also across
//     restarts), so Scan() pages newest-first;
//   - a finish-time index, so PurgeFinished() reads only what it removes.
//
// Thread-safety: all methods may be called concurrently. Concurrent Write() calls must touch
// disjoint gids (the engine has one Ready outstanding at a time, so this holds for one engine);
// RocksDB commits concurrent batches together (group commit). PurgeFinished() excludes writers
// while it runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "coord/engine.h"
#include "coord/txn.h"

namespace dtx::coord {

struct ScanFilter {
  std::optional<GlobalStatus> status;
  std::optional<TransType> trans_type;
};

struct ScanPage {
  std::vector<TxnRecord> txns;
  std::string next_position;  // "" = no more
};

struct StoreStats {
  uint64_t writes = 0;   // TxnWrites persisted
  uint64_t batches = 0;  // non-empty Write() calls that succeeded
};

// The time PurgeFinished() compares with its cutoff: rollback_time for a failed transaction,
// finish_time for a succeeded one, and update_time when that field is 0.
inline TimeMs FinishedAt(const TxnState& s) {
  const TimeMs t = s.status == GlobalStatus::kFailed ? s.rollback_time : s.finish_time;
  return t != 0 ? t : s.update_time;
}

class TxnStore : public TxnReader {
 public:
  // Upper bound on index entries one Scan() call examines; with a selective filter a page may
  // then hold fewer than `limit` records while next_position is still non-empty.
  static constexpr size_t kScanMaxExamined = 10'000;

  // Applies all writes atomically and durably (synced) before returning: either every write
  // is applied or none is. A create writes the def and the state; other writes only the state.
  // Finished states (succeed/failed) leave the unfinished index and enter a finish-time index.
  // Every write must carry `def` (the store keys records by def->gid; only a create stores it),
  // and state.steps must have one entry per def step. Several writes in one batch may concern
  // the same gid (create then update): they apply in order.
  // Errors (nothing is applied): kInvalidArgument for a write without def, with an empty gid or
  // a step count mismatch; kAlreadyExists for a create of an existing gid;
  // kFailedPrecondition for an update of a gid that was never created; kUnavailable/kInternal
  // when the disk fails.
  virtual Status Write(const std::vector<TxnWrite>& batch) = 0;

  // The record of `gid`, or nullopt if there is none. kDataLoss if it is corrupt.
  Result<std::optional<TxnRecord>> Load(const std::string& gid) override = 0;

  // Every transaction not in a final state, in no particular order.
  virtual Result<std::vector<TxnRecord>> LoadUnfinished() = 0;

  // DTM's /all: newest created first, at most `limit` (> 0, else kInvalidArgument) records
  // matching `f`. `position` is "" for the first page or a previous page's next_position; a
  // malformed position -> kInvalidArgument. Reads one consistent snapshot per call.
  virtual Result<ScanPage> Scan(const std::string& position, size_t limit, const ScanFilter& f) = 0;

  // Removes finished transactions whose FinishedAt() is < cutoff, oldest first, at most
  // `limit`; all their keys go in one atomic batch. Returns how many were removed.
  virtual Result<size_t> PurgeFinished(TimeMs cutoff, size_t limit) = 0;

  virtual StoreStats stats() const = 0;
};

struct RocksStoreOptions {
  bool sync = true;  // fsync the WAL before Write() returns
  size_t block_cache_bytes = 32 << 20;
  // Per memtable; at most two exist, so memtables use at most twice this.
  size_t write_buffer_bytes = 32 << 20;
};

// Opens (creating if missing, with parent directories) the store in `dir`. Errors name the
// directory: kFailedPrecondition if it cannot be created or written, or if another process
// (or another store in this process) holds it open; kDataLoss if its files are corrupt.
Result<std::unique_ptr<TxnStore>> OpenRocksStore(const std::string& dir, RocksStoreOptions o = {});

// An in-memory store for tests and simulation: Write is atomic, "durable" means in memory.
std::unique_ptr<TxnStore> NewMemStore();

}  // namespace dtx::coord
