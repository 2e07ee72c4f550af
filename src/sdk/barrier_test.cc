#include "dtx/barrier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace dtx::sdk {
namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

Query MakeQuery(std::string trans_type, std::string gid, std::string branch_id, std::string op) {
  return {{"dtm", "http://localhost:36789/api/dtmsvr"},
          {"trans_type", std::move(trans_type)},
          {"gid", std::move(gid)},
          {"branch_id", std::move(branch_id)},
          {"op", std::move(op)}};
}

TEST(BranchCallInfoTest, ParsesDtmQuery) {
  auto info = BranchCallInfo::FromQuery(MakeQuery("tcc", "g-1", "01", "try"));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(*info, (BranchCallInfo{"tcc", "g-1", "01", "try"}));
}

TEST(BranchCallInfoTest, RejectsMissingAndEmptyValues) {
  for (const char* name : {"trans_type", "gid", "branch_id", "op"}) {
    Query missing;
    Query empty;
    for (auto& [k, v] : MakeQuery("saga", "g", "01", "action")) {
      if (k != name) missing.emplace_back(k, v);
      empty.emplace_back(k, k == name ? "" : v);
    }
    auto r = BranchCallInfo::FromQuery(missing);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string("'") + name + "' is missing"),
              std::string::npos)
        << r.status().ToString();
    r = BranchCallInfo::FromQuery(empty);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(std::string("'") + name + "' is empty"), std::string::npos)
        << r.status().ToString();
  }
}

TEST(BranchCallInfoTest, RejectsInvalidValues) {
  struct Case {
    Query query;
    std::string expect;
  };
  Query dup = MakeQuery("saga", "g", "01", "action");
  dup.emplace_back("gid", "other");
  const std::vector<Case> cases = {
      {dup, "'gid' is given more than once"},
      {MakeQuery("sagax", "g", "01", "action"), "unknown trans_type 'sagax'"},
      {MakeQuery("saga", "g", "01", "undo"), "unknown op 'undo'"},
      {MakeQuery("saga", "g", "01", "try"), "op 'try' is not an op of trans_type 'saga'"},
      {MakeQuery("tcc", "g", "01", "compensate"), "not an op of trans_type 'tcc'"},
      {MakeQuery("msg", "g", "01", "cancel"), "not an op of trans_type 'msg'"},
      {MakeQuery("tcc", std::string(kMaxGidLength + 1, 'g'), "01", "try"), "'gid' is longer"},
      {MakeQuery("tcc", "g\n1", "01", "try"), "'gid' contains a control character"},
      {MakeQuery("tcc", "g", std::string(kMaxBranchIdLength + 1, '1'), "try"),
       "'branch_id' is longer"},
  };
  for (const auto& c : cases) {
    auto r = BranchCallInfo::FromQuery(c.query);
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().ToString();
  }
  EXPECT_TRUE(
      BranchCallInfo::FromQuery(MakeQuery("tcc", std::string(kMaxGidLength, 'g'), "01", "cancel"))
          .ok());
  EXPECT_TRUE(BranchCallInfo::FromQuery(MakeQuery("msg", "g", "00", "msg")).ok());
}

TEST(BarrierOpsTest, OriginOps) {
  EXPECT_EQ(OriginOp("cancel"), "try");
  EXPECT_EQ(OriginOp("compensate"), "action");
  EXPECT_EQ(OriginOp("rollback"), "action");
  EXPECT_EQ(OriginOp("confirm"), "");
  EXPECT_EQ(OriginOp("try"), "");
  EXPECT_EQ(OriginOp("action"), "");
}

// Runs against a real SQLite file in a fresh temporary directory, or against :memory:.
class BarrierTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "dtx-sdk-XXXXXX").string();
      ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
      dir_ = tmpl;
      path_ = (std::filesystem::path(dir_) / "bank.db").string();
    } else {
      path_ = ":memory:";
    }
    auto store = SqliteBarrierStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto tx = store_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE((*tx)
                    ->Exec("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER "
                           "NOT NULL CHECK (balance >= 0))")
                    .ok());
    ASSERT_TRUE((*tx)->Exec("INSERT INTO accounts VALUES (1, 100), (2, 100)").ok());
    ASSERT_TRUE((*tx)->Commit().ok());
  }

  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  int64_t Balance(int64_t id) {
    auto tx = store_->Begin();
    EXPECT_TRUE(tx.ok()) << tx.status().ToString();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query("SELECT balance FROM accounts WHERE id = ?", {id});
    EXPECT_TRUE(rows.ok() && rows->size() == 1);
    if (!rows.ok() || rows->size() != 1) return -1;
    return std::get<int64_t>((*rows)[0][0]);
  }

  int64_t BarrierRows(const std::string& gid) {
    auto tx = store_->Begin();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query("SELECT count(*) FROM dtx_barrier WHERE gid = ?", {gid});
    if (!rows.ok()) return -1;
    return std::get<int64_t>((*rows)[0][0]);
  }

  // Business that adds `delta` to account `id` and counts its runs.
  BusinessFn Add(int64_t id, int64_t delta, int* runs) {
    return [id, delta, runs](LocalTx& tx) -> Status {
      ++*runs;
      auto changed = tx.Exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", {delta, id});
      if (!changed.ok()) return changed.status();
      if (*changed != 1) return NotFound("no account " + std::to_string(id));
      return Status::Ok();
    };
  }

  static BranchCallInfo Info(std::string trans_type, std::string gid, std::string op) {
    return BranchCallInfo{std::move(trans_type), std::move(gid), "01", std::move(op)};
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<SqliteBarrierStore> store_;
};

TEST_P(BarrierTest, PurgeRemovesOnlyOldRowsByDatabaseClock) {
  int runs = 0;
  ASSERT_TRUE(Barrier(Info("saga", "old", "action")).Call(*store_, Add(1, -1, &runs)).ok());
  ASSERT_TRUE(Barrier(Info("saga", "new", "action")).Call(*store_, Add(1, -1, &runs)).ok());
  {
    auto tx = store_->Begin();
    ASSERT_TRUE(tx.ok());
    auto changed = (*tx)->Exec(
        "UPDATE dtx_barrier SET create_time = datetime('now', '-2 hours') WHERE gid = 'old'");
    ASSERT_TRUE(changed.ok());
    ASSERT_EQ(*changed, 1);
    ASSERT_TRUE((*tx)->Commit().ok());
  }
  auto purged = PurgeBarriers(*store_, 3600);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(*purged, 1u);
  EXPECT_EQ(BarrierRows("old"), 0);
  EXPECT_EQ(BarrierRows("new"), 1);
  EXPECT_EQ(PurgeBarriers(*store_, -1).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(BarrierTest, SqlErrorsAreValues) {
  auto tx = store_->Begin();
  ASSERT_TRUE(tx.ok());
  auto bad = (*tx)->Exec("UPDATE no_such_table SET x = 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no_such_table"), std::string::npos);
  EXPECT_EQ((*tx)->Exec("SELECT ?", {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*tx)->Exec("SELECT 1; SELECT 2").status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*tx)->Rollback().ok());
  EXPECT_EQ((*tx)->Exec("SELECT 1").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*tx)->Commit().code(), StatusCode::kFailedPrecondition);
}

// Tests that need a file: a second connection to it, or a reopen.
class BarrierFileTest : public BarrierTest {};

TEST_P(BarrierFileTest, BusyDatabaseIsUnavailableAndRunsNothing) {
  auto other = SqliteBarrierStore::Open(path_, SqliteOptions{.busy_timeout_ms = 0});
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  auto held = store_->Begin();
  ASSERT_TRUE(held.ok());
  int runs = 0;
  Status s = Barrier(Info("saga", "g10", "action")).Call(**other, Add(1, -5, &runs));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(runs, 0);
  ASSERT_TRUE((*held)->Commit().ok());
  s = Barrier(Info("saga", "g10", "action")).Call(**other, Add(1, -5, &runs));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(runs, 1);
}

TEST_P(BarrierFileTest, BarrierRowsSurviveReopen) {
  int runs = 0;
  ASSERT_TRUE(Barrier(Info("tcc", "g11", "cancel")).Call(*store_, Add(1, 5, &runs)).ok());
  store_.reset();
  auto reopened = SqliteBarrierStore::Open(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  store_ = std::move(*reopened);
  Status s = Barrier(Info("tcc", "g11", "try")).Call(*store_, Add(1, -5, &runs));
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(Balance(1), 100);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, BarrierTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "File" : "Memory"; });
INSTANTIATE_TEST_SUITE_P(Sqlite, BarrierFileTest, ::testing::Values(true),
                         [](const auto&) { return "File"; });

TEST(SqliteBarrierStoreTest, OpenFailureIsAValue) {
  auto store = SqliteBarrierStore::Open("/nonexistent-dtx-dir/sub/x.db");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
}

}  // namespace
}  // namespace dtx::sdk
