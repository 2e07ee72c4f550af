// Wal: a segmented write-ahead log of indexed records on an injected Env, with group commit,
// crash recovery and small atomically replaced metadata files beside it.
//
// On disk, directory `dir` holds:
//   %016x.wal   segments, named by the index of their first record (hex, so names sort in index
//               order). Records in a segment are consecutive; segment k+1 starts right after the
//               last record of segment k. Only the last segment may be empty.
//   NAME.meta   metadata written by SaveMeta (hard state, snapshots): crc32c + bytes, replaced
//               atomically (Env::WriteFileAtomic).
//   LOCK        held while a Wal is open, so two processes never write the same log.
// A record is: masked crc32c (4 bytes LE) | payload length (4 LE) | type (1) | index (8 LE) |
// payload. The checksum covers length, type, index and payload.
//
// Recovery (Open) reads every segment in order:
//   - a corrupt or partial record at the end of the LAST segment (nothing valid after it) is a
//     torn write of unsynced data: it is dropped and the segment rewritten without it, so
//     appends continue cleanly;
//   - any other damage (a bad record in an earlier segment, a bad record followed by a valid
//     one, an index gap, a record whose index does not follow) is kDataLoss naming the file and
//     the byte offset.
// This assumes a crash loses or tears only data written after the last successful Sync, as
// MemEnv models (and as file systems that write back a file's pages in order behave).
//
// Durability: Append only buffers in memory. Sync (or AppendAndSync) writes the buffer and
// makes everything appended so far durable with one fsync of the segment (plus a directory sync
// when a segment was created). Rolling to a new segment syncs the full one first, so only the
// last segment can ever hold unsynced data. A failed write or sync poisons the Wal: every later
// call returns kFailedPrecondition (a failed fsync is not safely retryable); reopen to recover.
//
// Thread-safety: all methods may be called from any thread. Append, AppendNext, Sync,
// AppendAndSync and AppendNextAndSync run concurrently and share fsyncs (group commit: the first
// waiter writes and syncs every buffered record while later callers wait for it). Truncate,
// ReleaseBefore, ReadFrom and Reset are exclusive: they wait for a running sync and block the
// others while they run. Appends that race with Truncate are ordered by the internal lock, not
// by the caller's intent: callers that need an order must impose it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace dtx::wal {

struct WalOptions {
  // A new segment starts once the current one holds at least this many bytes. Must be > 0.
  uint64_t segment_bytes = 64ull << 20;
  // Largest accepted payload; larger appends are kInvalidArgument and larger lengths on disk
  // are corruption. Must be in (0, 1 GiB].
  uint64_t max_record_bytes = 64ull << 20;
  // The index a brand-new (no records ever) log expects from AppendNext. Must be > 0.
  uint64_t initial_index = 1;
};

// An input record: the payload is only borrowed for the call.
struct RecordView {
  uint64_t index = 0;
  std::string_view payload;
};

struct Record {
  uint64_t index = 0;
  std::string payload;
  bool operator==(const Record&) const = default;
};

// Computes CRC-32C (Castagnoli), continuing from `crc` (0 to start).
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

class Wal {
 public:
  // Opens (creating if needed) the log in dir and recovers it as described above. Errors:
  // kInvalidArgument for bad options or a null env, kFailedPrecondition if another Wal holds
  // the directory, kDataLoss for corruption, or the Env's error.
  static Result<std::unique_ptr<Wal>> Open(Env* env, const std::string& dir, WalOptions options);

  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Buffers records (not yet durable). Each index must be the previous one plus one; the first
  // record of an empty log may carry any index > 0. All-or-nothing: on error nothing is
  // buffered. Errors: kInvalidArgument (index 0, non-consecutive index, payload too large),
  // kFailedPrecondition (poisoned).
  Status Append(std::span<const RecordView> records);
  Status Append(uint64_t index, std::string_view payload) {
    RecordView r{index, payload};
    return Append(std::span<const RecordView>(&r, 1));
  }
  // Buffers one record with the next index (see next_index()) and returns that index.
  Result<uint64_t> AppendNext(std::string_view payload);

  // Makes every record appended before this call durable.
  Status Sync();
  // Append + Sync, sharing the fsync with concurrent callers.
  Status AppendAndSync(std::span<const RecordView> records);
  // AppendNext + Sync, sharing the fsync with concurrent callers; returns the record's index.
  Result<uint64_t> AppendNextAndSync(std::string_view payload);

  // Durably drops every record with index >= from_index (Raft log conflicts). Also makes the
  // kept records durable. REQUIRES for a non-empty log: first_index() <= from_index <=
  // last_index() + 1 (else kInvalidArgument); from_index == last_index() + 1, or an empty log,
  // is a no-op. Costs a rewrite of the segment holding from_index.
  Status Truncate(uint64_t from_index);

  // Removes whole segments whose records all have index < index (after a snapshot covering
  // them), with a directory sync. Never removes the last segment, so records >= index stay and
  // some records < index may stay too. index 0 is kInvalidArgument.
  Status ReleaseBefore(uint64_t index);

  // Durably drops every record, after which the log is empty and next_index() is next_index
  // (e.g. after installing a snapshot that is ahead of the log). next_index 0 is
  // kInvalidArgument. Segments are removed last to first, so a crash part-way leaves a prefix
  // of the old log (or an empty one): the caller compares the log with its snapshot on restart.
  Status Reset(uint64_t next_index);

  // Every record with index >= from_index, in order (makes buffered records durable first).
  // Errors: kInvalidArgument for from_index 0, kNotFound if from_index < first_index() (those
  // records were released), kDataLoss if a segment is damaged.
  Result<std::vector<Record>> ReadFrom(uint64_t from_index);

  // Index of the first / last record, buffered ones included; 0 when the log is empty.
  uint64_t first_index() const;
  uint64_t last_index() const;
  // The index AppendNext would use: last_index() + 1, or for an empty log the index it was
  // emptied at (Truncate/Reset), or options.initial_index for a new log.
  uint64_t next_index() const;
  // Number of segment files on disk.
  size_t segment_count() const;

  // Stores bytes under name (letters, digits, '_', '-'; at most 64 characters) so that a crash
  // leaves the old or the new value, never a mix. Durable when it returns OK. Concurrent calls
  // are serialized. Independent of the log's records and of its poisoned state.
  Status SaveMeta(std::string_view name, std::string_view bytes);
  // The bytes last saved under name: kNotFound if none, kDataLoss if the file is corrupt.
  Result<std::string> LoadMeta(std::string_view name);

 private:
  struct Segment {
    uint64_t first = 0;  // from the file name
    uint64_t count = 0;  // records in the file
    uint64_t bytes = 0;  // file size
  };
  struct Pending {
    std::string bytes;
    // (index, end offset in bytes) of each buffered record.
    std::vector<std::pair<uint64_t, size_t>> records;
  };

  Wal(Env* env, std::string dir, WalOptions options);

  std::string SegmentPath(uint64_t first) const;
  Status Recover();
  Status AppendLocked(std::span<const RecordView> records);
  Status SyncTo(std::unique_lock<std::mutex>& lock, uint64_t target);
  void WaitIdle(std::unique_lock<std::mutex>& lock);
  Status WriteAndSync(const Pending& batch);
  Status StartSegment(uint64_t first);
  Status DrainLocked();
  Status TruncateLocked(uint64_t from_index);
  Status CheckUsable() const;
  Status Poison(Status st);

  Env* const env_;
  const std::string dir_;
  const WalOptions options_;
  std::unique_ptr<FileLock> dir_lock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Logical view, buffered records included. Guarded by mu_.
  uint64_t first_index_ = 0;
  uint64_t last_index_ = 0;
  uint64_t empty_next_ = 0;  // next_index() while empty
  Pending pending_;
  uint64_t append_seq_ = 0;  // Append calls so far
  uint64_t synced_seq_ = 0;  // Append calls made durable
  bool io_busy_ = false;     // a sync leader owns the files below
  Status poison_;

  // Files: owned by the sync leader (io_busy_) or by an exclusive call holding mu_ with
  // io_busy_ false.
  std::vector<Segment> segments_;
  std::unique_ptr<WritableFile> file_;    // the last segment, open for appending
  bool dir_dirty_ = false;                // a segment was created since the last SyncDir
  std::atomic<size_t> segment_count_{0};  // mirror of segments_.size()

  std::mutex meta_mu_;
};

}  // namespace dtx::wal
