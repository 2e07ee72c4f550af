// Key layout (one column family; every key starts with a one-letter space and '/'):
//   d/<gid>                  -> EncodeDef(def)
//   s/<gid>                  -> meta (final flag 1B, index time 8B, seq 8B) + EncodeState(state)
//   u/<gid>                  -> ""            unfinished index
//   c/<seq 8B BE><gid>       -> ""            creation order
//   f/<time 8B><gid>         -> seq 8B BE     finish-time index (time: sign-flipped BE)
//   m/seq                    -> 8B BE         next creation sequence number (a lower bound)
// The meta in front of the state lets Write() keep the indexes exact from one point read,
// without decoding JSON.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include "base/rocksdb.h"
#include "coord/store.h"
#include "coord/txn_codec.h"

namespace dtx::coord {
namespace {

constexpr std::string_view kDef = "d/";
constexpr std::string_view kState = "s/";
constexpr std::string_view kUnfinished = "u/";
constexpr std::string_view kCreated = "c/";
constexpr std::string_view kFinished = "f/";
constexpr std::string_view kMetaSeq = "m/seq";
constexpr size_t kMetaBytes = 17;

void AppendBE64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

uint64_t ReadBE64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}

// Flipping the sign bit makes big-endian byte order match signed order.
uint64_t OrderedTime(TimeMs t) { return static_cast<uint64_t>(t) ^ (uint64_t{1} << 63); }
TimeMs TimeFromOrdered(uint64_t v) { return static_cast<TimeMs>(v ^ (uint64_t{1} << 63)); }

std::string Key(std::string_view space, std::string_view gid) {
  std::string k;
  k.reserve(space.size() + gid.size());
  k.append(space).append(gid);
  return k;
}

std::string Key64(std::string_view space, uint64_t v, std::string_view gid = {}) {
  std::string k;
  k.reserve(space.size() + 8 + gid.size());
  k.append(space);
  AppendBE64(k, v);
  k.append(gid);
  return k;
}

std::string SeqValue(uint64_t seq) {
  std::string v;
  AppendBE64(v, seq);
  return v;
}

// The end of a key space: the key after every "x/..." key.
std::string SpaceEnd(std::string_view space) {
  std::string e(space);
  ++e.back();
  return e;
}

struct Meta {
  bool final = false;
  TimeMs index_time = 0;
  uint64_t seq = 0;
};

std::string EncodeMeta(const Meta& m) {
  std::string out;
  out.reserve(kMetaBytes);
  out.push_back(m.final ? 1 : 0);
  AppendBE64(out, OrderedTime(m.index_time));
  AppendBE64(out, m.seq);
  return out;
}

std::optional<Meta> DecodeMeta(std::string_view v) {
  if (v.size() < kMetaBytes || (v[0] != 0 && v[0] != 1)) return std::nullopt;
  return Meta{v[0] == 1, TimeFromOrdered(ReadBE64(v.substr(1))), ReadBE64(v.substr(9))};
}

class RocksStore final : public TxnStore {
 public:
  RocksStore(std::string dir, std::unique_ptr<rocksdb::DB> db, bool sync, uint64_t next_seq)
      : dir_(std::move(dir)), db_(std::move(db)), next_seq_(next_seq) {
    write_options_.sync = sync;
  }

  ~RocksStore() override { db_->Close().PermitUncheckedError(); }

  Status Write(const std::vector<TxnWrite>& batch) override {
    if (batch.empty()) return Status::Ok();
    std::shared_lock lock(purge_mu_);
    // Pass 1 validates the batch and works out each gid's net change, so that a gid written
    // several times in one batch costs one state record and one index move.
    struct Plan {
      bool existed = false;  // before this batch
      bool exists = false;   // after the writes planned so far
      Meta before;
      Meta after;
      const TxnWrite* last = nullptr;
      const TxnDef* created = nullptr;
    };
    std::unordered_map<std::string_view, Plan> plans;
    plans.reserve(batch.size());
    uint64_t max_seq = 0;
    rocksdb::PinnableSlice old_value;
    for (const TxnWrite& w : batch) {
      if (!w.def) return InvalidArgument("store write without def");
      const std::string& gid = w.def->gid;
      if (gid.empty()) return InvalidArgument("store write with empty gid");
      if (w.state.steps.size() != w.def->steps.size()) {
        return InvalidArgument("transaction '" + gid + "': state has " +
                               std::to_string(w.state.steps.size()) + " steps, def has " +
                               std::to_string(w.def->steps.size()));
      }
      auto [it, fresh] = plans.try_emplace(gid);
      Plan& p = it->second;
      if (fresh) {
        old_value.Reset();
        rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(),
                                     Key(kState, gid), &old_value);
        if (s.ok()) {
          auto m = DecodeMeta(ToView(old_value));
          if (!m) return DataLoss("transaction '" + gid + "': corrupt state meta");
          p.before = p.after = *m;
          p.existed = p.exists = true;
        } else if (!s.IsNotFound()) {
          return FromRocks(s, "store read in '" + dir_ + "'");
        }
      }
      if (w.create) {
        if (p.exists) return AlreadyExists("transaction '" + gid + "' already exists");
        p.after.seq = next_seq_.fetch_add(1);
        max_seq = std::max(max_seq, p.after.seq);
        p.created = w.def.get();
        p.exists = true;
      } else if (!p.exists) {
        return FailedPrecondition("update of unknown transaction '" + gid + "'");
      }
      p.after.final = IsFinal(w.state.status);
      p.after.index_time = p.after.final ? FinishedAt(w.state) : 0;
      p.last = &w;
    }
    rocksdb::WriteBatch wb;
    for (const auto& [gid, p] : plans) {
      if (p.created) {
        wb.Put(Key(kDef, gid), EncodeDef(*p.created));
        wb.Put(Key64(kCreated, p.after.seq, gid), rocksdb::Slice());
      }
      const bool same_index =
          p.existed && p.before.final == p.after.final && p.before.index_time == p.after.index_time;
      if (!same_index) {
        if (p.existed) {
          // u/ keys alternate Put and delete, which is what SingleDelete requires; it lets a
          // create and finish that meet in a memtable vanish at flush.
          if (p.before.final) {
            wb.Delete(Key64(kFinished, OrderedTime(p.before.index_time), gid));
          } else {
            wb.SingleDelete(Key(kUnfinished, gid));
          }
        }
        if (p.after.final) {
          wb.Put(Key64(kFinished, OrderedTime(p.after.index_time), gid), SeqValue(p.after.seq));
        } else {
          wb.Put(Key(kUnfinished, gid), rocksdb::Slice());
        }
      }
      wb.Put(Key(kState, gid), EncodeMeta(p.after) + EncodeState(p.last->state));
    }
    if (max_seq != 0) wb.Put(ToSlice(kMetaSeq), SeqValue(max_seq + 1));
    rocksdb::Status s = db_->Write(write_options_, &wb);
    if (!s.ok()) return FromRocks(s, "store write in '" + dir_ + "'");
    writes_.fetch_add(batch.size(), std::memory_order_relaxed);
    batches_.fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  }

  Result<std::optional<TxnRecord>> Load(const std::string& gid) override {
    return LoadAt(rocksdb::ReadOptions(), gid);
  }

  Result<std::vector<TxnRecord>> LoadUnfinished() override {
    rocksdb::ManagedSnapshot snap(db_.get());
    const std::string lo(kUnfinished), hi = SpaceEnd(kUnfinished);
    rocksdb::Slice lo_s(lo), hi_s(hi);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap.snapshot();
    ro.iterate_lower_bound = &lo_s;
    ro.iterate_upper_bound = &hi_s;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    std::vector<TxnRecord> out;
    for (it->Seek(lo_s); it->Valid(); it->Next()) {
      const std::string gid(ToView(it->key()).substr(kUnfinished.size()));
      auto rec = LoadAt(ro, gid);
      if (!rec.ok()) return rec.status();
      if (!rec->has_value()) {
        return DataLoss("store in '" + dir_ + "': unfinished index names missing transaction '" +
                        gid + "'");
      }
      out.push_back(std::move(**rec));
    }
    if (!it->status().ok()) return FromRocks(it->status(), "store scan in '" + dir_ + "'");
    return out;
  }

  Result<ScanPage> Scan(const std::string& position, size_t limit, const ScanFilter& f) override {
    auto bound = ScanUpperBound(position, limit);
    if (!bound.ok()) return bound.status();
    const uint64_t below = *bound;
    rocksdb::ManagedSnapshot snap(db_.get());
    const std::string lo(kCreated), hi = Key64(kCreated, below);
    rocksdb::Slice lo_s(lo), hi_s(hi);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap.snapshot();
    ro.iterate_lower_bound = &lo_s;
    ro.iterate_upper_bound = &hi_s;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    ScanPage page;
    size_t examined = 0;
    uint64_t last_seq = 0;
    for (it->SeekToLast(); it->Valid() && examined < kScanMaxExamined; it->Prev()) {
      ++examined;
      const std::string_view key = ToView(it->key());
      if (key.size() <= kCreated.size() + 8) {
        return DataLoss("store in '" + dir_ + "': malformed creation index key");
      }
      last_seq = ReadBE64(key.substr(kCreated.size()));
      const std::string gid(key.substr(kCreated.size() + 8));
      auto rec = LoadAt(ro, gid);
      if (!rec.ok()) return rec.status();
      if (!rec->has_value()) {
        return DataLoss("store in '" + dir_ + "': creation index names missing transaction '" +
                        gid + "'");
      }
      const TxnRecord& r = **rec;
      if (f.status && r.state.status != *f.status) continue;
      if (f.trans_type && r.def.type != *f.trans_type) continue;
      page.txns.push_back(std::move(**rec));
      if (page.txns.size() == limit) {
        it->Prev();
        break;
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "store scan in '" + dir_ + "'");
    if (it->Valid()) page.next_position = FormatScanPosition(last_seq);
    return page;
  }

  Result<size_t> PurgeFinished(TimeMs cutoff, size_t limit) override {
    std::unique_lock lock(purge_mu_);
    const std::string lo(kFinished), hi = Key64(kFinished, OrderedTime(cutoff));
    rocksdb::Slice lo_s(lo), hi_s(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lo_s;
    ro.iterate_upper_bound = &hi_s;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    rocksdb::WriteBatch wb;
    size_t removed = 0;
    for (it->Seek(lo_s); it->Valid() && removed < limit; it->Next()) {
      const std::string_view key = ToView(it->key());
      const std::string_view value = ToView(it->value());
      if (key.size() <= kFinished.size() + 8 || value.size() != 8) {
        return DataLoss("store in '" + dir_ + "': malformed finish index entry");
      }
      const std::string_view gid = key.substr(kFinished.size() + 8);
      wb.Delete(it->key());
      wb.Delete(Key(kDef, gid));
      wb.Delete(Key(kState, gid));
      wb.Delete(Key64(kCreated, ReadBE64(value), gid));
      ++removed;
    }
    if (!it->status().ok()) return FromRocks(it->status(), "store purge in '" + dir_ + "'");
    if (removed == 0) return removed;
    rocksdb::Status s = db_->Write(write_options_, &wb);
    if (!s.ok()) return FromRocks(s, "store purge in '" + dir_ + "'");
    return removed;
  }

  StoreStats stats() const override {
    return StoreStats{writes_.load(std::memory_order_relaxed),
                      batches_.load(std::memory_order_relaxed)};
  }

 private:
  Result<std::optional<TxnRecord>> LoadAt(const rocksdb::ReadOptions& ro, const std::string& gid) {
    const std::string dk = Key(kDef, gid), sk = Key(kState, gid);
    // MultiGet reads both keys from one implicit snapshot when ro has none.
    std::vector<std::string> values;
    std::vector<rocksdb::Status> st =
        db_->MultiGet(ro, {rocksdb::Slice(dk), rocksdb::Slice(sk)}, &values);
    for (const auto& s : st) {
      if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "store read in '" + dir_ + "'");
    }
    const bool has_def = st[0].ok(), has_state = st[1].ok();
    if (!has_def && !has_state) return std::optional<TxnRecord>();
    auto corrupt = [&](const std::string& why) {
      return DataLoss("store in '" + dir_ + "': transaction '" + gid + "': " + why);
    };
    if (!has_def) return corrupt("state without def");
    if (!has_state) return corrupt("def without state");
    auto def = DecodeDef(values[0]);
    if (!def.ok()) return corrupt(def.status().message());
    auto meta = DecodeMeta(values[1]);
    if (!meta) return corrupt("corrupt state meta");
    auto state = DecodeState(std::string_view(values[1]).substr(kMetaBytes));
    if (!state.ok()) return corrupt(state.status().message());
    if (def->gid != gid) return corrupt("def names gid '" + def->gid + "'");
    if (state->steps.size() != def->steps.size())
      return corrupt("state and def step counts differ");
    if (meta->final != IsFinal(state->status)) return corrupt("state meta disagrees with status");
    return std::optional<TxnRecord>(TxnRecord{std::move(*def), std::move(*state)});
  }

  const std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
  // Writers share it; PurgeFinished takes it exclusively, so it never races an update that
  // could re-create keys of a transaction it is removing.
  std::shared_mutex purge_mu_;
  std::atomic<uint64_t> next_seq_;
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> batches_{0};
};

// The next creation sequence number: above both the persisted counter and the newest
// creation index entry (concurrent batches may persist the counter out of order).
Result<uint64_t> RecoverNextSeq(rocksdb::DB& db, const std::string& dir) {
  uint64_t next = 1;
  std::string v;
  rocksdb::Status s = db.Get(rocksdb::ReadOptions(), ToSlice(kMetaSeq), &v);
  if (s.ok()) {
    if (v.size() != 8) return DataLoss("store in '" + dir + "': malformed sequence counter");
    next = std::max(next, ReadBE64(v));
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "store open in '" + dir + "'");
  }
  const std::string lo(kCreated), hi = SpaceEnd(kCreated);
  rocksdb::Slice lo_s(lo), hi_s(hi);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo_s;
  ro.iterate_upper_bound = &hi_s;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(ro));
  it->SeekToLast();
  if (it->Valid()) {
    const std::string_view key = ToView(it->key());
    if (key.size() <= kCreated.size() + 8) {
      return DataLoss("store in '" + dir + "': malformed creation index key");
    }
    next = std::max(next, ReadBE64(key.substr(kCreated.size())) + 1);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "store open in '" + dir + "'");
  return next;
}

}  // namespace

Result<std::unique_ptr<TxnStore>> OpenRocksStore(const std::string& dir, RocksStoreOptions o) {
  RocksDbOptions ro;
  ro.block_cache_bytes = o.block_cache_bytes;
  ro.write_buffer_bytes = o.write_buffer_bytes;
  // The u/ and f/ indexes behave like queues; files dense with deletions get compacted early
  // so iterating those indexes does not wade through tombstones.
  ro.compact_files_dense_with_deletions = true;
  auto opened = OpenRocksDb(dir, ro, "store", "dtxd");
  if (!opened.ok()) return opened.status();
  std::unique_ptr<rocksdb::DB> db = std::move(opened).value();
  auto next = RecoverNextSeq(*db, dir);
  if (!next.ok()) {
    db->Close().PermitUncheckedError();
    return next.status();
  }
  return std::unique_ptr<TxnStore>(std::make_unique<RocksStore>(dir, std::move(db), o.sync, *next));
}

}  // namespace dtx::coord
