#include "consensus/raft/wal_storage.h"

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <utility>

#include "base/coding.h"

namespace dtx::raft {
namespace {

constexpr const char* kHardStateMeta = "hardstate";
constexpr const char* kSnapshotMeta = "snapshot";

std::string EncodeHardState(const HardState& hs) {
  std::string m;
  PutU64(m, hs.term);
  PutU64(m, hs.vote);
  PutU64(m, hs.commit);
  return m;
}

// The term's top bit marks a file that records a configuration (older files carry none; terms
// never reach 2^63).
constexpr uint64_t kConfFlag = uint64_t{1} << 63;

std::string EncodeSnapshot(const Snapshot& snap) {
  const ConfState& cs = snap.metadata.conf_state;
  std::string m;
  m.reserve(32 + 8 * (cs.voters.size() + cs.learners.size()) + snap.data.size());
  PutU64(m, snap.metadata.index);
  PutU64(m, snap.metadata.term | kConfFlag);
  for (const std::vector<NodeId>* ids : {&cs.voters, &cs.learners}) {
    PutU64(m, ids->size());
    for (NodeId id : *ids) PutU64(m, id);
  }
  m.append(snap.data);
  return m;
}

Result<Snapshot> DecodeSnapshot(std::string_view bytes) {
  ByteReader r(bytes);
  Snapshot snap;
  snap.metadata.index = r.U64();
  const uint64_t term = r.U64();
  snap.metadata.term = term & ~kConfFlag;
  if ((term & kConfFlag) != 0) {
    ConfState& cs = snap.metadata.conf_state;
    for (std::vector<NodeId>* ids : {&cs.voters, &cs.learners}) {
      const uint64_t n = r.U64();
      if (!r.ok() || n > bytes.size() / 8) return DataLoss("raft storage: malformed snapshot file");
      for (uint64_t i = 0; i < n && r.ok(); ++i) ids->push_back(r.U64());
    }
  }
  if (!r.ok() || snap.metadata.index == 0 || snap.metadata.term == 0) {
    return DataLoss("raft storage: malformed snapshot file");
  }
  snap.data = std::string(r.Rest());
  return snap;
}

}  // namespace

std::string EncodeEntryPayload(const Entry& e) {
  std::string p;
  p.reserve(9 + e.data.size());
  PutU64(p, e.term);
  PutU8(p, static_cast<uint8_t>(e.type));
  p.append(e.data);
  return p;
}

Result<Entry> DecodeEntryPayload(uint64_t index, std::string_view payload) {
  ByteReader r(payload);
  Entry e;
  e.index = index;
  e.term = r.U64();
  const uint8_t type = r.U8();
  if (!r.ok() || (type != static_cast<uint8_t>(EntryType::kNormal) &&
                  type != static_cast<uint8_t>(EntryType::kConfChange))) {
    return DataLoss(fmt::format("raft storage: malformed entry {}", index));
  }
  e.type = static_cast<EntryType>(type);
  e.data = std::string(r.Rest());
  return e;
}

WalStorage::WalStorage(std::unique_ptr<wal::Wal> wal, bool sync)
    : wal_(std::move(wal)), sync_(sync) {}

Result<std::unique_ptr<WalStorage>> WalStorage::Open(Env* env, const WalStorageOptions& options) {
  if (options.dir.empty()) return InvalidArgument("raft storage: no directory given");
  wal::WalOptions wo;
  wo.segment_bytes = options.segment_bytes;
  Result<std::unique_ptr<wal::Wal>> w = wal::Wal::Open(env, options.dir, wo);
  if (!w.ok()) return w.status();
  std::unique_ptr<WalStorage> s(new WalStorage(std::move(w).value(), options.sync));
  DTX_RETURN_IF_ERROR(s->Recover(options.dir));
  return s;
}

Status WalStorage::Recover(const std::string& dir) {
  Result<std::string> meta = wal_->LoadMeta(kHardStateMeta);
  if (meta.ok()) {
    ByteReader r(*meta);
    hs_.term = r.U64();
    hs_.vote = r.U64();
    hs_.commit = r.U64();
    if (!r.done()) return DataLoss("raft storage: malformed hard state in " + dir);
    saved_hs_ = hs_;
  } else if (meta.status().code() != StatusCode::kNotFound) {
    return meta.status();
  }
  Result<std::string> snap_bytes = wal_->LoadMeta(kSnapshotMeta);
  if (snap_bytes.ok()) {
    Result<raft::Snapshot> snap = DecodeSnapshot(*snap_bytes);
    if (!snap.ok()) return DataLoss(snap.status().message() + " in " + dir);
    snap_ = snap->metadata;
  } else if (snap_bytes.status().code() != StatusCode::kNotFound) {
    return snap_bytes.status();
  }
  const uint64_t first = wal_->first_index();
  if (first == 0) {
    // An empty log (new, or reset after a restored snapshot).
  } else if (first > snap_.index + 1) {
    return DataLoss(
        fmt::format("raft storage: the log in {} starts at {}, after a gap behind the "
                    "snapshot at {}",
                    dir, first, snap_.index));
  } else {
    Result<std::vector<wal::Record>> recs = wal_->ReadFrom(first);
    if (!recs.ok()) return recs.status();
    bool keep = true;
    if (first <= snap_.index) {
      // The record at the snapshot's index tells whether what follows extends the snapshot (a
      // crash during compaction) or is the superseded log of a restore that crashed.
      const uint64_t at = snap_.index - first;
      keep = false;
      if (at < recs->size()) {
        Result<Entry> e = DecodeEntryPayload((*recs)[at].index, (*recs)[at].payload);
        if (!e.ok()) return e.status();
        keep = e->term == snap_.term;
      }
    }
    if (keep) {
      for (wal::Record& rec : *recs) {
        if (rec.index <= snap_.index) continue;
        Result<Entry> e = DecodeEntryPayload(rec.index, rec.payload);
        if (!e.ok()) return e.status();
        entries_.push_back(std::move(e).value());
      }
    } else {
      DTX_RETURN_IF_ERROR(wal_->Reset(snap_.index + 1));
    }
  }
  if (!sync_) hs_.commit = std::min<uint64_t>(hs_.commit, LastIndex());
  return Status::Ok();
}

Result<uint64_t> WalStorage::Term(uint64_t i) const {
  if (i == snap_.index) return snap_.term;
  if (i < snap_.index) {
    return NotFound(
        fmt::format("raft storage: entry {} is compacted (snapshot at {})", i, snap_.index));
  }
  if (i > LastIndex()) return NotFound(fmt::format("raft storage: no entry {}", i));
  return entries_[i - snap_.index - 1].term;
}

Result<std::vector<Entry>> WalStorage::Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const {
  if (lo < FirstIndex() || lo > hi || hi > LastIndex() + 1) {
    return InvalidArgument(fmt::format("raft storage: entries [{}, {}) outside [{}, {}]", lo, hi,
                                       FirstIndex(), LastIndex() + 1));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - FirstIndex()];
    if (!out.empty() && bytes + EntrySize(e) > max_bytes) break;
    bytes += EntrySize(e);
    out.push_back(e);
  }
  return out;
}

Result<Snapshot> WalStorage::Snapshot() const {
  if (snap_.index == 0) return raft::Snapshot{};
  Result<std::string> bytes = wal_->LoadMeta(kSnapshotMeta);
  if (!bytes.ok()) return bytes.status();
  Result<raft::Snapshot> snap = DecodeSnapshot(*bytes);
  if (!snap.ok()) return snap.status();
  if (snap->metadata != snap_) {
    return DataLoss(fmt::format("raft storage: the snapshot file holds {}@{}, expected {}@{}",
                                snap->metadata.index, snap->metadata.term, snap_.index,
                                snap_.term));
  }
  return snap;
}

Status WalStorage::SaveSnapshot(const raft::Snapshot& snap) {
  return wal_->SaveMeta(kSnapshotMeta, EncodeSnapshot(snap));
}

Status WalStorage::SaveSnapshotAndCompact(uint64_t index, std::string data, ConfState conf_state) {
  if (index <= snap_.index) {
    return FailedPrecondition(fmt::format(
        "raft storage: snapshot at {} is not newer than the stored one at {}", index, snap_.index));
  }
  if (index > LastIndex()) {
    return InvalidArgument(fmt::format("raft storage: snapshot at {} is beyond the last entry {}",
                                       index, LastIndex()));
  }
  if (index > hs_.commit) {
    return FailedPrecondition(fmt::format(
        "raft storage: snapshot at {} is beyond the commit index {}", index, hs_.commit));
  }
  raft::Snapshot snap;
  snap.metadata =
      SnapshotMetadata{index, entries_[index - FirstIndex()].term, std::move(conf_state)};
  snap.data = std::move(data);
  DTX_RETURN_IF_ERROR(SaveSnapshot(snap));
  entries_.erase(entries_.begin(),
                 entries_.begin() + static_cast<std::ptrdiff_t>(index - snap_.index));
  snap_ = snap.metadata;
  return wal_->ReleaseBefore(index + 1);
}

Status WalStorage::Persist(const raft::Ready& rd) {
  if (rd.snapshot) {
    const SnapshotMetadata& md = rd.snapshot->metadata;
    if (md.index <= snap_.index || md.term == 0) {
      return Internal(
          fmt::format("raft storage: snapshot {}@{} does not follow the stored one at {}", md.index,
                      md.term, snap_.index));
    }
    // The snapshot first: a crash before the reset leaves it with the superseded log, which
    // Open discards; the other order could leave neither.
    DTX_RETURN_IF_ERROR(SaveSnapshot(*rd.snapshot));
    snap_ = md;
    entries_.clear();
    DTX_RETURN_IF_ERROR(wal_->Reset(md.index + 1));
  }
  if (!rd.entries.empty()) {
    size_t skip = 0;
    while (skip < rd.entries.size() && rd.entries[skip].index <= snap_.index) ++skip;
    const uint64_t first = skip < rd.entries.size() ? rd.entries[skip].index : 0;
    if (first != 0 && first > LastIndex() + 1) {
      return Internal(
          fmt::format("raft storage: append at {} leaves a gap after {}", first, LastIndex()));
    }
    if (first != 0) {
      if (first <= LastIndex()) {
        DTX_RETURN_IF_ERROR(wal_->Truncate(first));
        entries_.resize(first - FirstIndex());
      }
      std::vector<std::string> payloads;
      payloads.reserve(rd.entries.size() - skip);
      std::vector<wal::RecordView> views;
      views.reserve(rd.entries.size() - skip);
      for (size_t k = skip; k < rd.entries.size(); ++k) {
        payloads.push_back(EncodeEntryPayload(rd.entries[k]));
        views.push_back(wal::RecordView{rd.entries[k].index, payloads.back()});
      }
      DTX_RETURN_IF_ERROR(wal_->Append(std::span<const wal::RecordView>(views)));
      if (rd.must_sync && sync_) DTX_RETURN_IF_ERROR(wal_->Sync());
      entries_.insert(entries_.end(), rd.entries.begin() + static_cast<std::ptrdiff_t>(skip),
                      rd.entries.end());
    }
  }
  if (rd.hard_state) {
    hs_ = *rd.hard_state;
    // The vote and term must be durable before any message that depends on them is sent.
    if (hs_.term != saved_hs_.term || hs_.vote != saved_hs_.vote) {
      DTX_RETURN_IF_ERROR(wal_->SaveMeta(kHardStateMeta, EncodeHardState(hs_)));
      saved_hs_ = hs_;
    }
  }
  return Status::Ok();
}

}  // namespace dtx::raft
