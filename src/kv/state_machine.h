// dtxkv's replicated state machine: a map from keys to values changed only by commands applied
// in log order. Commands are encoded into Raft entries by the node that proposes them and
// applied by every node; the same sequence of commands gives the same map and the same results
// on every node.
//
// The map lives in a RocksDB database (its own directory), so memory stays bounded by RocksDB's
// memtables and block cache whatever the data size. Together with the data, every committed
// batch records the index of the last entry applied, its key count and payload bytes.
//
// Durability: batches are written without RocksDB's own WAL and without a sync - the Raft log
// holds every applied entry, and the node re-applies the log after the stored applied index on
// restart. RocksDB persists whole memtables in order, so after a crash the database holds a
// prefix of the committed batches: a consistent state at the stored applied index. Persist()
// makes everything committed so far durable; the node calls it before it drops log entries
// (compaction), so the log always reaches back to the stored applied index.
//
// Thread-safety: Apply/Skip/Commit/Get/Pin/Restore from one thread (the node's io thread);
// Persist and Serialize may run concurrently with them on another thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace dtx::kv {

// Keys: 1..kMaxKeyBytes bytes, any byte but NUL. Values: up to kMaxValueBytes bytes.
inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxValueBytes = 1 << 20;

// kInvalidArgument naming the problem.
Status ValidateKey(std::string_view key);
Status ValidateValue(std::string_view value);

enum class CommandType : uint8_t { kPut = 1, kDelete = 2, kCas = 3 };

struct Command {
  CommandType type = CommandType::kPut;
  std::string key;
  std::string value;                    // kPut, kCas: the new value
  std::optional<std::string> expected;  // kCas: the value required; nullopt = key absent

  bool operator==(const Command&) const = default;
};

std::string EncodeCommand(const Command& c);
// kDataLoss when the bytes are not a command EncodeCommand produced (a replicated entry that
// does not decode means the log is corrupt).
Result<Command> DecodeCommand(std::string_view bytes);

// What applying a command did.
struct ApplyResult {
  bool existed = false;                // kPut/kDelete: the key had a value before
  bool swapped = false;                // kCas: the swap happened
  std::optional<std::string> current;  // kCas that did not swap: the value found (nullopt: absent)
};

// The Raft snapshot data of a local compaction: the state itself is in the database (persisted
// up to at least `index`), so the snapshot records only that. Snapshots sent to other nodes carry
// a full image (StateMachine::Serialize) instead.
std::string LocalSnapshotMarker(uint64_t index);
bool IsLocalSnapshotMarker(std::string_view data);

struct StateOptions {
  size_t block_cache_bytes = 16 << 20;
  size_t write_buffer_bytes = 32 << 20;  // per memtable, at most two
};

class StateMachine {
 public:
  // Opens (or creates) the state in `dir`. kFailedPrecondition if another process holds it or it
  // cannot be created; kDataLoss if it is corrupt.
  static Result<std::unique_ptr<StateMachine>> Open(const std::string& dir,
                                                    const StateOptions& options = {});
  ~StateMachine();
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // The index of the last entry applied (committed or pending); 0 for a new state.
  uint64_t applied() const { return applied_; }
  // Keys and payload bytes (keys + values) of the state including the pending batch.
  uint64_t size() const { return keys_; }
  uint64_t bytes() const { return bytes_; }

  // Applies c as the entry at `index` into the pending batch: later Apply calls see its effect at
  // once, Get after Commit. REQUIRES index > applied(). I/O errors as kUnavailable/kDataLoss.
  Result<ApplyResult> Apply(uint64_t index, const Command& c);
  // Records that the entry at `index` (one without a command) was applied. REQUIRES index >
  // applied().
  void Skip(uint64_t index);
  // Writes the pending batch (see Durability above). No-op when nothing is pending.
  Status Commit();

  // The committed value of key, nullopt when absent.
  Result<std::optional<std::string>> Get(std::string_view key) const;

  // A consistent read-only view of the committed state at its applied index, for snapshots. It
  // keeps the database open and pins the versions it sees until it is released.
  class View {
   public:
    virtual ~View() = default;
    virtual uint64_t index() const = 0;
  };
  // REQUIRES: nothing pending (Commit first).
  std::shared_ptr<const View> Pin() const;

  // Makes every batch committed before the call durable (flushes the memtables, synced). Safe to
  // call from another thread while Apply/Commit go on.
  Status Persist();
  // The image of the state a view sees (the format Restore reads). Safe to call from another
  // thread.
  Result<std::string> Serialize(const View& view) const;
  // Replaces the whole state with an image (a leader's snapshot) taken at `index`, durably:
  // when it returns OK the new state and applied() == index are on disk. kDataLoss (and nothing
  // changed) when the bytes are not an image Serialize produced. A crash midway leaves the
  // stored applied index at its old value, so the node restores again from the Raft snapshot.
  // A pending batch is discarded.
  Status Restore(std::string_view image, uint64_t index);

  class Impl;

 private:
  explicit StateMachine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  uint64_t applied_ = 0;
  uint64_t keys_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace dtx::kv
