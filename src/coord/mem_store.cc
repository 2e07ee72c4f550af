#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "coord/store.h"
#include "coord/txn_codec.h"

namespace dtx::coord {
namespace {

class MemStore final : public TxnStore {
 public:
  Status Write(const std::vector<TxnWrite>& batch) override {
    if (batch.empty()) return Status::Ok();
    std::lock_guard lock(mu_);
    // Validate the whole batch against a scratch view first so that a bad write in the middle
    // leaves nothing applied.
    std::unordered_map<std::string, bool> exists;
    for (const TxnWrite& w : batch) {
      if (!w.def) return InvalidArgument("store write without def");
      const std::string& gid = w.def->gid;
      if (gid.empty()) return InvalidArgument("store write with empty gid");
      auto it = exists.find(gid);
      const bool known = it != exists.end() ? it->second : recs_.count(gid) > 0;
      if (w.create && known) return AlreadyExists("transaction '" + gid + "' already exists");
      if (!w.create && !known) {
        return FailedPrecondition("update of unknown transaction '" + gid + "'");
      }
      const size_t def_steps = w.def->steps.size();
      if (w.state.steps.size() != def_steps) {
        return InvalidArgument("transaction '" + gid + "': state has " +
                               std::to_string(w.state.steps.size()) + " steps, def has " +
                               std::to_string(def_steps));
      }
      exists[gid] = true;
    }
    for (const TxnWrite& w : batch) Apply(w);
    stats_.writes += batch.size();
    ++stats_.batches;
    return Status::Ok();
  }

  Result<std::optional<TxnRecord>> Load(const std::string& gid) override {
    std::lock_guard lock(mu_);
    auto it = recs_.find(gid);
    if (it == recs_.end()) return std::optional<TxnRecord>();
    return std::optional<TxnRecord>(TxnRecord{it->second.def, it->second.state});
  }

  Result<std::vector<TxnRecord>> LoadUnfinished() override {
    std::lock_guard lock(mu_);
    std::vector<TxnRecord> out;
    out.reserve(unfinished_.size());
    for (const std::string& gid : unfinished_) {
      const Rec& r = recs_.at(gid);
      out.push_back(TxnRecord{r.def, r.state});
    }
    return out;
  }

  Result<ScanPage> Scan(const std::string& position, size_t limit, const ScanFilter& f) override {
    auto bound = ScanUpperBound(position, limit);
    if (!bound.ok()) return bound.status();
    const uint64_t below = *bound;
    std::lock_guard lock(mu_);
    ScanPage page;
    size_t examined = 0;
    uint64_t last_seq = 0;
    // Reverse iteration over sequence numbers < below.
    auto it = std::make_reverse_iterator(by_seq_.lower_bound(below));
    for (; it != by_seq_.rend() && examined < kScanMaxExamined; ++it) {
      ++examined;
      last_seq = it->first;
      const Rec& r = recs_.at(it->second);
      if (f.status && r.state.status != *f.status) continue;
      if (f.trans_type && r.def.type != *f.trans_type) continue;
      page.txns.push_back(TxnRecord{r.def, r.state});
      if (page.txns.size() == limit) {
        ++it;
        break;
      }
    }
    if (it != by_seq_.rend()) page.next_position = FormatScanPosition(last_seq);
    return page;
  }

  Result<size_t> PurgeFinished(TimeMs cutoff, size_t limit) override {
    std::lock_guard lock(mu_);
    size_t removed = 0;
    while (removed < limit && !finished_.empty() && finished_.begin()->first < cutoff) {
      const std::string gid = finished_.begin()->second;
      finished_.erase(finished_.begin());
      auto it = recs_.find(gid);
      by_seq_.erase(it->second.seq);
      recs_.erase(it);
      ++removed;
    }
    return removed;
  }

  StoreStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  struct Rec {
    TxnDef def;
    TxnState state;
    uint64_t seq = 0;
  };

  // REQUIRES: mu_ held, `w` validated.
  void Apply(const TxnWrite& w) {
    const std::string& gid = w.def->gid;
    if (w.create) {
      Rec& r = recs_[gid];
      r.def = *w.def;
      r.seq = next_seq_++;
      by_seq_.emplace(r.seq, gid);
    }
    Rec& r = recs_.at(gid);
    if (IsFinal(r.state.status) && !w.create) finished_.erase({FinishedAt(r.state), gid});
    r.state = w.state;
    if (IsFinal(r.state.status)) {
      unfinished_.erase(gid);
      finished_.emplace(FinishedAt(r.state), gid);
    } else {
      unfinished_.insert(gid);
    }
  }

  mutable std::mutex mu_;
  std::unordered_map<std::string, Rec> recs_;
  std::map<uint64_t, std::string> by_seq_;
  std::set<std::string> unfinished_;
  std::set<std::pair<TimeMs, std::string>> finished_;
  uint64_t next_seq_ = 1;
  StoreStats stats_;
};

}  // namespace

std::unique_ptr<TxnStore> NewMemStore() { return std::make_unique<MemStore>(); }

}  // namespace dtx::coord
