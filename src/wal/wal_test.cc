#include "wal/wal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "base/rand.h"

namespace dtx::wal {
namespace {

const Status& AsStatus(const Status& s) { return s; }
template <typename T>
const Status& AsStatus(const Result<T>& r) {
  return r.status();
}

#define ASSERT_OK(expr)                                                \
  do {                                                                 \
    const auto& dtx_v_ = (expr);                                       \
    ASSERT_TRUE(AsStatus(dtx_v_).ok()) << AsStatus(dtx_v_).ToString(); \
  } while (0)

#define EXPECT_CODE(expr, want)                                                \
  do {                                                                         \
    const auto& dtx_v_ = (expr);                                               \
    EXPECT_EQ(AsStatus(dtx_v_).code(), (want)) << AsStatus(dtx_v_).ToString(); \
  } while (0)

constexpr char kDir[] = "/wal";

std::string Payload(uint64_t index, size_t size = 20) {
  std::string s = "rec" + std::to_string(index) + ":";
  while (s.size() < size) s.push_back(static_cast<char>('a' + (index + s.size()) % 26));
  return s;
}

std::unique_ptr<Wal> MustOpen(Env* env, WalOptions opts = {}, const std::string& dir = kDir) {
  auto w = Wal::Open(env, dir, opts);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  return w.ok() ? std::move(*w) : nullptr;
}

Status AppendRange(Wal& w, uint64_t from, uint64_t to, size_t size = 20) {
  for (uint64_t i = from; i <= to; ++i) DTX_RETURN_IF_ERROR(w.Append(i, Payload(i, size)));
  return Status::Ok();
}

// Checks that w holds exactly the records [from, to] with Payload(i, size).
void ExpectRange(Wal& w, uint64_t from, uint64_t to, size_t size = 20) {
  EXPECT_EQ(w.first_index(), from);
  EXPECT_EQ(w.last_index(), to);
  auto recs = w.ReadFrom(from);
  ASSERT_OK(recs);
  ASSERT_EQ(recs->size(), to - from + 1);
  for (uint64_t i = from; i <= to; ++i) {
    EXPECT_EQ((*recs)[i - from], (Record{i, Payload(i, size)})) << "index " << i;
  }
}

std::vector<std::string> Segments(Env& env, const std::string& dir = kDir) {
  std::vector<std::string> out;
  auto names = env.ListDir(dir);
  EXPECT_TRUE(names.ok());
  if (!names.ok()) return out;
  for (const auto& n : *names) {
    if (n.size() == 20 && n.ends_with(".wal")) out.push_back(dir + "/" + n);
  }
  return out;
}

// Replaces a file's content (test-side tampering with what is on "disk").
void Overwrite(Env& env, const std::string& path, const std::string& data) {
  ASSERT_OK(env.WriteFileAtomic(path, data));
}

void FlipByte(Env& env, const std::string& path, size_t offset) {
  auto data = env.ReadFile(path);
  ASSERT_OK(data);
  ASSERT_LT(offset, data->size());
  (*data)[offset] ^= 0x5a;
  Overwrite(env, path, *data);
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c("56789", Crc32c("1234")), 0xE3069283u);
}

TEST(WalTest, AppendReopenRoundTrip) {
  MemEnv env;
  {
    auto w = MustOpen(&env);
    ASSERT_TRUE(w);
    EXPECT_EQ(w->first_index(), 0u);
    EXPECT_EQ(w->next_index(), 1u);
    ASSERT_OK(AppendRange(*w, 1, 100));
    ASSERT_OK(w->Sync());
    ExpectRange(*w, 1, 100);
  }
  auto w = MustOpen(&env);
  ASSERT_TRUE(w);
  ExpectRange(*w, 1, 100);
  auto tail = w->ReadFrom(90);
  ASSERT_OK(tail);
  ASSERT_EQ(tail->size(), 11u);
  EXPECT_EQ(tail->front().index, 90u);
  auto none = w->ReadFrom(101);
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  auto next = w->AppendNextAndSync("x");
  ASSERT_OK(next);
  EXPECT_EQ(*next, 101u);
}

TEST(WalTest, PosixRoundTripWithSegments) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("dtx_wal_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  WalOptions opts;
  opts.segment_bytes = 512;
  {
    auto w = MustOpen(Env::Posix(), opts, dir.string());
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 60));
    ASSERT_OK(w->Sync());
    EXPECT_GT(w->segment_count(), 2u);
    ASSERT_OK(w->Truncate(55));
    ASSERT_OK(w->SaveMeta("hard", "term=3"));
  }
  {
    auto w = MustOpen(Env::Posix(), opts, dir.string());
    ASSERT_TRUE(w);
    ExpectRange(*w, 1, 54);
    auto meta = w->LoadMeta("hard");
    ASSERT_OK(meta);
    EXPECT_EQ(*meta, "term=3");
    EXPECT_CODE(Wal::Open(Env::Posix(), dir.string(), opts), StatusCode::kFailedPrecondition);
  }
  fs::remove_all(dir);
}

TEST(WalTest, ManySegmentsAndReleaseBefore) {
  MemEnv env;
  WalOptions opts;
  opts.segment_bytes = 256;
  auto w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  ASSERT_OK(AppendRange(*w, 1, 200, 40));
  ASSERT_OK(w->Sync());
  const size_t before = w->segment_count();
  EXPECT_GE(before, 20u);
  EXPECT_EQ(Segments(env).size(), before);

  ASSERT_OK(w->ReleaseBefore(100));
  EXPECT_LT(w->segment_count(), before);
  EXPECT_GT(w->first_index(), 90u);
  EXPECT_LE(w->first_index(), 100u);
  const uint64_t first = w->first_index();
  ExpectRange(*w, first, 200, 40);
  EXPECT_CODE(w->ReadFrom(first - 1), StatusCode::kNotFound);

  // Releasing everything keeps the last segment and its records.
  ASSERT_OK(w->ReleaseBefore(1000));
  EXPECT_EQ(w->segment_count(), 1u);
  const uint64_t first2 = w->first_index();
  EXPECT_GT(first2, first);
  w.reset();
  Rand rand(7);
  env.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  ExpectRange(*w, first2, 200, 40);
  ASSERT_OK(AppendRange(*w, 201, 210, 40));
  ASSERT_OK(w->Sync());
  ExpectRange(*w, first2, 210, 40);
}

TEST(WalTest, TruncateThenAppend) {
  MemEnv env;
  WalOptions opts;
  opts.segment_bytes = 200;
  auto w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  ASSERT_OK(AppendRange(*w, 1, 50));
  ASSERT_OK(w->Sync());
  ASSERT_OK(w->Truncate(30));
  EXPECT_EQ(w->last_index(), 29u);
  EXPECT_CODE(w->Append(31, "x"), StatusCode::kInvalidArgument);
  for (uint64_t i = 30; i <= 40; ++i) ASSERT_OK(w->Append(i, "new" + std::to_string(i)));
  ASSERT_OK(w->Sync());
  w.reset();
  Rand rand(3);
  env.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  auto recs = w->ReadFrom(1);
  ASSERT_OK(recs);
  ASSERT_EQ(recs->size(), 40u);
  for (uint64_t i = 1; i <= 40; ++i) {
    EXPECT_EQ((*recs)[i - 1].index, i);
    EXPECT_EQ((*recs)[i - 1].payload, i < 30 ? Payload(i) : "new" + std::to_string(i));
  }
  // Truncating buffered (unsynced) records works too, and makes the kept ones durable.
  ASSERT_OK(AppendRange(*w, 41, 45));
  ASSERT_OK(w->Truncate(43));
  EXPECT_EQ(w->last_index(), 42u);
  w.reset();
  env.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->last_index(), 42u);
  // Truncating everything leaves an empty log that remembers where it stopped.
  ASSERT_OK(w->Truncate(1));
  EXPECT_EQ(w->first_index(), 0u);
  EXPECT_EQ(w->next_index(), 1u);
  w.reset();
  env.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->last_index(), 0u);
  EXPECT_EQ(w->next_index(), 1u);
  ASSERT_OK(AppendRange(*w, 1, 3));
  ASSERT_OK(w->Sync());
  ExpectRange(*w, 1, 3);
}

TEST(WalTest, ResetStartsAtAGivenIndex) {
  MemEnv env;
  WalOptions opts;
  opts.segment_bytes = 200;
  auto w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  ASSERT_OK(AppendRange(*w, 1, 30));
  ASSERT_OK(w->Reset(500));
  EXPECT_EQ(w->next_index(), 500u);
  EXPECT_EQ(w->segment_count(), 1u);
  w.reset();
  Rand rand(5);
  env.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->last_index(), 0u);
  EXPECT_EQ(w->next_index(), 500u);
  auto idx = w->AppendNextAndSync("a");
  ASSERT_OK(idx);
  EXPECT_EQ(*idx, 500u);
  // An empty log takes any first index; the empty segment is renamed for it.
  ASSERT_OK(w->Reset(10));
  ASSERT_OK(w->AppendAndSync(std::vector<RecordView>{{700, "x"}, {701, "y"}}));
  w.reset();
  env.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->first_index(), 700u);
  EXPECT_EQ(w->last_index(), 701u);
  EXPECT_EQ(Segments(env).size(), 1u);
}

TEST(WalTest, CrashLosesExactlyTheUnsyncedSuffix) {
  for (bool tear : {false, true}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE("tear=" + std::to_string(tear) + " seed=" + std::to_string(seed));
      MemEnv env;
      WalOptions opts;
      opts.segment_bytes = 300;
      auto w = MustOpen(&env, opts);
      ASSERT_TRUE(w);
      ASSERT_OK(AppendRange(*w, 1, 20));
      ASSERT_OK(w->Sync());
      // A failed sync leaves records 21..30 written to the files but not durable.
      ASSERT_OK(AppendRange(*w, 21, 30));
      env.SetSyncError(true);
      EXPECT_CODE(w->Sync(), StatusCode::kUnavailable);
      env.SetSyncError(false);
      EXPECT_CODE(w->Append(31, "x"), StatusCode::kFailedPrecondition);
      EXPECT_CODE(w->Sync(), StatusCode::kFailedPrecondition);
      EXPECT_CODE(w->Truncate(5), StatusCode::kFailedPrecondition);
      w.reset();
      Rand rand(seed);
      env.SimulateCrash(rand, MemEnv::CrashOptions{.drop_unsynced = true, .tear_last_write = tear});
      w = MustOpen(&env, opts);
      ASSERT_TRUE(w);
      if (!tear) {
        ExpectRange(*w, 1, 20);
      } else {
        ASSERT_GE(w->last_index(), 20u);
        ASSERT_LE(w->last_index(), 30u);
        ExpectRange(*w, 1, w->last_index());
      }
      const uint64_t next = w->last_index() + 1;
      ASSERT_OK(w->AppendAndSync(std::vector<RecordView>{{next, Payload(next)}}));
      w.reset();
      w = MustOpen(&env, opts);
      ASSERT_TRUE(w);
      ExpectRange(*w, 1, next);
    }
  }
}

TEST(WalTest, TornLastWriteIsTruncatedAndAppendsContinue) {
  MemEnv env;
  {
    auto w = MustOpen(&env);
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 10));
    ASSERT_OK(w->Sync());
  }
  auto segs = Segments(env);
  ASSERT_EQ(segs.size(), 1u);
  auto full = env.ReadFile(segs[0]);
  ASSERT_OK(full);
  const size_t rec = full->size() / 10;  // all records have the same size
  // Cut inside the header and inside the payload of the last record.
  for (size_t cut : {size_t{1}, size_t{10}, size_t{17}, rec - 1}) {
    SCOPED_TRACE("cut " + std::to_string(cut));
    Overwrite(env, segs[0], full->substr(0, 9 * rec + cut));
    auto w = MustOpen(&env);
    ASSERT_TRUE(w);
    ExpectRange(*w, 1, 9);
    auto size = env.FileSize(segs[0]);
    ASSERT_OK(size);
    EXPECT_EQ(*size, 9 * rec);
    ASSERT_OK(w->AppendAndSync(std::vector<RecordView>{{10, Payload(10)}}));
    w.reset();
    w = MustOpen(&env);
    ASSERT_TRUE(w);
    ExpectRange(*w, 1, 10);
  }
  // A tear made by MemEnv itself: a synced log, then a failed sync of more records, then a
  // crash that keeps a random prefix of the unsynced write. Some seed tears mid-record.
  bool saw_partial = false;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    MemEnv env2;
    auto w = MustOpen(&env2);
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 5));
    ASSERT_OK(w->Sync());
    ASSERT_OK(AppendRange(*w, 6, 8));
    env2.SetSyncError(true);
    EXPECT_FALSE(w->Sync().ok());
    env2.SetSyncError(false);
    w.reset();
    Rand rand(seed);
    env2.SimulateCrash(rand);
    auto seg = Segments(env2);
    ASSERT_EQ(seg.size(), 1u);
    auto size = env2.FileSize(seg[0]);
    ASSERT_OK(size);
    if (*size % rec != 0) saw_partial = true;
    w = MustOpen(&env2);
    ASSERT_TRUE(w);
    ASSERT_GE(w->last_index(), 5u);
    ExpectRange(*w, 1, w->last_index());
    EXPECT_EQ(*env2.FileSize(seg[0]) % rec, 0u);
  }
  EXPECT_TRUE(saw_partial);
}

TEST(WalTest, CorruptMiddleSegmentIsDataLoss) {
  MemEnv env;
  WalOptions opts;
  opts.segment_bytes = 200;
  {
    auto w = MustOpen(&env, opts);
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 50));
    ASSERT_OK(w->Sync());
  }
  auto segs = Segments(env);
  ASSERT_GE(segs.size(), 3u);
  // The last byte of a middle segment: its last record, which in the last segment would be a
  // torn tail.
  auto size = env.FileSize(segs[1]);
  ASSERT_OK(size);
  FlipByte(env, segs[1], *size - 1);
  auto w = Wal::Open(&env, kDir, opts);
  ASSERT_EQ(w.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(w.status().message().find(segs[1]), std::string::npos) << w.status().ToString();
  EXPECT_NE(w.status().message().find("offset"), std::string::npos);
}

TEST(WalTest, CorruptRecordFollowedByValidOnesIsDataLoss) {
  MemEnv env;
  {
    auto w = MustOpen(&env);
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 10));
    ASSERT_OK(w->Sync());
  }
  auto segs = Segments(env);
  ASSERT_EQ(segs.size(), 1u);
  FlipByte(env, segs[0], 3 * 37 + 20);  // inside record 4's payload
  auto w = Wal::Open(&env, kDir, WalOptions{});
  ASSERT_EQ(w.status().code(), StatusCode::kDataLoss) << w.status().ToString();
  EXPECT_NE(w.status().message().find(segs[0]), std::string::npos);
  EXPECT_NE(w.status().message().find("followed by a valid record"), std::string::npos);
}

TEST(WalTest, CorruptLastRecordOfLastSegmentIsDropped) {
  MemEnv env;
  WalOptions opts;
  opts.segment_bytes = 200;
  {
    auto w = MustOpen(&env, opts);
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 50));
    ASSERT_OK(w->Sync());
  }
  auto segs = Segments(env);
  ASSERT_GE(segs.size(), 2u);
  auto size = env.FileSize(segs.back());
  ASSERT_OK(size);
  FlipByte(env, segs.back(), *size - 3);
  auto w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  ExpectRange(*w, 1, 49);
  ASSERT_OK(w->AppendAndSync(std::vector<RecordView>{{50, Payload(50)}}));
  w.reset();
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  ExpectRange(*w, 1, 50);
}

TEST(WalTest, GapBetweenSegmentsIsDataLoss) {
  MemEnv env;
  WalOptions opts;
  opts.segment_bytes = 200;
  {
    auto w = MustOpen(&env, opts);
    ASSERT_TRUE(w);
    ASSERT_OK(AppendRange(*w, 1, 50));
    ASSERT_OK(w->Sync());
  }
  auto segs = Segments(env);
  ASSERT_GE(segs.size(), 3u);
  ASSERT_OK(env.RemoveFile(segs[1]));
  auto w = Wal::Open(&env, kDir, opts);
  EXPECT_CODE(w, StatusCode::kDataLoss);
}

// Wraps an Env and counts WritableFile::Sync calls. Each sync takes 200 microseconds, a model
// of a disk's flush latency, so that concurrent writers find a sync in progress.
class CountingEnv final : public Env {
 public:
  explicit CountingEnv(Env* base) : base_(base) {}
  std::atomic<int> syncs{0};

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return Wrap(base_->NewWritableFile(path));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return Wrap(base_->NewAppendableFile(path));
  }
  Result<std::string> ReadFile(const std::string& p) override { return base_->ReadFile(p); }
  Status RenameFile(const std::string& f, const std::string& t) override {
    return base_->RenameFile(f, t);
  }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  Status CreateDirs(const std::string& p) override { return base_->CreateDirs(p); }
  Result<std::vector<std::string>> ListDir(const std::string& p) override {
    return base_->ListDir(p);
  }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  Result<uint64_t> FileSize(const std::string& p) override { return base_->FileSize(p); }
  Status SyncDir(const std::string& p) override { return base_->SyncDir(p); }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p) override {
    return base_->LockFile(p);
  }

 private:
  class File final : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> f, std::atomic<int>* n) : f_(std::move(f)), n_(n) {}
    Status Append(std::string_view d) override { return f_->Append(d); }
    Status Sync() override {
      n_->fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      return f_->Sync();
    }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<WritableFile> f_;
    std::atomic<int>* n_;
  };
  Result<std::unique_ptr<WritableFile>> Wrap(Result<std::unique_ptr<WritableFile>> r) {
    if (!r.ok()) return r.status();
    return std::unique_ptr<WritableFile>(new File(std::move(*r), &syncs));
  }
  Env* base_;
};

TEST(WalTest, GroupCommitSharesSyncsAcrossThreads) {
  MemEnv mem;
  CountingEnv env(&mem);
  WalOptions opts;
  opts.segment_bytes = 4096;
  auto w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t prev = 0;
      for (int i = 0; i < kPerThread; ++i) {
        auto idx = w->AppendNextAndSync("t" + std::to_string(t) + ":" + std::to_string(i));
        if (!idx.ok() || *idx <= prev) {
          failures.fetch_add(1);
          return;
        }
        prev = *idx;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  const int appends = kThreads * kPerThread;
  EXPECT_LT(env.syncs.load(), appends);
  EXPECT_GT(env.syncs.load(), 0);
  // Everything acknowledged survives a crash that drops all unsynced data.
  w.reset();
  Rand rand(11);
  mem.SimulateCrash(rand);
  w = MustOpen(&env, opts);
  ASSERT_TRUE(w);
  auto recs = w->ReadFrom(1);
  ASSERT_OK(recs);
  ASSERT_EQ(recs->size(), static_cast<size_t>(appends));
  std::vector<int> next(kThreads, 0);
  for (size_t i = 0; i < recs->size(); ++i) {
    const Record& r = (*recs)[i];
    EXPECT_EQ(r.index, i + 1);
    const size_t colon = r.payload.find(':');
    ASSERT_NE(colon, std::string::npos);
    const int t = std::stoi(r.payload.substr(1, colon - 1));
    const int n = std::stoi(r.payload.substr(colon + 1));
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(n, next[t]) << "thread " << t << "'s records out of order";
    next[t] = n + 1;
  }
}

TEST(WalTest, MetaIsAtomicUnderCrash) {
  MemEnv env;
  auto w = MustOpen(&env);
  ASSERT_TRUE(w);
  EXPECT_CODE(w->LoadMeta("hard"), StatusCode::kNotFound);
  ASSERT_OK(w->SaveMeta("hard", "v1"));
  ASSERT_OK(w->SaveMeta("snap", std::string(10000, 's')));
  // A save whose sync fails, then a crash: the old value stays.
  env.SetSyncError(true);
  EXPECT_FALSE(w->SaveMeta("hard", "v2-much-longer-value").ok());
  env.SetSyncError(false);
  w.reset();
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    Rand rand(seed);
    env.SimulateCrash(rand);
    w = MustOpen(&env);
    ASSERT_TRUE(w);
    auto v = w->LoadMeta("hard");
    ASSERT_OK(v);
    EXPECT_EQ(*v, "v1");
    auto s = w->LoadMeta("snap");
    ASSERT_OK(s);
    EXPECT_EQ(s->size(), 10000u);
    w.reset();
  }
  w = MustOpen(&env);
  ASSERT_TRUE(w);
  ASSERT_OK(w->SaveMeta("hard", "v3"));
  w.reset();
  Rand rand(99);
  env.SimulateCrash(rand);
  w = MustOpen(&env);
  ASSERT_TRUE(w);
  auto v = w->LoadMeta("hard");
  ASSERT_OK(v);
  EXPECT_EQ(*v, "v3");
  // A damaged meta file is reported, not returned.
  FlipByte(env, std::string(kDir) + "/hard.meta", 5);
  EXPECT_CODE(w->LoadMeta("hard"), StatusCode::kDataLoss);
  Overwrite(env, std::string(kDir) + "/hard.meta", "ab");
  EXPECT_CODE(w->LoadMeta("hard"), StatusCode::kDataLoss);
}

TEST(WalTest, BadArguments) {
  MemEnv env;
  EXPECT_CODE(Wal::Open(nullptr, kDir, {}), StatusCode::kInvalidArgument);
  EXPECT_CODE(Wal::Open(&env, "", {}), StatusCode::kInvalidArgument);
  EXPECT_CODE(Wal::Open(&env, kDir, WalOptions{.segment_bytes = 0}), StatusCode::kInvalidArgument);
  EXPECT_CODE(Wal::Open(&env, kDir, WalOptions{.max_record_bytes = 0}),
              StatusCode::kInvalidArgument);
  EXPECT_CODE(Wal::Open(&env, kDir, WalOptions{.initial_index = 0}), StatusCode::kInvalidArgument);
  auto w = MustOpen(&env, WalOptions{.max_record_bytes = 100});
  ASSERT_TRUE(w);
  EXPECT_CODE(Wal::Open(&env, kDir, {}), StatusCode::kFailedPrecondition);
  EXPECT_CODE(w->Append(0, "x"), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->Append(1, std::string(101, 'x')), StatusCode::kInvalidArgument);
  ASSERT_OK(w->Append(5, "x"));
  EXPECT_CODE(w->Append(5, "x"), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->Append(7, "x"), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->Append(4, "x"), StatusCode::kInvalidArgument);
  // A batch is all-or-nothing.
  EXPECT_CODE(w->Append(std::vector<RecordView>{{6, "a"}, {8, "b"}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(w->last_index(), 5u);
  ASSERT_OK(w->Append(std::vector<RecordView>{{6, "a"}, {7, "b"}}));
  ASSERT_OK(w->Sync());
  EXPECT_CODE(w->Truncate(0), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->Truncate(4), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->Truncate(9), StatusCode::kInvalidArgument);
  ASSERT_OK(w->Truncate(8));  // no-op
  EXPECT_CODE(w->ReadFrom(0), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->ReadFrom(4), StatusCode::kNotFound);
  EXPECT_CODE(w->ReleaseBefore(0), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->Reset(0), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->SaveMeta("", "x"), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->SaveMeta("../x", "x"), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->SaveMeta(std::string(65, 'a'), "x"), StatusCode::kInvalidArgument);
  EXPECT_CODE(w->LoadMeta("a/b"), StatusCode::kInvalidArgument);
  EXPECT_EQ(w->first_index(), 5u);
  EXPECT_EQ(w->last_index(), 7u);
  auto recs = w->ReadFrom(5);
  ASSERT_OK(recs);
  EXPECT_EQ(*recs, (std::vector<Record>{{5, "x"}, {6, "a"}, {7, "b"}}));
}

// Random appends, syncs, failed syncs, truncates, releases, resets and crashes on MemEnv; after
// every reopen the log must hold a prefix of what was appended that includes everything
// made durable, with consecutive indices.
TEST(WalTest, RandomizedCrashesMatchModel) {
  int crashes_keeping_unsynced = 0;
  int reopens_with_segments = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Rand rand(seed);
    MemEnv env;
    WalOptions opts;
    opts.segment_bytes = 100 + rand.Uniform(400);
    auto w = MustOpen(&env, opts);
    ASSERT_TRUE(w);
    std::map<uint64_t, std::string> model;  // what was appended and not dropped
    uint64_t durable_last = 0;              // highest index known durable (0: none)
    bool poisoned = false;
    for (int step = 0; step < 60; ++step) {
      const uint64_t op = rand.Uniform(100);
      if (poisoned || op < 8) {
        w.reset();
        MemEnv::CrashOptions co;
        co.drop_unsynced = rand.Chance(0.8);
        co.tear_last_write = rand.Chance(0.7);
        env.SimulateCrash(rand, co);
        w = MustOpen(&env, opts);
        ASSERT_TRUE(w);
        poisoned = false;
        const uint64_t first = w->first_index();
        const uint64_t last = w->last_index();
        if (durable_last != 0) {
          ASSERT_GE(last, durable_last);
        }
        if (last != 0) {
          ASSERT_FALSE(model.empty());
          ASSERT_EQ(first, model.begin()->first);
          auto recs = w->ReadFrom(first);
          ASSERT_OK(recs);
          ASSERT_EQ(recs->size(), last - first + 1);
          for (size_t i = 0; i < recs->size(); ++i) {
            const Record& r = (*recs)[i];
            ASSERT_EQ(r.index, first + i);
            auto it = model.find(r.index);
            ASSERT_NE(it, model.end()) << "record " << r.index << " was never appended";
            ASSERT_EQ(r.payload, it->second);
          }
        }
        if (last > durable_last) ++crashes_keeping_unsynced;
        if (w->segment_count() > 2) ++reopens_with_segments;
        model.erase(last == 0 ? model.begin() : model.upper_bound(last), model.end());
        durable_last = last;
      } else if (op < 45) {
        const uint64_t n = 1 + rand.Uniform(5);
        const uint64_t start = w->next_index();
        std::vector<std::string> payloads;
        for (uint64_t i = 0; i < n; ++i) payloads.push_back(Payload(start + i, rand.Uniform(60)));
        std::vector<RecordView> views;
        for (uint64_t i = 0; i < n; ++i) views.push_back({start + i, payloads[i]});
        ASSERT_OK(w->Append(views));
        for (uint64_t i = 0; i < n; ++i) model[start + i] = payloads[i];
      } else if (op < 65) {
        ASSERT_OK(w->Sync());
        durable_last = w->last_index();
      } else if (op < 72) {
        env.SetSyncError(true);
        Status st = w->Sync();
        env.SetSyncError(false);
        if (!st.ok()) poisoned = true;
      } else if (op < 85) {
        if (model.empty()) continue;
        const uint64_t first = model.begin()->first;
        const uint64_t from = first + rand.Uniform(model.size() + 1);
        ASSERT_OK(w->Truncate(from));
        model.erase(model.lower_bound(from), model.end());
        durable_last = model.empty() ? 0 : model.rbegin()->first;
        ASSERT_EQ(w->last_index(), durable_last);
      } else if (op < 95) {
        if (model.empty()) continue;
        const uint64_t before = model.begin()->first + rand.Uniform(model.size() + 1);
        ASSERT_OK(w->ReleaseBefore(before));
        durable_last = w->last_index();
        const uint64_t first = w->first_index();
        if (first == 0) {
          model.clear();
        } else {
          ASSERT_LE(first, before);
          model.erase(model.begin(), model.lower_bound(first));
        }
      } else {
        const uint64_t next = 1 + rand.Uniform(1000);
        ASSERT_OK(w->Reset(next));
        model.clear();
        durable_last = 0;
        ASSERT_EQ(w->next_index(), next);
      }
    }
  }
  // The rounds reach the interesting states: unsynced data partly surviving, many segments.
  EXPECT_GT(crashes_keeping_unsynced, 20);
  EXPECT_GT(reopens_with_segments, 50);
}

}  // namespace
}  // namespace dtx::wal
