#include "consensus/raft/wal_storage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/coding.h"
#include "base/rand.h"

namespace dtx::raft {
namespace {

Entry E(uint64_t index, uint64_t term, std::string data = "") {
  return Entry{term, index, EntryType::kNormal, std::move(data)};
}

class WalStorageTest : public ::testing::Test {
 protected:
  std::unique_ptr<WalStorage> Open() {
    auto s = WalStorage::Open(&env_, WalStorageOptions{"/raft", 4096, true});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  void Crash() {
    storage_.reset();
    env_.SimulateCrash(rand_, MemEnv::CrashOptions{true, false});
  }
  static raft::Ready Append(std::vector<Entry> entries, bool sync = true) {
    raft::Ready rd;
    rd.entries = std::move(entries);
    rd.must_sync = sync;
    return rd;
  }

  MemEnv env_;
  Rand rand_{7};
  std::unique_ptr<WalStorage> storage_;
};

TEST_F(WalStorageTest, SyncedEntriesAndVoteSurviveACrash) {
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  raft::Ready rd = Append({E(1, 1, "a"), E(2, 1, "b"), E(3, 2, "c")});
  rd.hard_state = HardState{2, 3, 2};
  ASSERT_TRUE(storage_->Persist(rd).ok());
  EXPECT_EQ(storage_->LastIndex(), 3u);
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->InitialState(), (HardState{2, 3, 2}));
  EXPECT_EQ(storage_->FirstIndex(), 1u);
  EXPECT_EQ(storage_->LastIndex(), 3u);
  EXPECT_EQ(*storage_->Term(0), 0u);
  EXPECT_EQ(*storage_->Term(3), 2u);
  EXPECT_EQ(storage_->Term(4).status().code(), StatusCode::kNotFound);
  auto all = storage_->Entries(1, 4, 1 << 20);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<Entry>{E(1, 1, "a"), E(2, 1, "b"), E(3, 2, "c")}));
}

TEST_F(WalStorageTest, UnsyncedEntriesMayBeLostButNeverTornIntoTheLog) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Append({E(1, 1, "kept")})).ok());
  ASSERT_TRUE(storage_->Persist(Append({E(2, 1, "lost")}, /*sync=*/false)).ok());
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->LastIndex(), 1u);
}

TEST_F(WalStorageTest, AConflictingSuffixIsReplacedDurably) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Append({E(1, 1), E(2, 1, "old"), E(3, 1, "old")})).ok());
  ASSERT_TRUE(storage_->Persist(Append({E(2, 2, "new")})).ok());
  EXPECT_EQ(storage_->LastIndex(), 2u);
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->LastIndex(), 2u);
  EXPECT_EQ((*storage_->Entries(2, 3, 100))[0], E(2, 2, "new"));
}

TEST_F(WalStorageTest, ACommitOnlyChangeIsNotWrittenButATermOrVoteChangeIs) {
  storage_ = Open();
  raft::Ready rd = Append({E(1, 1), E(2, 1)});
  rd.hard_state = HardState{1, 1, 0};
  ASSERT_TRUE(storage_->Persist(rd).ok());
  raft::Ready commit_only;
  commit_only.hard_state = HardState{1, 1, 2};
  ASSERT_TRUE(storage_->Persist(commit_only).ok());
  EXPECT_EQ(storage_->InitialState().commit, 2u) << "kept in memory";
  Crash();
  storage_ = Open();
  EXPECT_EQ(storage_->InitialState(), (HardState{1, 1, 0})) << "the stored commit lags, safely";
  raft::Ready new_term;
  new_term.hard_state = HardState{2, 0, 2};
  ASSERT_TRUE(storage_->Persist(new_term).ok());
  Crash();
  storage_ = Open();
  EXPECT_EQ(storage_->InitialState(), (HardState{2, 0, 2}));
}

TEST_F(WalStorageTest, BadReadsAndAppendsAreRefused) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Append({E(1, 1), E(2, 1)})).ok());
  EXPECT_EQ(storage_->Entries(0, 2, 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(storage_->Entries(2, 1, 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(storage_->Entries(1, 4, 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(storage_->Persist(Append({E(5, 1)})).code(), StatusCode::kInternal) << "a gap";
  EXPECT_EQ(storage_->LastIndex(), 2u);
  EXPECT_EQ(WalStorage::Open(&env_, WalStorageOptions{}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(WalStorageTest, EntriesRespectTheByteBoundButReturnAtLeastOne) {
  storage_ = Open();
  ASSERT_TRUE(
      storage_->Persist(Append({E(1, 1, std::string(100, 'x')), E(2, 1, std::string(100, 'y'))}))
          .ok());
  EXPECT_EQ(storage_->Entries(1, 3, 1)->size(), 1u);
  EXPECT_EQ(storage_->Entries(1, 3, 2 * EntrySize(E(1, 1, std::string(100, 'x'))))->size(), 2u);
}

TEST_F(WalStorageTest, ACorruptHardStateIsDataLoss) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Append({E(1, 1)})).ok());
  storage_.reset();
  {
    auto w = wal::Wal::Open(&env_, "/raft", wal::WalOptions{});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->SaveMeta("hardstate", "short").ok());
  }
  auto s = WalStorage::Open(&env_, WalStorageOptions{"/raft", 4096, true});
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << s.status().ToString();
}

raft::Ready Committing(std::vector<Entry> entries, uint64_t term) {
  raft::Ready rd;
  rd.hard_state = HardState{term, 1, entries.empty() ? 0 : entries.back().index};
  rd.entries = std::move(entries);
  rd.must_sync = true;
  return rd;
}

std::vector<Entry> Range(uint64_t lo, uint64_t hi, uint64_t term) {
  std::vector<Entry> out;
  for (uint64_t i = lo; i <= hi; ++i) out.push_back(E(i, term, "e" + std::to_string(i)));
  return out;
}

TEST_F(WalStorageTest, SaveSnapshotAndCompactDropsTheCoveredEntriesDurably) {
  storage_ = Open();
  raft::Ready rd = Committing(Range(1, 200, 2), 2);
  rd.hard_state->commit = 180;
  Status st = storage_->Persist(rd);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(storage_->SaveSnapshotAndCompact(0, "x").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(storage_->SaveSnapshotAndCompact(201, "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(storage_->SaveSnapshotAndCompact(190, "x").code(), StatusCode::kFailedPrecondition)
      << "beyond the commit index";
  ASSERT_TRUE(storage_->SaveSnapshotAndCompact(150, "image@150").ok());
  EXPECT_EQ(storage_->FirstIndex(), 151u);
  EXPECT_EQ(storage_->LastIndex(), 200u);
  EXPECT_EQ(*storage_->Term(150), 2u);
  EXPECT_EQ(storage_->Term(149).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(storage_->Entries(150, 152, 1000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*storage_->Entries(151, 152, 1000))[0], E(151, 2, "e151"));
  EXPECT_EQ(storage_->SaveSnapshotAndCompact(150, "again").code(), StatusCode::kFailedPrecondition);
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->FirstIndex(), 151u);
  EXPECT_EQ(storage_->LastIndex(), 200u);
  Result<Snapshot> snap = storage_->Snapshot();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->metadata, (SnapshotMetadata{150, 2}));
  EXPECT_EQ(snap->data, "image@150");
  // Appends continue after the kept entries, and a conflicting suffix is still replaced.
  ASSERT_TRUE(storage_->Persist(Append({E(199, 3, "new")})).ok());
  EXPECT_EQ(storage_->LastIndex(), 199u);
  // A node on this storage starts from the snapshot.
  Config c;
  c.id = 1;
  c.peers = {1};
  auto node = RawNode::Create(c, storage_.get());
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ((*node)->GetStatus().applied, 150u);
}

TEST_F(WalStorageTest, CompactionRemovesWholeSegments) {
  storage_ = Open();
  for (uint64_t i = 1; i <= 400; i += 50) {
    Status st = storage_->Persist(Committing(Range(i, i + 49, 1), 1));
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  storage_.reset();
  size_t before = 0;
  size_t after = 0;
  {
    auto w = wal::Wal::Open(&env_, "/raft", wal::WalOptions{4096});
    ASSERT_TRUE(w.ok());
    before = (*w)->segment_count();
  }
  storage_ = Open();
  // The stored commit index lags (written only with term/vote changes); the node reports it.
  raft::Ready commit;
  commit.hard_state = HardState{1, 1, 400};
  ASSERT_TRUE(storage_->Persist(commit).ok());
  ASSERT_TRUE(storage_->SaveSnapshotAndCompact(390, "img").ok());
  storage_.reset();
  {
    auto w = wal::Wal::Open(&env_, "/raft", wal::WalOptions{4096});
    ASSERT_TRUE(w.ok());
    after = (*w)->segment_count();
  }
  EXPECT_GT(before, 2u);
  EXPECT_LT(after, before);
  storage_ = Open();
  EXPECT_EQ(storage_->FirstIndex(), 391u);
  EXPECT_EQ(storage_->LastIndex(), 400u);
}

TEST_F(WalStorageTest, ARestoredSnapshotReplacesTheLog) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Committing(Range(1, 5, 1), 1)).ok());
  ASSERT_TRUE(storage_->Persist(Append({E(6, 1, "uncommitted")})).ok());
  raft::Ready rd;
  rd.snapshot = Snapshot{SnapshotMetadata{9, 3}, "leader image"};
  rd.hard_state = HardState{3, 0, 9};
  rd.entries = {E(10, 3, "ten")};
  rd.must_sync = true;
  ASSERT_TRUE(storage_->Persist(rd).ok());
  EXPECT_EQ(storage_->FirstIndex(), 10u);
  EXPECT_EQ(storage_->LastIndex(), 10u);
  // A snapshot that is not newer is a host bug, refused.
  EXPECT_EQ(storage_->Persist(rd).code(), StatusCode::kInternal);
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->FirstIndex(), 10u);
  EXPECT_EQ(storage_->LastIndex(), 10u);
  EXPECT_EQ(*storage_->Term(9), 3u);
  EXPECT_EQ((*storage_->Entries(10, 11, 100))[0], E(10, 3, "ten"));
  EXPECT_EQ(storage_->Snapshot()->data, "leader image");
}

TEST_F(WalStorageTest, TheConfigurationSurvivesInSnapshotsAndConfChangesInTheLog) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Committing(Range(1, 5, 1), 1)).ok());
  Entry cc{1, 6, EntryType::kConfChange, EncodeConfChange({ConfChangeType::kAddVoter, 4})};
  raft::Ready rd = Append({cc});
  rd.hard_state = HardState{1, 0, 6};
  ASSERT_TRUE(storage_->Persist(rd).ok());
  const ConfState at5{{1, 2, 3}, {9}};
  ASSERT_TRUE(storage_->SaveSnapshotAndCompact(5, "img", at5).ok());
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->snapshot_metadata().conf_state, at5);
  EXPECT_EQ(storage_->Snapshot()->metadata.conf_state, at5);
  EXPECT_EQ((*storage_->Entries(6, 7, 100))[0], cc);
  // The node rebuilds its configuration: the snapshot's, then the change after it; the
  // bootstrap configuration in Config is not used.
  Config c;
  c.id = 1;
  c.peers = {1};
  auto node = RawNode::Create(c, storage_.get());
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ((*node)->conf_state(), (ConfState{{1, 2, 3, 4}, {9}}));
  // A leader's snapshot carries its configuration to disk as well.
  raft::Ready restore;
  restore.snapshot = Snapshot{SnapshotMetadata{20, 2, ConfState{{2, 5}, {}}}, "leader image"};
  restore.hard_state = HardState{2, 0, 20};
  restore.must_sync = true;
  node->reset();
  ASSERT_TRUE(storage_->Persist(restore).ok());
  Crash();
  storage_ = Open();
  ASSERT_NE(storage_, nullptr);
  EXPECT_EQ(storage_->snapshot_metadata().conf_state, (ConfState{{2, 5}, {}}));
}

TEST_F(WalStorageTest, ACorruptSnapshotIsDataLoss) {
  storage_ = Open();
  ASSERT_TRUE(storage_->Persist(Committing(Range(1, 3, 1), 1)).ok());
  ASSERT_TRUE(storage_->SaveSnapshotAndCompact(2, "img").ok());
  storage_.reset();
  {
    auto w = wal::Wal::Open(&env_, "/raft", wal::WalOptions{});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->SaveMeta("snapshot", "short").ok());
  }
  auto s = WalStorage::Open(&env_, WalStorageOptions{"/raft", 4096, true});
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << s.status().ToString();
}

// An Env that performs the first `budget` mutating operations (file creation, append, sync,
// rename, removal, directory sync) and fails every later one: a crash "at operation k" once the
// MemEnv below then drops what was not durable.
class CrashPointEnv final : public Env {
 public:
  explicit CrashPointEnv(MemEnv* base) : base_(base) {}
  void set_budget(int64_t b) { budget_ = b; }
  bool exhausted() const { return budget_ < 0; }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    DTX_RETURN_IF_ERROR(Spend());
    auto f = base_->NewWritableFile(path);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(this, std::move(*f)));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    DTX_RETURN_IF_ERROR(Spend());
    auto f = base_->NewAppendableFile(path);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(this, std::move(*f)));
  }
  Result<std::string> ReadFile(const std::string& path) override { return base_->ReadFile(path); }
  Status RenameFile(const std::string& from, const std::string& to) override {
    DTX_RETURN_IF_ERROR(Spend());
    return base_->RenameFile(from, to);
  }
  Status RemoveFile(const std::string& path) override {
    DTX_RETURN_IF_ERROR(Spend());
    return base_->RemoveFile(path);
  }
  Status CreateDirs(const std::string& path) override { return base_->CreateDirs(path); }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }
  Result<uint64_t> FileSize(const std::string& path) override { return base_->FileSize(path); }
  Status SyncDir(const std::string& path) override {
    DTX_RETURN_IF_ERROR(Spend());
    return base_->SyncDir(path);
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    return base_->LockFile(path);
  }

 private:
  class File final : public WritableFile {
   public:
    File(CrashPointEnv* env, std::unique_ptr<WritableFile> f) : env_(env), f_(std::move(f)) {}
    Status Append(std::string_view data) override {
      DTX_RETURN_IF_ERROR(env_->Spend());
      return f_->Append(data);
    }
    Status Sync() override {
      DTX_RETURN_IF_ERROR(env_->Spend());
      return f_->Sync();
    }
    Status Close() override { return f_->Close(); }

   private:
    CrashPointEnv* env_;
    std::unique_ptr<WritableFile> f_;
  };

  Status Spend() {
    if (--budget_ < 0) return Unavailable("crash point reached");
    return Status::Ok();
  }

  MemEnv* base_;
  int64_t budget_ = INT64_MAX;
};

// What Open must find after a crash anywhere in an operation: the state before it or after it,
// never a mix, and every entry that was synced before it.
struct Expected {
  SnapshotMetadata snap;
  std::string snap_data;
  uint64_t last = 0;
};

void CheckRecovered(WalStorage& s, const std::vector<Expected>& allowed,
                    const std::vector<Entry>& log, const std::string& where) {
  const SnapshotMetadata md = s.snapshot_metadata();
  const Expected* match = nullptr;
  for (const Expected& e : allowed) {
    if (e.snap == md) match = &e;
  }
  ASSERT_NE(match, nullptr) << where << ": unexpected snapshot " << md.index << "@" << md.term;
  EXPECT_EQ(s.LastIndex(), match->last) << where;
  if (md.index > 0) {
    Result<Snapshot> snap = s.Snapshot();
    ASSERT_TRUE(snap.ok()) << where << ": " << snap.status().ToString();
    EXPECT_EQ(snap->data, match->snap_data) << where;
  }
  if (s.LastIndex() >= s.FirstIndex()) {
    auto got = s.Entries(s.FirstIndex(), s.LastIndex() + 1, UINT64_MAX);
    ASSERT_TRUE(got.ok()) << where;
    for (const Entry& e : *got) {
      ASSERT_LE(e.index, log.size()) << where;
      EXPECT_EQ(e, log[e.index - 1]) << where;
    }
  }
}

TEST_F(WalStorageTest, ACrashAnywhereInACompactionLosesNothing) {
  int completed_at = -1;
  for (int k = 0; k < 200 && completed_at < 0; ++k) {
    for (uint64_t seed = 0; seed < 3; ++seed) {
      const std::string where =
          "crash point " + std::to_string(k) + " seed " + std::to_string(seed);
      MemEnv base;
      CrashPointEnv env(&base);
      std::vector<Entry> log = Range(1, 120, 1);
      {
        auto s = WalStorage::Open(&env, WalStorageOptions{"/raft", 2048, true});
        ASSERT_TRUE(s.ok());
        ASSERT_TRUE((*s)->Persist(Committing(log, 1)).ok());
        ASSERT_TRUE((*s)->SaveSnapshotAndCompact(40, "img40").ok());
        env.set_budget(k);
        Status st = (*s)->SaveSnapshotAndCompact(100, "img100");
        if (st.ok() && !env.exhausted() && seed == 0) completed_at = k;
      }
      Rand rand(seed);
      base.SimulateCrash(rand);
      auto s = WalStorage::Open(&base, WalStorageOptions{"/raft", 2048, true});
      ASSERT_TRUE(s.ok()) << where << ": " << s.status().ToString();
      CheckRecovered(**s, {{{40, 1}, "img40", 120}, {{100, 1}, "img100", 120}}, log, where);
      if (HasFatalFailure()) return;
    }
  }
  // The snapshot file's replacement and the segment removal take several operations each.
  EXPECT_GE(completed_at, 6) << "the loop must reach a run without a crash";
}

TEST_F(WalStorageTest, ACrashAnywhereInASnapshotRestoreLosesNothing) {
  int completed_at = -1;
  for (int k = 0; k < 200 && completed_at < 0; ++k) {
    for (uint64_t seed = 0; seed < 3; ++seed) {
      const std::string where =
          "crash point " + std::to_string(k) + " seed " + std::to_string(seed);
      MemEnv base;
      CrashPointEnv env(&base);
      // The old log: 1..30 of term 1, then uncommitted 31..60 of term 2 that the leader's
      // snapshot at 50 (term 3) supersedes. After it, entry 51 of term 3.
      std::vector<Entry> old_log = Range(1, 30, 1);
      for (const Entry& e : Range(31, 60, 2)) old_log.push_back(e);
      std::vector<Entry> new_log = old_log;
      new_log.resize(50);
      new_log.push_back(E(51, 3, "e51"));
      {
        auto s = WalStorage::Open(&env, WalStorageOptions{"/raft", 1024, true});
        ASSERT_TRUE(s.ok());
        raft::Ready first = Committing(old_log, 2);
        first.hard_state->commit = 30;
        ASSERT_TRUE((*s)->Persist(first).ok());
        env.set_budget(k);
        raft::Ready rd;
        rd.snapshot = Snapshot{SnapshotMetadata{50, 3}, "leader50"};
        rd.hard_state = HardState{3, 0, 50};
        rd.entries = {E(51, 3, "e51")};
        rd.must_sync = true;
        Status st = (*s)->Persist(rd);
        if (st.ok() && !env.exhausted() && seed == 0) completed_at = k;
      }
      Rand rand(seed);
      base.SimulateCrash(rand);
      auto s = WalStorage::Open(&base, WalStorageOptions{"/raft", 1024, true});
      ASSERT_TRUE(s.ok()) << where << ": " << s.status().ToString();
      const SnapshotMetadata md = (*s)->snapshot_metadata();
      if (md.index == 0) {
        CheckRecovered(**s, {{{}, "", 60}}, old_log, where);
      } else {
        // The snapshot is there: the superseded log is gone, entry 51 may or may not be.
        CheckRecovered(**s, {{{50, 3}, "leader50", (*s)->LastIndex() == 51 ? 51u : 50u}}, new_log,
                       where);
      }
      if (HasFatalFailure()) return;
      // Whatever was recovered accepts further appends and opens again.
      ASSERT_TRUE((*s)->Persist(Append({E((*s)->LastIndex() + 1, 3, "more")})).ok()) << where;
    }
  }
  EXPECT_GE(completed_at, 12) << "the loop must reach a run without a crash";
}

TEST(EntryPayloadTest, RoundTripsAndRefusesMalformedPayloads) {
  Entry e = E(9, 4, std::string("v\0w", 3));
  auto back = DecodeEntryPayload(9, EncodeEntryPayload(e));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, e);
  EXPECT_EQ(DecodeEntryPayload(1, "short").status().code(), StatusCode::kDataLoss);
  std::string bad_type;
  PutU64(bad_type, 1);
  PutU8(bad_type, 99);
  EXPECT_EQ(DecodeEntryPayload(1, bad_type).status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace dtx::raft
