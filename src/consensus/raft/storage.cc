#include "consensus/raft/storage.h"

#include <string>
#include <utility>

namespace dtx::raft {

MemoryStorage::MemoryStorage() { entries_.push_back(Entry{}); }

Result<uint64_t> MemoryStorage::Term(uint64_t i) const {
  if (i < offset()) {
    return NotFound("entry " + std::to_string(i) + " is compacted (first index " +
                    std::to_string(FirstIndex()) + ")");
  }
  if (i > LastIndex()) {
    return NotFound("entry " + std::to_string(i) + " is beyond the last stored index " +
                    std::to_string(LastIndex()));
  }
  return entries_[i - offset()].term;
}

Result<std::vector<Entry>> MemoryStorage::Entries(uint64_t lo, uint64_t hi,
                                                  uint64_t max_bytes) const {
  if (lo < FirstIndex() || lo > hi || hi > LastIndex() + 1) {
    return InvalidArgument("entries [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           ") outside the stored range [" + std::to_string(FirstIndex()) + ", " +
                           std::to_string(LastIndex() + 1) + ")");
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - offset()];
    bytes += EntrySize(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return Status::Ok();
  for (size_t k = 1; k < entries.size(); ++k) {
    if (entries[k].index != entries.front().index + k) {
      return InvalidArgument("appended entries are not consecutive at index " +
                             std::to_string(entries[k].index));
    }
  }
  size_t skip = 0;
  while (skip < entries.size() && entries[skip].index <= offset()) ++skip;
  if (skip == entries.size()) return Status::Ok();
  const uint64_t first = entries[skip].index;
  if (first > LastIndex() + 1) {
    return InvalidArgument("append at index " + std::to_string(first) + " leaves a gap after " +
                           std::to_string(LastIndex()));
  }
  entries_.resize(first - offset());
  entries_.insert(entries_.end(), entries.begin() + static_cast<std::ptrdiff_t>(skip),
                  entries.end());
  return Status::Ok();
}

Status MemoryStorage::ApplySnapshot(raft::Snapshot snap) {
  if (snap.metadata.index <= snapshot_.metadata.index) {
    return FailedPrecondition("snapshot at " + std::to_string(snap.metadata.index) +
                              " is not newer than the stored one at " +
                              std::to_string(snapshot_.metadata.index));
  }
  entries_.assign(1, Entry{snap.metadata.term, snap.metadata.index, EntryType::kNormal, {}});
  snapshot_ = std::move(snap);
  return Status::Ok();
}

Status MemoryStorage::CreateSnapshot(uint64_t index, std::string data, ConfState conf_state) {
  if (index <= snapshot_.metadata.index) {
    return FailedPrecondition("snapshot at " + std::to_string(index) +
                              " is not newer than the stored one at " +
                              std::to_string(snapshot_.metadata.index));
  }
  if (index > LastIndex()) {
    return InvalidArgument("snapshot at " + std::to_string(index) + " is beyond the last index " +
                           std::to_string(LastIndex()));
  }
  snapshot_.metadata =
      SnapshotMetadata{index, entries_[index - offset()].term, std::move(conf_state)};
  snapshot_.data = std::move(data);
  return Status::Ok();
}

Status MemoryStorage::Compact(uint64_t index) {
  if (index < offset()) {
    return InvalidArgument("compaction at " + std::to_string(index) +
                           " is below the compacted index " + std::to_string(offset()));
  }
  if (index > LastIndex()) {
    return InvalidArgument("compaction at " + std::to_string(index) + " is beyond the last index " +
                           std::to_string(LastIndex()));
  }
  if (index > snapshot_.metadata.index) {
    return FailedPrecondition("compaction at " + std::to_string(index) +
                              " is beyond the snapshot at " +
                              std::to_string(snapshot_.metadata.index) + " (create one first)");
  }
  const size_t k = index - offset();
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(k));
  entries_[0].data.clear();
  return Status::Ok();
}

}  // namespace dtx::raft
