#include "base/rocksdb.h"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

namespace dtx {

Result<std::unique_ptr<rocksdb::DB>> OpenRocksDb(const std::string& dir, const RocksDbOptions& o,
                                                 std::string_view what, std::string_view holder) {
  const std::string name(what);
  if (dir.empty()) return InvalidArgument(name + " directory is empty");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return FailedPrecondition("cannot create " + name + " directory '" + dir +
                              "': " + ec.message());
  }
  rocksdb::Options opt;
  opt.create_if_missing = true;
  opt.write_buffer_size = o.write_buffer_bytes;
  opt.max_write_buffer_number = 2;
  opt.max_background_jobs = 2;
  opt.max_open_files = 512;
  opt.keep_log_file_num = 4;
  opt.max_log_file_size = 8 << 20;
  rocksdb::BlockBasedTableOptions table;
  // Few shards: a shard must hold the largest block it caches.
  table.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes, /*num_shard_bits=*/2);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index and filter blocks live in the block cache, so its size bounds them too. They are
  // partitioned into small blocks: a monolithic filter of a large file, evicted and re-read (and
  // checksummed) per lookup, made point lookups slow down as a store grew.
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  opt.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (o.compact_files_dense_with_deletions) {
    opt.table_properties_collector_factories.emplace_back(
        rocksdb::NewCompactOnDeletionCollectorFactory(1024, 512));
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opt, dir, &raw);
  if (!s.ok()) {
    const std::string msg = s.ToString();
    if (s.IsCorruption()) return DataLoss(name + " in '" + dir + "' is corrupt: " + msg);
    std::string lower = msg;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.find("lock") != std::string::npos) {
      return FailedPrecondition(name + " directory '" + dir + "' is in use (is another " +
                                std::string(holder) + " running on it?): " + msg);
    }
    return FailedPrecondition("cannot open " + name + " in '" + dir + "': " + msg);
  }
  return std::unique_ptr<rocksdb::DB>(raw);
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  std::string msg = what + ": " + s.ToString();
  if (s.IsCorruption()) return DataLoss(std::move(msg));
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) {
    return Unavailable(std::move(msg));
  }
  return Internal(std::move(msg));
}

}  // namespace dtx
