#include "base/env.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace dtx {
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

using Names = std::vector<std::string>;

// Writes data to a new file; syncs it if sync.
Status WriteNew(Env& env, const std::string& path, std::string_view data, bool sync) {
  auto f = env.NewWritableFile(path);
  if (!f.ok()) return f.status();
  DTX_RETURN_IF_ERROR((*f)->Append(data));
  if (sync) DTX_RETURN_IF_ERROR((*f)->Sync());
  return (*f)->Close();
}

std::string ReadOrError(Env& env, const std::string& path) {
  auto r = env.ReadFile(path);
  return r.ok() ? *r : "<" + r.status().ToString() + ">";
}

// ---------------------------------------------------------------------------------------------
// Contract tests run against both environments.

class EnvTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "posix") {
      std::string tmpl = (std::filesystem::temp_directory_path() / "dtx_env_test_XXXXXX").string();
      ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
      root_ = tmpl;
      env_ = Env::Posix();
    } else {
      mem_ = std::make_unique<MemEnv>();
      env_ = mem_.get();
      root_ = "/test";
      ASSERT_OK(env_->CreateDirs(root_));
    }
  }

  void TearDown() override {
    if (GetParam() == "posix" && !root_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
  }

  std::string Path(const std::string& name) const { return root_ + "/" + name; }

  std::unique_ptr<MemEnv> mem_;
  Env* env_ = nullptr;
  std::string root_;
};

TEST_P(EnvTest, WriteThenRead) {
  auto f = env_->NewWritableFile(Path("a"));
  ASSERT_OK(f);
  ASSERT_OK((*f)->Append("hello"));
  ASSERT_OK((*f)->Append(""));
  ASSERT_OK((*f)->Append(" world"));
  // Visible before Sync, like the page cache.
  EXPECT_EQ(ReadOrError(*env_, Path("a")), "hello world");
  ASSERT_OK((*f)->Sync());
  ASSERT_OK((*f)->Close());
  EXPECT_EQ(ReadOrError(*env_, Path("a")), "hello world");
  auto size = env_->FileSize(Path("a"));
  ASSERT_OK(size);
  EXPECT_EQ(*size, 11u);
}

TEST_P(EnvTest, BinaryDataRoundTrips) {
  std::string data;
  for (int i = 0; i < 70000; ++i) data.push_back(static_cast<char>(i * 7));
  ASSERT_OK(WriteNew(*env_, Path("bin"), data, true));
  EXPECT_EQ(ReadOrError(*env_, Path("bin")), data);
}

TEST_P(EnvTest, NewWritableFileTruncates) {
  ASSERT_OK(WriteNew(*env_, Path("a"), "long old content", true));
  ASSERT_OK(WriteNew(*env_, Path("a"), "new", true));
  EXPECT_EQ(ReadOrError(*env_, Path("a")), "new");
}

TEST_P(EnvTest, AppendableFileAppendsAndCreates) {
  {
    auto f = env_->NewAppendableFile(Path("log"));
    ASSERT_OK(f);
    ASSERT_OK((*f)->Append("one,"));
    ASSERT_OK((*f)->Close());
  }
  auto f = env_->NewAppendableFile(Path("log"));
  ASSERT_OK(f);
  ASSERT_OK((*f)->Append("two"));
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(ReadOrError(*env_, Path("log")), "one,two");
}

TEST_P(EnvTest, UseAfterCloseFailsAndCloseIsIdempotent) {
  auto f = env_->NewWritableFile(Path("a"));
  ASSERT_OK(f);
  ASSERT_OK((*f)->Close());
  EXPECT_CODE((*f)->Append("x"), StatusCode::kFailedPrecondition);
  EXPECT_CODE((*f)->Sync(), StatusCode::kFailedPrecondition);
  ASSERT_OK((*f)->Close());
}

TEST_P(EnvTest, MissingFileErrorsNameThePath) {
  auto r = env_->ReadFile(Path("missing"));
  EXPECT_CODE(r, StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(Path("missing")), std::string::npos) << r.status().ToString();
  EXPECT_CODE(env_->FileSize(Path("missing")), StatusCode::kNotFound);
  EXPECT_CODE(env_->RemoveFile(Path("missing")), StatusCode::kNotFound);
  EXPECT_CODE(env_->RenameFile(Path("missing"), Path("b")), StatusCode::kNotFound);
  EXPECT_CODE(env_->NewWritableFile(Path("no/such/dir/f")), StatusCode::kNotFound);
  EXPECT_CODE(env_->ListDir(Path("nodir")), StatusCode::kNotFound);
  EXPECT_CODE(env_->SyncDir(Path("nodir")), StatusCode::kNotFound);
}

TEST_P(EnvTest, DirectoryWhereFileExpected) {
  ASSERT_OK(env_->CreateDirs(Path("d")));
  EXPECT_FALSE(env_->ReadFile(Path("d")).ok());
  EXPECT_CODE(env_->FileSize(Path("d")), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(env_->NewWritableFile(Path("d")).ok());
}

TEST_P(EnvTest, WriteFileAtomicCreatesAndReplaces) {
  ASSERT_OK(env_->WriteFileAtomic(Path("meta"), "v1"));
  EXPECT_EQ(ReadOrError(*env_, Path("meta")), "v1");
  ASSERT_OK(env_->WriteFileAtomic(Path("meta"), "version two"));
  EXPECT_EQ(ReadOrError(*env_, Path("meta")), "version two");
  auto names = env_->ListDir(root_);
  ASSERT_OK(names);
  EXPECT_EQ(*names, Names{"meta"});  // No temp file left behind.
}

TEST_P(EnvTest, RenameReplacesTarget) {
  ASSERT_OK(WriteNew(*env_, Path("a"), "A", true));
  ASSERT_OK(WriteNew(*env_, Path("b"), "B", true));
  ASSERT_OK(env_->RenameFile(Path("a"), Path("b")));
  EXPECT_FALSE(env_->FileExists(Path("a")));
  EXPECT_EQ(ReadOrError(*env_, Path("b")), "A");
  ASSERT_OK(env_->CreateDirs(Path("sub")));
  ASSERT_OK(env_->RenameFile(Path("b"), Path("sub/c")));
  EXPECT_EQ(ReadOrError(*env_, Path("sub/c")), "A");
}

TEST_P(EnvTest, RemoveFile) {
  ASSERT_OK(WriteNew(*env_, Path("a"), "A", false));
  EXPECT_TRUE(env_->FileExists(Path("a")));
  ASSERT_OK(env_->RemoveFile(Path("a")));
  EXPECT_FALSE(env_->FileExists(Path("a")));
  EXPECT_CODE(env_->RemoveFile(Path("a")), StatusCode::kNotFound);
}

TEST_P(EnvTest, CreateDirsIsMkdirP) {
  ASSERT_OK(env_->CreateDirs(Path("x/y/z")));
  ASSERT_OK(env_->CreateDirs(Path("x/y/z")));  // Idempotent.
  EXPECT_TRUE(env_->FileExists(Path("x")));
  EXPECT_TRUE(env_->FileExists(Path("x/y/z")));
  ASSERT_OK(WriteNew(*env_, Path("x/y/z/f"), "data", true));
  EXPECT_EQ(ReadOrError(*env_, Path("x/y/z/f")), "data");
  ASSERT_OK(WriteNew(*env_, Path("file"), "", false));
  EXPECT_CODE(env_->CreateDirs(Path("file/sub")), StatusCode::kFailedPrecondition);
}

TEST_P(EnvTest, ListDirIsSortedAndShallow) {
  ASSERT_OK(WriteNew(*env_, Path("b"), "", false));
  ASSERT_OK(WriteNew(*env_, Path("a"), "", false));
  ASSERT_OK(env_->CreateDirs(Path("c/deep")));
  ASSERT_OK(WriteNew(*env_, Path("c/inner"), "", false));
  auto names = env_->ListDir(root_);
  ASSERT_OK(names);
  EXPECT_EQ(*names, (Names{"a", "b", "c"}));
  names = env_->ListDir(Path("c"));
  ASSERT_OK(names);
  EXPECT_EQ(*names, (Names{"deep", "inner"}));
  names = env_->ListDir(Path("c/deep"));
  ASSERT_OK(names);
  EXPECT_TRUE(names->empty());
}

TEST_P(EnvTest, FileExists) {
  EXPECT_TRUE(env_->FileExists(root_));
  EXPECT_FALSE(env_->FileExists(Path("f")));
  ASSERT_OK(WriteNew(*env_, Path("f"), "", false));
  EXPECT_TRUE(env_->FileExists(Path("f")));
}

TEST_P(EnvTest, SyncDir) {
  ASSERT_OK(WriteNew(*env_, Path("f"), "x", true));
  ASSERT_OK(env_->SyncDir(root_));
}

TEST_P(EnvTest, LockIsExclusiveUntilReleased) {
  auto first = env_->LockFile(Path("LOCK"));
  ASSERT_OK(first);
  auto second = env_->LockFile(Path("LOCK"));
  EXPECT_CODE(second, StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(Path("LOCK")), std::string::npos);
  auto other = env_->LockFile(Path("OTHER"));
  ASSERT_OK(other);
  first.value().reset();
  auto third = env_->LockFile(Path("LOCK"));
  ASSERT_OK(third);
  EXPECT_CODE(env_->LockFile(Path("no/dir/LOCK")), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Envs, EnvTest, testing::Values("posix", "mem"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

// ---------------------------------------------------------------------------------------------
// POSIX specifics.

TEST(PosixEnvTest, ErrorsCarryErrnoText) {
  auto r = Env::Posix()->ReadFile("/nonexistent-dtx-dir/file");
  EXPECT_CODE(r, StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent-dtx-dir/file"), std::string::npos);
  EXPECT_NE(r.status().message().find("No such file or directory"), std::string::npos)
      << r.status().ToString();
}

TEST(PosixEnvTest, IsOneInstance) { EXPECT_EQ(Env::Posix(), Env::Posix()); }

// ---------------------------------------------------------------------------------------------
// MemEnv: crash model and fault injection.

class MemEnvTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(env_.CreateDirs("/d")); }

  // An open file whose creation is durable; content "synced" is synced.
  std::unique_ptr<WritableFile> OpenSynced(const std::string& path) {
    auto f = env_.NewWritableFile(path);
    EXPECT_TRUE(f.ok());
    if (!f.ok()) return nullptr;
    EXPECT_TRUE(env_.SyncDir("/d").ok());
    EXPECT_TRUE((*f)->Append("synced").ok());
    EXPECT_TRUE((*f)->Sync().ok());
    return std::move(f).value();
  }

  MemEnv env_;
  Rand rand_{1};
};

constexpr MemEnv::CrashOptions kDropOnly{.drop_unsynced = true, .tear_last_write = false};
constexpr MemEnv::CrashOptions kKeepAll{.drop_unsynced = false, .tear_last_write = false};

TEST_F(MemEnvTest, UnsyncedDataLostSyncedKept) {
  auto f = OpenSynced("/d/f");
  ASSERT_NE(f, nullptr);
  ASSERT_OK(f->Append("+unsynced"));
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced+unsynced");
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced");
}

TEST_F(MemEnvTest, KeepAllKeepsUnsyncedDataAndEntries) {
  auto f = OpenSynced("/d/f");
  ASSERT_NE(f, nullptr);
  ASSERT_OK(f->Append("+more"));
  ASSERT_OK(WriteNew(env_, "/d/new", "n", false));
  env_.SimulateCrash(rand_, kKeepAll);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced+more");
  EXPECT_EQ(ReadOrError(env_, "/d/new"), "n");
  // What survived one crash is durable: a second crash keeps it.
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced+more");
  EXPECT_EQ(ReadOrError(env_, "/d/new"), "n");
}

TEST_F(MemEnvTest, TornWriteLeavesStrictPrefixOfTheRecord) {
  const std::string record = "0123456789";
  std::set<size_t> lengths;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    MemEnv env;
    ASSERT_OK(env.CreateDirs("/d"));
    auto f = env.NewWritableFile("/d/log");
    ASSERT_OK(f);
    ASSERT_OK(env.SyncDir("/d"));
    ASSERT_OK((*f)->Append("head"));
    ASSERT_OK((*f)->Sync());
    ASSERT_OK((*f)->Append(record));
    Rand rand(seed);
    env.SimulateCrash(rand);  // Defaults: drop unsynced, tear the interrupted write.
    std::string got = ReadOrError(env, "/d/log");
    ASSERT_GE(got.size(), 4u) << got;
    ASSERT_LT(got.size(), 4 + record.size()) << got;
    EXPECT_EQ(got, ("head" + record).substr(0, got.size()));
    lengths.insert(got.size());
  }
  EXPECT_GT(lengths.size(), 3u);  // The cut point really is random.
}

TEST_F(MemEnvTest, TearWithDropCutsTheFirstUnsyncedAppend) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto f = OpenSynced("/d/f");
    ASSERT_NE(f, nullptr);
    ASSERT_OK(f->Append("abcd"));
    ASSERT_OK(f->Append("efgh"));
    Rand rand(seed);
    env_.SimulateCrash(rand, {.drop_unsynced = true, .tear_last_write = true});
    std::string got = ReadOrError(env_, "/d/f");
    ASSERT_GE(got.size(), 6u);
    ASSERT_LT(got.size(), 10u) << got;
    EXPECT_EQ(got, std::string("syncedabcd").substr(0, got.size()));
  }
}

TEST_F(MemEnvTest, TearWithoutDropCutsTheLastAppend) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto f = OpenSynced("/d/f");
    ASSERT_NE(f, nullptr);
    ASSERT_OK(f->Append("abcd"));
    ASSERT_OK(f->Append("efgh"));
    Rand rand(seed);
    env_.SimulateCrash(rand, {.drop_unsynced = false, .tear_last_write = true});
    std::string got = ReadOrError(env_, "/d/f");
    ASSERT_GE(got.size(), 10u);
    ASSERT_LT(got.size(), 14u) << got;
    EXPECT_EQ(got, std::string("syncedabcdefgh").substr(0, got.size()));
  }
}

TEST_F(MemEnvTest, SyncedFileIsNotTorn) {
  auto f = OpenSynced("/d/f");
  ASSERT_NE(f, nullptr);
  env_.SimulateCrash(rand_);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced");
}

TEST_F(MemEnvTest, FileCreatedWithoutDirSyncDisappears) {
  ASSERT_OK(env_.CreateDirs("/e"));
  ASSERT_OK(WriteNew(env_, "/e/nosync", "data", true));  // Data synced, entry never.
  ASSERT_OK(WriteNew(env_, "/d/dirsync", "data", false));
  ASSERT_OK(env_.SyncDir("/d"));  // Entry synced, data not.
  ASSERT_OK(WriteNew(env_, "/d/both", "data", true));
  ASSERT_OK(WriteNew(env_, "/d/late", "data", true));
  ASSERT_OK(env_.RemoveFile("/d/late"));  // Created and removed between SyncDirs.
  ASSERT_OK(env_.SyncDir("/d"));
  ASSERT_OK(WriteNew(env_, "/d/after", "data", true));  // Created after the last SyncDir.
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_FALSE(env_.FileExists("/e/nosync"));
  EXPECT_FALSE(env_.FileExists("/d/after"));
  EXPECT_EQ(ReadOrError(env_, "/d/dirsync"), "");
  EXPECT_EQ(ReadOrError(env_, "/d/both"), "data");
  auto names = env_.ListDir("/d");
  ASSERT_OK(names);
  EXPECT_EQ(*names, (Names{"both", "dirsync"}));
  names = env_.ListDir("/e");
  ASSERT_OK(names);
  EXPECT_TRUE(names->empty());
}

TEST_F(MemEnvTest, SyncOfOtherDirectoryDoesNotCount) {
  ASSERT_OK(env_.CreateDirs("/e"));
  ASSERT_OK(WriteNew(env_, "/d/f", "data", true));
  ASSERT_OK(env_.SyncDir("/e"));
  ASSERT_OK(env_.SyncDir("/"));
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_FALSE(env_.FileExists("/d/f"));
  EXPECT_TRUE(env_.FileExists("/d"));  // Directories are durable at creation.
  EXPECT_TRUE(env_.FileExists("/e"));
}

TEST_F(MemEnvTest, RemoveWithoutDirSyncIsUndone) {
  ASSERT_OK(WriteNew(env_, "/d/f", "keep", true));
  ASSERT_OK(env_.SyncDir("/d"));
  ASSERT_OK(env_.RemoveFile("/d/f"));
  EXPECT_FALSE(env_.FileExists("/d/f"));
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "keep");
  ASSERT_OK(env_.RemoveFile("/d/f"));
  ASSERT_OK(env_.SyncDir("/d"));
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_FALSE(env_.FileExists("/d/f"));
}

TEST_F(MemEnvTest, RenameIsDurableOnlyAfterDirSync) {
  ASSERT_OK(WriteNew(env_, "/d/a", "A", true));
  ASSERT_OK(env_.SyncDir("/d"));
  ASSERT_OK(env_.RenameFile("/d/a", "/d/b"));
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/a"), "A");
  EXPECT_FALSE(env_.FileExists("/d/b"));
  ASSERT_OK(env_.RenameFile("/d/a", "/d/b"));
  ASSERT_OK(env_.SyncDir("/d"));
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_FALSE(env_.FileExists("/d/a"));
  EXPECT_EQ(ReadOrError(env_, "/d/b"), "A");
}

TEST_F(MemEnvTest, WriteFileAtomicSurvivesCrash) {
  ASSERT_OK(env_.WriteFileAtomic("/d/meta", "v1"));
  env_.SimulateCrash(rand_);
  EXPECT_EQ(ReadOrError(env_, "/d/meta"), "v1");
  ASSERT_OK(env_.WriteFileAtomic("/d/meta", "v2"));
  env_.SimulateCrash(rand_);
  EXPECT_EQ(ReadOrError(env_, "/d/meta"), "v2");
}

TEST_F(MemEnvTest, InterruptedAtomicWriteKeepsOldContent) {
  ASSERT_OK(env_.WriteFileAtomic("/d/meta", "old"));
  // The first half of WriteFileAtomic: temp written and synced, never renamed.
  ASSERT_OK(WriteNew(env_, "/d/meta.tmp", "new", true));
  env_.SimulateCrash(rand_);
  EXPECT_EQ(ReadOrError(env_, "/d/meta"), "old");
}

TEST_F(MemEnvTest, RewriteInPlaceLosesOldContentAtCrash) {
  ASSERT_OK(WriteNew(env_, "/d/f", "old", true));
  ASSERT_OK(env_.SyncDir("/d"));
  ASSERT_OK(WriteNew(env_, "/d/f", "new", false));  // Truncation is durable, data is not.
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "");
}

TEST_F(MemEnvTest, InjectedWriteError) {
  auto f = OpenSynced("/d/f");
  ASSERT_NE(f, nullptr);
  env_.SetWriteError(true);
  EXPECT_CODE(f->Append("x"), StatusCode::kUnavailable);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced");
  EXPECT_CODE(env_.WriteFileAtomic("/d/meta", "m"), StatusCode::kUnavailable);
  EXPECT_FALSE(env_.FileExists("/d/meta"));
  EXPECT_FALSE(env_.FileExists("/d/meta.tmp"));
  env_.SetWriteError(false);
  ASSERT_OK(f->Append("x"));
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "syncedx");
}

TEST_F(MemEnvTest, InjectedSyncErrorMakesNothingDurable) {
  auto f = OpenSynced("/d/f");
  ASSERT_NE(f, nullptr);
  ASSERT_OK(f->Append("+more"));
  env_.SetSyncError(true);
  EXPECT_CODE(f->Sync(), StatusCode::kUnavailable);
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced");
  env_.SetSyncError(false);
  auto g = env_.NewAppendableFile("/d/f");
  ASSERT_OK(g);
  ASSERT_OK((*g)->Append("+more"));
  ASSERT_OK((*g)->Sync());
  env_.SimulateCrash(rand_, kDropOnly);
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced+more");
}

TEST_F(MemEnvTest, HandlesFromBeforeCrashFailCleanly) {
  auto f = OpenSynced("/d/f");
  ASSERT_NE(f, nullptr);
  auto closed = env_.NewAppendableFile("/d/f");
  ASSERT_OK(closed);
  ASSERT_OK((*closed)->Close());
  env_.SimulateCrash(rand_);
  EXPECT_CODE(f->Append("x"), StatusCode::kFailedPrecondition);
  EXPECT_CODE(f->Sync(), StatusCode::kFailedPrecondition);
  EXPECT_CODE(f->Close(), StatusCode::kFailedPrecondition);
  ASSERT_OK((*closed)->Close());
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced");
  auto g = env_.NewAppendableFile("/d/f");
  ASSERT_OK(g);
  ASSERT_OK((*g)->Append("+after"));
  EXPECT_EQ(ReadOrError(env_, "/d/f"), "synced+after");
}

TEST_F(MemEnvTest, CrashReleasesLocksAndOldLockDoesNotReleaseNewOne) {
  auto old_lock = env_.LockFile("/d/LOCK");
  ASSERT_OK(old_lock);
  env_.SimulateCrash(rand_);
  auto new_lock = env_.LockFile("/d/LOCK");  // The crashed process no longer holds it.
  ASSERT_OK(new_lock);
  old_lock.value().reset();
  EXPECT_CODE(env_.LockFile("/d/LOCK"), StatusCode::kFailedPrecondition);
}

TEST_F(MemEnvTest, SameSeedSameOutcome) {
  auto run = [](uint64_t seed) {
    MemEnv env;
    EXPECT_TRUE(env.CreateDirs("/d").ok());
    std::vector<std::unique_ptr<WritableFile>> files;
    for (int i = 0; i < 5; ++i) {
      auto f = env.NewWritableFile("/d/f" + std::to_string(i));
      EXPECT_TRUE(f.ok());
      files.push_back(std::move(f).value());
    }
    EXPECT_TRUE(env.SyncDir("/d").ok());
    for (auto& f : files) EXPECT_TRUE(f->Append("0123456789abcdef").ok());
    Rand rand(seed);
    env.SimulateCrash(rand);
    std::vector<std::string> contents;
    for (int i = 0; i < 5; ++i) contents.push_back(ReadOrError(env, "/d/f" + std::to_string(i)));
    return contents;
  };
  EXPECT_EQ(run(77), run(77));
  EXPECT_NE(run(77), run(78));
}

TEST_F(MemEnvTest, PathsAreNormalised) {
  ASSERT_OK(WriteNew(env_, "/d//x/../f", "F", true));
  EXPECT_EQ(ReadOrError(env_, "/d/./f"), "F");
  EXPECT_EQ(ReadOrError(env_, "d/f"), "F");  // Relative to "/".
  auto names = env_.ListDir("/d/");
  ASSERT_OK(names);
  EXPECT_EQ(*names, Names{"f"});
  EXPECT_CODE(env_.ReadFile("/.."), StatusCode::kInvalidArgument);
  EXPECT_CODE(env_.NewWritableFile(""), StatusCode::kInvalidArgument);
  EXPECT_FALSE(env_.FileExists(""));
}

TEST_F(MemEnvTest, HandlesOutliveTheEnv) {
  std::unique_ptr<WritableFile> f;
  {
    MemEnv env;
    auto r = env.NewWritableFile("/f");
    ASSERT_OK(r);
    f = std::move(r).value();
  }
  EXPECT_TRUE(f->Append("x").ok());
  EXPECT_TRUE(f->Close().ok());
}

}  // namespace
}  // namespace dtx
