// Shared RocksDB plumbing for the stores built on it (dtxd's coordinator store, dtxkv's state):
// opening a database with the tuning both need and clear errors, and Status conversion.
//
// Thread-safety: the functions are thread-safe; the DB they open is RocksDB's (thread-safe).
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/slice.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace dtx {

struct RocksDbOptions {
  size_t block_cache_bytes = 32 << 20;
  // Per memtable; at most two exist, so memtables use at most twice this.
  size_t write_buffer_bytes = 32 << 20;
  // Compact files dense with deletions early (for key ranges used like queues).
  bool compact_files_dense_with_deletions = false;
};

// Opens (creating if missing, with parent directories) the database in `dir`. Errors name the
// directory and `what` ("store", "dtxkv state"): kFailedPrecondition if it cannot be created or
// written, or if another process (or another handle in this process) holds it open - then the
// message asks whether another `holder` ("dtxd", "dtxkv") runs on it; kDataLoss if its files are
// corrupt.
Result<std::unique_ptr<rocksdb::DB>> OpenRocksDb(const std::string& dir, const RocksDbOptions& o,
                                                 std::string_view what, std::string_view holder);

// kDataLoss for corruption, kUnavailable for I/O and transient errors, kInternal otherwise; the
// message is `what: <RocksDB's message>`.
Status FromRocks(const rocksdb::Status& s, const std::string& what);

inline rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
inline std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

}  // namespace dtx
