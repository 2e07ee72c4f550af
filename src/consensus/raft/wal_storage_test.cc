#include "consensus/raft/wal_storage.h"

#include <gtest/gtest.h>

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
