#include "kv/state_machine.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <thread>

namespace dtx::kv {
namespace {

namespace fs = std::filesystem;

class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "dtxkv-state-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<StateMachine> OpenAt(const std::string& name) {
    auto sm = StateMachine::Open(root_ + "/" + name);
    EXPECT_TRUE(sm.ok()) << sm.status().ToString();
    return sm.ok() ? std::move(sm).value() : nullptr;
  }

  static ApplyResult MustApply(StateMachine& sm, const Command& c) {
    auto r = sm.Apply(sm.applied() + 1, c);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ApplyResult{};
  }
  static std::optional<std::string> MustGet(const StateMachine& sm, std::string_view key) {
    auto v = sm.Get(key);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : std::nullopt;
  }
  static Command Put(std::string key, std::string value) {
    return {CommandType::kPut, std::move(key), std::move(value), std::nullopt};
  }

  std::string root_;
};

TEST_F(StateMachineTest, PutDeleteAndCasFollowTheirContracts) {
  auto sm = OpenAt("a");
  ASSERT_NE(sm, nullptr);
  EXPECT_FALSE(MustApply(*sm, Put("k", "v1")).existed);
  EXPECT_TRUE(MustApply(*sm, Put("k", "v2")).existed) << "a pending write is seen by the next";
  EXPECT_EQ(MustGet(*sm, "k"), std::nullopt) << "Get sees committed batches only";
  ASSERT_TRUE(sm->Commit().ok());
  EXPECT_EQ(MustGet(*sm, "k"), "v2");

  ApplyResult miss = MustApply(*sm, {CommandType::kCas, "k", "v3", std::string("v1")});
  EXPECT_FALSE(miss.swapped);
  EXPECT_EQ(miss.current, "v2");
  EXPECT_TRUE(MustApply(*sm, {CommandType::kCas, "k", "v3", std::string("v2")}).swapped);
  EXPECT_FALSE(MustApply(*sm, {CommandType::kCas, "k", "x", std::nullopt}).swapped)
      << "expect absent, but present";
  ASSERT_TRUE(sm->Commit().ok());
  EXPECT_EQ(MustGet(*sm, "k"), "v3");

  EXPECT_TRUE(MustApply(*sm, {CommandType::kDelete, "k", "", std::nullopt}).existed);
  EXPECT_FALSE(MustApply(*sm, {CommandType::kDelete, "k", "", std::nullopt}).existed);
  ApplyResult absent = MustApply(*sm, {CommandType::kCas, "k", "new", std::string("v3")});
  EXPECT_FALSE(absent.swapped);
  EXPECT_EQ(absent.current, std::nullopt);
  EXPECT_TRUE(MustApply(*sm, {CommandType::kCas, "k", "new", std::nullopt}).swapped);
  ASSERT_TRUE(sm->Commit().ok());
  EXPECT_EQ(MustGet(*sm, "k"), "new");
  EXPECT_EQ(sm->size(), 1u);
  EXPECT_EQ(sm->bytes(), 4u);
  EXPECT_EQ(sm->applied(), 9u);
}

TEST_F(StateMachineTest, KeysAndBytesFollowEveryChange) {
  auto sm = OpenAt("a");
  ASSERT_NE(sm, nullptr);
  MustApply(*sm, Put("ab", "1234"));
  MustApply(*sm, Put("c", "1"));
  EXPECT_EQ(sm->bytes(), 8u);
  MustApply(*sm, Put("ab", "1"));
  EXPECT_EQ(sm->bytes(), 5u);
  MustApply(*sm, {CommandType::kCas, "c", "12345", std::string("1")});
  EXPECT_EQ(sm->bytes(), 9u);
  MustApply(*sm, {CommandType::kDelete, "ab", "", std::nullopt});
  EXPECT_EQ(sm->bytes(), 6u);
  EXPECT_EQ(sm->size(), 1u);
}

TEST_F(StateMachineTest, ACleanReopenKeepsTheStateAtItsAppliedIndex) {
  {
    auto sm = OpenAt("a");
    ASSERT_NE(sm, nullptr);
    for (int i = 0; i < 50; ++i) MustApply(*sm, Put("k" + std::to_string(i), "v"));
    sm->Skip(51);  // an entry without a command (a leader's no-op)
    ASSERT_TRUE(sm->Commit().ok());
  }
  auto sm = OpenAt("a");
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->applied(), 51u);
  EXPECT_EQ(sm->size(), 50u);
  EXPECT_EQ(sm->bytes(), 10u * 2 + 40u * 3 + 50u);  // keys "k0".."k49", values "v"
  EXPECT_EQ(MustGet(*sm, "k49"), "v");
}

// The child half of the crash tests: a fresh process (fork + exec of this binary: RocksDB's
// thread pool does not survive a bare fork) that works on DTX_STATE_CHILD_DIR and exits without
// closing the database, as a crash would. It runs as a global test environment, before any test.
class CrashChild : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* dir = std::getenv("DTX_STATE_CHILD_DIR");
    const char* mode = std::getenv("DTX_STATE_CHILD_MODE");
    if (dir == nullptr || mode == nullptr) return;
    auto sm = StateMachine::Open(dir);
    if (!sm.ok()) _exit(2);
    if (std::string_view(mode) == "apply") {
      for (uint64_t i = 1; i <= 30; ++i) {
        Command c{CommandType::kPut, "k", std::to_string(i), std::nullopt};
        if (!(*sm)->Apply(i, c).ok() || !(*sm)->Commit().ok()) _exit(3);
        if (i == 20 && !(*sm)->Persist().ok()) _exit(4);
      }
    } else {
      const std::string image = std::getenv("DTX_STATE_CHILD_IMAGE");
      std::string bytes(image.size() / 2, '\0');
      for (size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<char>(std::stoi(image.substr(2 * i, 2), nullptr, 16));
      }
      if (!(*sm)->Restore(bytes, 500).ok()) _exit(5);
    }
    _exit(0);
  }
};
[[maybe_unused]] ::testing::Environment* const kCrashChild =
    ::testing::AddGlobalTestEnvironment(new CrashChild);

// Runs CrashChild in a new process; returns its exit code.
int RunChild(const std::string& dir, const std::string& mode, const std::string& image = "") {
  std::string hex;
  for (unsigned char c : image) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  const pid_t child = fork();
  if (child == 0) {
    setenv("DTX_STATE_CHILD_DIR", dir.c_str(), 1);
    setenv("DTX_STATE_CHILD_MODE", mode.c_str(), 1);
    setenv("DTX_STATE_CHILD_IMAGE", hex.c_str(), 1);
    execl("/proc/self/exe", "kv_state_machine_test", "--gtest_filter=LocalSnapshotMarkerTest.*",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int wstatus = 0;
  if (child < 0 || waitpid(child, &wstatus, 0) != child || !WIFEXITED(wstatus)) return -1;
  return WEXITSTATUS(wstatus);
}

// A process that dies without closing the database loses the batches committed after the last
// Persist (there is no RocksDB WAL), but never part of one: the state comes back exactly at the
// persisted index, which the Raft log still covers.
TEST_F(StateMachineTest, ACrashKeepsEverythingPersistedAndAConsistentPrefix) {
  ASSERT_EQ(RunChild(root_ + "/crash", "apply"), 0);
  auto sm = OpenAt("crash");
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->applied(), 20u);
  EXPECT_EQ(MustGet(*sm, "k"), "20");
  EXPECT_EQ(sm->size(), 1u);
}

TEST_F(StateMachineTest, AViewSerializesTheStateAtItsIndexWhileApplyingGoesOn) {
  auto sm = OpenAt("a");
  ASSERT_NE(sm, nullptr);
  for (int i = 0; i < 100; ++i) MustApply(*sm, Put("k" + std::to_string(i), std::string(i, 'v')));
  ASSERT_TRUE(sm->Commit().ok());
  auto view = sm->Pin();
  EXPECT_EQ(view->index(), 100u);
  const uint64_t bytes_at_view = sm->bytes();

  // Serialize and Persist on another thread while this one keeps applying.
  Result<std::string> image = Internal("not serialized yet");
  Status persisted;
  std::thread worker([&] {
    image = sm->Serialize(*view);
    persisted = sm->Persist();
  });
  for (int i = 0; i < 200; ++i) {
    MustApply(*sm, Put("k" + std::to_string(i % 150), "changed"));
    ASSERT_TRUE(sm->Commit().ok());
  }
  MustApply(*sm, {CommandType::kDelete, "k7", "", std::nullopt});
  ASSERT_TRUE(sm->Commit().ok());
  worker.join();
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_TRUE(persisted.ok()) << persisted.ToString();

  auto copy = OpenAt("b");
  ASSERT_NE(copy, nullptr);
  MustApply(*copy, Put("stale", "x"));
  ASSERT_TRUE(copy->Commit().ok());
  ASSERT_TRUE(copy->Restore(*image, view->index()).ok());
  EXPECT_EQ(copy->applied(), 100u);
  EXPECT_EQ(copy->size(), 100u);
  EXPECT_EQ(copy->bytes(), bytes_at_view);
  EXPECT_EQ(MustGet(*copy, "k42"), std::string(42, 'v')) << "the view, not the later state";
  EXPECT_EQ(MustGet(*copy, "k7"), std::string(7, 'v'));
  EXPECT_EQ(MustGet(*copy, "k120"), std::nullopt);
  EXPECT_EQ(MustGet(*copy, "stale"), std::nullopt) << "a restore replaces the state";
}

TEST_F(StateMachineTest, RestoreIsDurableAndRefusesCorruptionWithoutChangingAnything) {
  std::string image;
  {
    auto sm = OpenAt("a");
    ASSERT_NE(sm, nullptr);
    for (int i = 0; i < 100; ++i) MustApply(*sm, Put("k" + std::to_string(i), "v"));
    ASSERT_TRUE(sm->Commit().ok());
    auto serialized = sm->Serialize(*sm->Pin());
    ASSERT_TRUE(serialized.ok());
    image = *serialized;
  }
  auto copy = OpenAt("b");
  ASSERT_NE(copy, nullptr);
  MustApply(*copy, Put("mine", "1"));
  ASSERT_TRUE(copy->Commit().ok());
  for (size_t n : {size_t{0}, size_t{1}, size_t{9}, image.size() / 2, image.size() - 1}) {
    EXPECT_EQ(copy->Restore(image.substr(0, n), 500).code(), StatusCode::kDataLoss) << n;
  }
  std::string bad_version = image;
  bad_version[0] = 7;
  EXPECT_FALSE(copy->Restore(bad_version, 500).ok());
  std::string huge_count = image;
  huge_count[8] = '\x7f';
  EXPECT_FALSE(copy->Restore(huge_count, 500).ok());
  EXPECT_FALSE(copy->Restore(image + "x", 500).ok()) << "trailing bytes";
  EXPECT_FALSE(copy->Restore(LocalSnapshotMarker(500), 500).ok()) << "a marker is no image";
  EXPECT_EQ(copy->applied(), 1u);
  EXPECT_EQ(MustGet(*copy, "mine"), "1") << "a refused image changes nothing";

  copy.reset();
  // Durable on return: a process that exits right after the restore, without closing, keeps it.
  ASSERT_EQ(RunChild(root_ + "/b", "restore", image), 0);
  auto reopened = OpenAt("b");
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->applied(), 500u);
  EXPECT_EQ(reopened->size(), 100u);
  EXPECT_EQ(MustGet(*reopened, "k99"), "v");
  EXPECT_EQ(MustGet(*reopened, "mine"), std::nullopt);
}

TEST_F(StateMachineTest, ASecondOpenOfTheSameDirectoryIsRefused) {
  auto sm = OpenAt("a");
  ASSERT_NE(sm, nullptr);
  auto again = StateMachine::Open(root_ + "/a");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("in use"), std::string::npos)
      << again.status().ToString();
}

TEST(LocalSnapshotMarkerTest, IsRecognizedAndDistinctFromImages) {
  EXPECT_TRUE(IsLocalSnapshotMarker(LocalSnapshotMarker(42)));
  EXPECT_FALSE(IsLocalSnapshotMarker(""));
  EXPECT_FALSE(IsLocalSnapshotMarker(LocalSnapshotMarker(42) + "x"));
  std::string empty_image(9, '\0');
  empty_image[0] = 1;  // version 1, zero pairs
  EXPECT_FALSE(IsLocalSnapshotMarker(empty_image));
}

TEST(CommandCodecTest, RoundTripsAndRefusesAnythingElse) {
  const Command commands[] = {
      {CommandType::kPut, "key", std::string("v\0al", 4), std::nullopt},
      {CommandType::kDelete, "key", "", std::nullopt},
      {CommandType::kCas, "key", "new", std::nullopt},
      {CommandType::kCas, "key", "new", std::string("")},
  };
  for (const Command& c : commands) {
    const std::string bytes = EncodeCommand(c);
    auto back = DecodeCommand(bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, c);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_EQ(DecodeCommand(bytes.substr(0, n)).status().code(), StatusCode::kDataLoss) << n;
    }
    EXPECT_FALSE(DecodeCommand(bytes + "x").ok()) << "trailing bytes";
  }
  std::string bad_type = EncodeCommand(commands[0]);
  bad_type[0] = 9;
  EXPECT_FALSE(DecodeCommand(bad_type).ok());
  EXPECT_FALSE(DecodeCommand("").ok()) << "an empty entry (a leader's no-op) is not a command";
}

TEST(ValidationTest, KeysAndValuesAreBounded) {
  EXPECT_TRUE(ValidateKey("a/b c").ok());
  EXPECT_EQ(ValidateKey("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateKey(std::string(kMaxKeyBytes + 1, 'k')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateKey(std::string("a\0b", 3)).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateValue("").ok());
  EXPECT_EQ(ValidateValue(std::string(kMaxValueBytes + 1, 'v')).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dtx::kv
