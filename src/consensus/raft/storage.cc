#include "consensus/raft/storage.h"

#include <string>

namespace dtx::raft {

MemoryStorage::MemoryStorage() { entries_.push_back(Entry{}); }

Result<uint64_t> MemoryStorage::Term(uint64_t i) const {
  if (i >= entries_.size()) {
    return NotFound("entry " + std::to_string(i) + " is beyond the last stored index " +
                    std::to_string(LastIndex()));
  }
  return entries_[i].term;
}

Result<std::vector<Entry>> MemoryStorage::Entries(uint64_t lo, uint64_t hi,
                                                  uint64_t max_bytes) const {
  if (lo < FirstIndex() || lo > hi || hi > LastIndex() + 1) {
    return InvalidArgument("entries [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           ") outside the stored range [1, " + std::to_string(LastIndex() + 1) +
                           ")");
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    bytes += EntrySize(entries_[i]);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(entries_[i]);
  }
  return out;
}

Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return Status::Ok();
  const uint64_t first = entries.front().index;
  if (first < 1 || first > LastIndex() + 1) {
    return InvalidArgument("append at index " + std::to_string(first) + " leaves a gap after " +
                           std::to_string(LastIndex()));
  }
  for (size_t k = 1; k < entries.size(); ++k) {
    if (entries[k].index != first + k) {
      return InvalidArgument("appended entries are not consecutive at index " +
                             std::to_string(entries[k].index));
    }
  }
  entries_.resize(first);
  entries_.insert(entries_.end(), entries.begin(), entries.end());
  return Status::Ok();
}

}  // namespace dtx::raft
