#include "coord/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace dtx::coord {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const TxnDef> Def(const std::string& gid, TransType type = TransType::kSaga,
                                  size_t steps = 2, TimeMs create_time = 1000) {
  auto d = std::make_shared<TxnDef>();
  d->gid = gid;
  d->type = type;
  for (size_t i = 0; i < steps; ++i) {
    d->steps.push_back({"http://p/action" + std::to_string(i),
                        type == TransType::kSaga ? "http://p/comp" + std::to_string(i) : ""});
    d->payloads.push_back("{\"i\":" + std::to_string(i) + "}");
  }
  d->create_time = create_time;
  return d;
}

TxnState State(GlobalStatus status, size_t steps = 2, TimeMs t = 2000) {
  TxnState s;
  s.status = status;
  s.steps.resize(steps);
  s.update_time = t;
  if (status == GlobalStatus::kSucceed) s.finish_time = t;
  if (status == GlobalStatus::kFailed) s.rollback_time = t;
  return s;
}

TxnWrite Create(std::shared_ptr<const TxnDef> def, GlobalStatus status = GlobalStatus::kSubmitted) {
  const size_t n = def->steps.size();
  return TxnWrite{std::move(def), true, State(status, n, 1000)};
}

TxnWrite Update(std::shared_ptr<const TxnDef> def, TxnState state) {
  return TxnWrite{std::move(def), false, std::move(state)};
}

std::vector<std::string> Gids(const std::vector<TxnRecord>& recs) {
  std::vector<std::string> out;
  for (const auto& r : recs) out.push_back(r.def.gid);
  return out;
}

enum class Kind { kMem, kRocks };
void PrintTo(Kind k, std::ostream* os) { *os << (k == Kind::kMem ? "Mem" : "Rocks"); }

class StoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("dtx_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    Open();
  }

  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void Open() {
    if (GetParam() == Kind::kMem) {
      store_ = NewMemStore();
      return;
    }
    auto s = OpenRocksStore(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  // Rocks: close and reopen the same directory. Mem: nothing to do.
  void Reopen() {
    if (GetParam() == Kind::kMem) return;
    store_.reset();
    Open();
  }

  void MustWrite(const std::vector<TxnWrite>& batch) {
    Status s = store_->Write(batch);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::optional<TxnRecord> MustLoad(const std::string& gid) {
    auto r = store_->Load(gid);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  std::set<std::string> UnfinishedGids() {
    auto r = store_->LoadUnfinished();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    auto g = Gids(*r);
    return {g.begin(), g.end()};
  }

  // Every page of a scan, concatenated.
  std::vector<std::string> ScanAll(size_t limit, const ScanFilter& f = {}) {
    std::vector<std::string> out;
    std::string pos;
    for (int page = 0; page < 1000; ++page) {
      auto r = store_->Scan(pos, limit, f);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) break;
      EXPECT_LE(r->txns.size(), limit);
      for (const auto& g : Gids(r->txns)) out.push_back(g);
      if (r->next_position.empty()) break;
      pos = r->next_position;
    }
    return out;
  }

  fs::path dir_;
  std::unique_ptr<TxnStore> store_;
};

TEST_P(StoreTest, CreateUpdateLoad) {
  auto d = Def("g1");
  d = [&] {
    auto m = std::make_shared<TxnDef>(*d);
    m->payloads[1] = std::string("\x00\xFF bytes ", 9) + "中文";
    m->options.branch_headers = {{"X-A", "1"}};
    m->orders = {{1, {0}}};
    m->concurrent = true;
    return std::shared_ptr<const TxnDef>(m);
  }();
  MustWrite({Create(d)});
  auto rec = MustLoad("g1");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->def.steps, d->steps);
  EXPECT_EQ(rec->def.payloads, d->payloads);
  EXPECT_EQ(rec->def.options, d->options);
  EXPECT_EQ(rec->def.orders, d->orders);
  EXPECT_TRUE(rec->def.concurrent);
  EXPECT_EQ(rec->state, State(GlobalStatus::kSubmitted, 2, 1000));

  TxnState s = State(GlobalStatus::kAborting, 2, 3000);
  s.steps[0] = {BranchStatus::kSucceed, BranchStatus::kSucceed, 2100, 2900};
  s.steps[1].action = BranchStatus::kFailed;
  s.rollback_reason = "no money";
  MustWrite({Update(d, s)});
  rec = MustLoad("g1");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->state, s);
  EXPECT_EQ(rec->def.gid, "g1");

  EXPECT_FALSE(MustLoad("nope").has_value());
  EXPECT_EQ(store_->stats().writes, 2u);
  EXPECT_EQ(store_->stats().batches, 2u);
}

TEST_P(StoreTest, BatchIsAllOrNothing) {
  auto a = Def("a"), b = Def("b"), c = Def("c");
  Status s = store_->Write({Create(a), Create(b), Update(c, State(GlobalStatus::kSucceed))});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_FALSE(MustLoad("a").has_value());
  EXPECT_FALSE(MustLoad("b").has_value());
  EXPECT_TRUE(UnfinishedGids().empty());
  EXPECT_TRUE(ScanAll(10).empty());

  s = store_->Write({Create(a), Create(a)});
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_FALSE(MustLoad("a").has_value());

  MustWrite({Create(a)});
  s = store_->Write({Create(b), Create(a)});
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_FALSE(MustLoad("b").has_value());

  s = store_->Write({Create(b), TxnWrite{nullptr, false, State(GlobalStatus::kSucceed)}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  s = store_->Write({Create(b), Update(a, State(GlobalStatus::kSucceed, 3))});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  s = store_->Write({Create(Def(""))});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(MustLoad("b").has_value());
  EXPECT_EQ(ScanAll(10), std::vector<std::string>{"a"});
  EXPECT_EQ(store_->stats().batches, 1u);

  // Several writes of one gid in a batch apply in order.
  MustWrite({Create(b), Update(b, State(GlobalStatus::kAborting, 2, 1500)),
             Update(b, State(GlobalStatus::kFailed, 2, 1600))});
  auto rec = MustLoad("b");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->state.status, GlobalStatus::kFailed);
  EXPECT_EQ(rec->state.rollback_time, 1600);
  EXPECT_EQ(UnfinishedGids(), std::set<std::string>{"a"});
  EXPECT_TRUE(store_->Write({}).ok());
}

TEST_P(StoreTest, UnfinishedSetFollowsFinishes) {
  std::vector<std::shared_ptr<const TxnDef>> defs;
  std::vector<TxnWrite> batch;
  for (int i = 0; i < 6; ++i) {
    defs.push_back(Def("u" + std::to_string(i)));
    batch.push_back(Create(defs.back(), i == 5 ? GlobalStatus::kSucceed : GlobalStatus::kPrepared));
  }
  MustWrite(batch);
  EXPECT_EQ(UnfinishedGids(), (std::set<std::string>{"u0", "u1", "u2", "u3", "u4"}));
  MustWrite({Update(defs[1], State(GlobalStatus::kSucceed)),
             Update(defs[3], State(GlobalStatus::kFailed)),
             Update(defs[4], State(GlobalStatus::kAborting))});
  EXPECT_EQ(UnfinishedGids(), (std::set<std::string>{"u0", "u2", "u4"}));
  auto recs = store_->LoadUnfinished();
  ASSERT_TRUE(recs.ok());
  for (const auto& r : *recs) {
    if (r.def.gid == "u4") {
      EXPECT_EQ(r.state.status, GlobalStatus::kAborting);
    }
  }
  Reopen();
  EXPECT_EQ(UnfinishedGids(), (std::set<std::string>{"u0", "u2", "u4"}));
}

TEST_P(StoreTest, ScanNewestFirstWithPagesAndFilters) {
  std::vector<std::string> created;
  // Creation order, across batches and within one batch.
  for (int i = 0; i < 3; ++i) {
    created.push_back("s" + std::to_string(i));
    MustWrite({Create(Def(created.back(), i % 2 ? TransType::kMsg : TransType::kSaga, 1))});
  }
  std::vector<TxnWrite> batch;
  for (int i = 3; i < 7; ++i) {
    created.push_back("s" + std::to_string(i));
    batch.push_back(Create(Def(created.back(), i % 2 ? TransType::kMsg : TransType::kSaga, 1)));
  }
  MustWrite(batch);
  MustWrite({Update(Def("s2", TransType::kSaga, 1), State(GlobalStatus::kSucceed, 1)),
             Update(Def("s5", TransType::kMsg, 1), State(GlobalStatus::kSucceed, 1))});
  std::vector<std::string> newest(created.rbegin(), created.rend());

  auto first = store_->Scan("", 3, {});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Gids(first->txns), (std::vector<std::string>{"s6", "s5", "s4"}));
  EXPECT_FALSE(first->next_position.empty());
  EXPECT_EQ(first->txns[1].state.status, GlobalStatus::kSucceed);
  EXPECT_EQ(first->txns[1].def.type, TransType::kMsg);

  EXPECT_EQ(ScanAll(3), newest);
  EXPECT_EQ(ScanAll(1), newest);
  EXPECT_EQ(ScanAll(7), newest);
  EXPECT_EQ(ScanAll(100), newest);

  // A page that ends exactly at the last record says there is no more.
  auto p1 = store_->Scan("", 4, {});
  ASSERT_TRUE(p1.ok());
  auto p2 = store_->Scan(p1->next_position, 3, {});
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(Gids(p2->txns), (std::vector<std::string>{"s2", "s1", "s0"}));
  EXPECT_EQ(p2->next_position, "");

  EXPECT_EQ(ScanAll(2, {GlobalStatus::kSucceed, std::nullopt}),
            (std::vector<std::string>{"s5", "s2"}));
  EXPECT_EQ(ScanAll(2, {std::nullopt, TransType::kMsg}),
            (std::vector<std::string>{"s5", "s3", "s1"}));
  EXPECT_EQ(ScanAll(2, {GlobalStatus::kSubmitted, TransType::kSaga}),
            (std::vector<std::string>{"s6", "s4", "s0"}));
  EXPECT_TRUE(ScanAll(2, {GlobalStatus::kFailed, std::nullopt}).empty());

  auto none = store_->Scan("1", 10, {});  // below the first sequence number
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->txns.empty());
  EXPECT_EQ(none->next_position, "");
}

TEST_P(StoreTest, SelectiveScanStopsAfterExaminationCapAndContinues) {
  std::vector<TxnWrite> batch;
  for (int i = 0; i < 3; ++i)
    batch.push_back(Create(Def("m" + std::to_string(i), TransType::kMsg)));
  for (size_t i = 0; i < TxnStore::kScanMaxExamined; ++i) {
    batch.push_back(Create(Def("x" + std::to_string(i), TransType::kSaga, 1)));
  }
  MustWrite(batch);
  const ScanFilter msgs{std::nullopt, TransType::kMsg};
  auto first = store_->Scan("", 10, msgs);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->txns.empty());
  ASSERT_FALSE(first->next_position.empty());
  auto second = store_->Scan(first->next_position, 10, msgs);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(Gids(second->txns), (std::vector<std::string>{"m2", "m1", "m0"}));
  EXPECT_EQ(second->next_position, "");
}

TEST_P(StoreTest, ScanRejectsBadPositionAndLimit) {
  MustWrite({Create(Def("x"))});
  for (const char* bad : {"abc", "-3", "1.5", "99999999999999999999999", " "}) {
    auto r = store_->Scan(bad, 10, {});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  auto r = store_->Scan("", 0, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, PurgeByCutoffAndLimit) {
  auto a = Def("pa"), b = Def("pb"), c = Def("pc"), d = Def("pd"), e = Def("pe");
  MustWrite({Create(a), Create(b), Create(c), Create(d), Create(e)});
  MustWrite({Update(a, State(GlobalStatus::kSucceed, 2, 100)),
             Update(b, State(GlobalStatus::kFailed, 2, 200)),
             Update(c, State(GlobalStatus::kSucceed, 2, 300))});
  // Finished with only update_time set: purged by update_time.
  TxnState dstate = State(GlobalStatus::kSucceed, 2, 150);
  dstate.finish_time = 0;
  MustWrite({Update(d, dstate)});

  auto n = store_->PurgeFinished(250, 2);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2u);
  EXPECT_FALSE(MustLoad("pa").has_value());
  EXPECT_FALSE(MustLoad("pd").has_value());
  EXPECT_TRUE(MustLoad("pb").has_value());

  n = store_->PurgeFinished(250, 10);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(MustLoad("pb").has_value());
  EXPECT_TRUE(MustLoad("pc").has_value());

  n = store_->PurgeFinished(300, 10);  // strictly below the cutoff
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  n = store_->PurgeFinished(1'000'000, 0);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);

  EXPECT_EQ(ScanAll(10), (std::vector<std::string>{"pe", "pc"}));
  EXPECT_EQ(UnfinishedGids(), std::set<std::string>{"pe"});

  // A finished record whose finish time is rewritten is indexed by the new time only.
  MustWrite({Update(c, State(GlobalStatus::kSucceed, 2, 5000))});
  n = store_->PurgeFinished(1000, 10);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  n = store_->PurgeFinished(5001, 10);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(ScanAll(10), std::vector<std::string>{"pe"});

  // A purged gid can be created again, and sorts as the newest.
  MustWrite({Create(a)});
  EXPECT_EQ(ScanAll(10), (std::vector<std::string>{"pa", "pe"}));
  n = store_->PurgeFinished(std::numeric_limits<TimeMs>::max(), 10);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);  // nothing finished
}

TEST_P(StoreTest, NegativeAndHugeTimesPurgeInOrder) {
  auto a = Def("na"), b = Def("nb"), c = Def("nc");
  MustWrite({Create(a), Create(b), Create(c)});
  MustWrite({Update(a, State(GlobalStatus::kSucceed, 2, -50)),
             Update(b, State(GlobalStatus::kSucceed, 2, 10)),
             Update(c, State(GlobalStatus::kSucceed, 2, std::numeric_limits<TimeMs>::max() - 1))});
  auto n = store_->PurgeFinished(0, 10);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(MustLoad("na").has_value());
  n = store_->PurgeFinished(std::numeric_limits<TimeMs>::max(), 10);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
}

TEST_P(StoreTest, ReopenKeepsEverythingAndSequenceMovesOn) {
  auto a = Def("ra", TransType::kSaga, 3), b = Def("rb", TransType::kMsg, 1);
  MustWrite({Create(a), Create(b)});
  TxnState s = State(GlobalStatus::kSucceed, 1, 777);
  s.steps[0] = {BranchStatus::kSucceed, BranchStatus::kPrepared, 700, 0};
  MustWrite({Update(b, s)});
  MustWrite({Create(Def("rc"))});
  MustWrite({Update(Def("rc"), State(GlobalStatus::kSucceed, 2, 900))});
  ASSERT_TRUE(store_->PurgeFinished(1000, 1).ok());  // removes rb, not the newest
  ASSERT_TRUE(store_->PurgeFinished(1000, 1).ok());  // removes rc, the newest

  Reopen();
  auto ra = MustLoad("ra");
  ASSERT_TRUE(ra.has_value());
  EXPECT_EQ(ra->def.steps, a->steps);
  EXPECT_EQ(ra->def.payloads, a->payloads);
  EXPECT_EQ(ra->state, State(GlobalStatus::kSubmitted, 3, 1000));
  EXPECT_FALSE(MustLoad("rb").has_value());
  EXPECT_FALSE(MustLoad("rc").has_value());
  EXPECT_EQ(UnfinishedGids(), std::set<std::string>{"ra"});

  MustWrite({Create(Def("rd"))});
  EXPECT_EQ(ScanAll(10), (std::vector<std::string>{"rd", "ra"}));
  Reopen();
  EXPECT_EQ(ScanAll(10), (std::vector<std::string>{"rd", "ra"}));
  auto rd = MustLoad("rd");
  ASSERT_TRUE(rd.has_value());
  EXPECT_EQ(rd->state.status, GlobalStatus::kSubmitted);
}

TEST_P(StoreTest, ConcurrentWritersOnDisjointGids) {
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto d = Def("t" + std::to_string(t) + "_" + std::to_string(i));
        if (!store_->Write({Create(d)}).ok()) ++failures;
        if (!store_->Write({Update(d, State(GlobalStatus::kSucceed, 2, 100 + i))}).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ScanAll(37).size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_TRUE(UnfinishedGids().empty());
  EXPECT_EQ(store_->stats().batches, static_cast<uint64_t>(2 * kThreads * kPerThread));
  auto n = store_->PurgeFinished(1'000'000, 1'000);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, static_cast<size_t>(kThreads * kPerThread));
  EXPECT_TRUE(ScanAll(10).empty());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values(Kind::kMem, Kind::kRocks),
                         [](const auto& info) {
                           return info.param == Kind::kMem ? std::string("Mem")
                                                           : std::string("Rocks");
                         });

class RocksOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dtx_rocks_open_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(RocksOpenTest, SecondOpenOfSameDirFailsClearly) {
  const std::string dir = (dir_ / "db").string();
  auto first = OpenRocksStore(dir);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = OpenRocksStore(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(dir), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().message();
  first->reset();
  auto third = OpenRocksStore(dir);
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST_F(RocksOpenTest, UncreatableDirFailsClearly) {
  fs::create_directories(dir_);
  { std::ofstream(dir_ / "file") << "x"; }
  const std::string dir = (dir_ / "file" / "db").string();
  auto s = OpenRocksStore(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find(dir), std::string::npos) << s.status().message();

  auto empty = OpenRocksStore("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RocksOpenTest, UnsyncedModeStillReadsBack) {
  const std::string dir = (dir_ / "db").string();
  RocksStoreOptions o;
  o.sync = false;
  o.block_cache_bytes = 1 << 20;
  o.write_buffer_bytes = 1 << 20;
  {
    auto s = OpenRocksStore(dir, o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->Write({Create(Def("q"))}).ok());
  }
  auto s = OpenRocksStore(dir, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto rec = (*s)->Load("q");
  ASSERT_TRUE(rec.ok());
  EXPECT_TRUE(rec->has_value());
}

}  // namespace
}  // namespace dtx::coord
