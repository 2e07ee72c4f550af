#include "consensus/raft/wal_storage.h"

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <utility>

#include "base/coding.h"

namespace dtx::raft {
namespace {

constexpr const char* kHardStateMeta = "hardstate";

std::string EncodeHardState(const HardState& hs) {
  std::string m;
  PutU64(m, hs.term);
  PutU64(m, hs.vote);
  PutU64(m, hs.commit);
  return m;
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
  if (!r.ok() || type != static_cast<uint8_t>(EntryType::kNormal)) {
    return DataLoss(fmt::format("raft storage: malformed entry {}", index));
  }
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
  Result<std::string> meta = s->wal_->LoadMeta(kHardStateMeta);
  if (meta.ok()) {
    ByteReader r(*meta);
    s->hs_.term = r.U64();
    s->hs_.vote = r.U64();
    s->hs_.commit = r.U64();
    if (!r.done()) return DataLoss("raft storage: malformed hard state in " + options.dir);
    s->saved_hs_ = s->hs_;
  } else if (meta.status().code() != StatusCode::kNotFound) {
    return meta.status();
  }
  Result<std::vector<wal::Record>> recs = s->wal_->ReadFrom(1);
  if (!recs.ok()) return recs.status();
  s->entries_.reserve(recs->size());
  for (wal::Record& rec : *recs) {
    if (rec.index != s->entries_.size() + 1) {
      return DataLoss(fmt::format("raft storage: record {} where {} was expected", rec.index,
                                  s->entries_.size() + 1));
    }
    Result<Entry> e = DecodeEntryPayload(rec.index, rec.payload);
    if (!e.ok()) return e.status();
    s->entries_.push_back(std::move(e).value());
  }
  if (!options.sync) s->hs_.commit = std::min<uint64_t>(s->hs_.commit, s->entries_.size());
  return s;
}

Result<uint64_t> WalStorage::Term(uint64_t i) const {
  if (i == 0) return uint64_t{0};
  if (i > entries_.size()) return NotFound(fmt::format("raft storage: no entry {}", i));
  return entries_[i - 1].term;
}

Result<std::vector<Entry>> WalStorage::Entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const {
  if (lo < 1 || lo > hi || hi > entries_.size() + 1) {
    return InvalidArgument(
        fmt::format("raft storage: entries [{}, {}) outside [1, {}]", lo, hi, entries_.size() + 1));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - 1];
    if (!out.empty() && bytes + EntrySize(e) > max_bytes) break;
    bytes += EntrySize(e);
    out.push_back(e);
  }
  return out;
}

Status WalStorage::Persist(const raft::Ready& rd) {
  if (!rd.entries.empty()) {
    const uint64_t first = rd.entries.front().index;
    if (first == 0 || first > entries_.size() + 1) {
      return Internal(
          fmt::format("raft storage: append at {} leaves a gap after {}", first, entries_.size()));
    }
    if (first <= entries_.size()) {
      DTX_RETURN_IF_ERROR(wal_->Truncate(first));
      entries_.resize(first - 1);
    }
    std::vector<std::string> payloads;
    payloads.reserve(rd.entries.size());
    std::vector<wal::RecordView> views;
    views.reserve(rd.entries.size());
    for (const Entry& e : rd.entries) {
      payloads.push_back(EncodeEntryPayload(e));
      views.push_back(wal::RecordView{e.index, payloads.back()});
    }
    DTX_RETURN_IF_ERROR(wal_->Append(std::span<const wal::RecordView>(views)));
    if (rd.must_sync && sync_) DTX_RETURN_IF_ERROR(wal_->Sync());
    entries_.insert(entries_.end(), rd.entries.begin(), rd.entries.end());
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
