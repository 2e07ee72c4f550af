#include "kv/state_machine.h"

#include <gtest/gtest.h>

namespace dtx::kv {
namespace {

TEST(StateMachineTest, PutDeleteAndCasFollowTheirContracts) {
  StateMachine sm;
  EXPECT_FALSE(sm.Apply({CommandType::kPut, "k", "v1", std::nullopt}).existed);
  EXPECT_TRUE(sm.Apply({CommandType::kPut, "k", "v2", std::nullopt}).existed);
  EXPECT_EQ(sm.Get("k"), "v2");

  ApplyResult miss = sm.Apply({CommandType::kCas, "k", "v3", std::string("v1")});
  EXPECT_FALSE(miss.swapped);
  EXPECT_EQ(miss.current, "v2");
  EXPECT_EQ(sm.Get("k"), "v2");
  EXPECT_TRUE(sm.Apply({CommandType::kCas, "k", "v3", std::string("v2")}).swapped);
  EXPECT_EQ(sm.Get("k"), "v3");

  EXPECT_FALSE(sm.Apply({CommandType::kCas, "k", "x", std::nullopt}).swapped)
      << "expect absent, but present";
  EXPECT_TRUE(sm.Apply({CommandType::kDelete, "k", "", std::nullopt}).existed);
  EXPECT_FALSE(sm.Apply({CommandType::kDelete, "k", "", std::nullopt}).existed);
  EXPECT_EQ(sm.Get("k"), std::nullopt);
  ApplyResult absent = sm.Apply({CommandType::kCas, "k", "new", std::string("v3")});
  EXPECT_FALSE(absent.swapped);
  EXPECT_EQ(absent.current, std::nullopt);
  EXPECT_TRUE(sm.Apply({CommandType::kCas, "k", "new", std::nullopt}).swapped);
  EXPECT_EQ(sm.Get("k"), "new");
  EXPECT_EQ(sm.size(), 1u);
  EXPECT_EQ(sm.bytes(), 4u);
}

TEST(StateMachineTest, BytesFollowEveryChange) {
  StateMachine sm;
  sm.Apply({CommandType::kPut, "ab", "1234", std::nullopt});
  sm.Apply({CommandType::kPut, "c", "1", std::nullopt});
  EXPECT_EQ(sm.bytes(), 8u);
  sm.Apply({CommandType::kPut, "ab", "1", std::nullopt});
  EXPECT_EQ(sm.bytes(), 5u);
  sm.Apply({CommandType::kCas, "c", "12345", std::string("1")});
  EXPECT_EQ(sm.bytes(), 9u);
  sm.Apply({CommandType::kDelete, "ab", "", std::nullopt});
  EXPECT_EQ(sm.bytes(), 6u);
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

TEST(StateMachineTest, ImagesRestoreTheSameMapAndRefuseCorruption) {
  StateMachine sm;
  for (int i = 0; i < 100; ++i) {
    sm.Apply({CommandType::kPut, "k" + std::to_string(i), std::string(i, 'v'), std::nullopt});
  }
  const std::string image = sm.Serialize();
  StateMachine copy;
  copy.Apply({CommandType::kPut, "stale", "x", std::nullopt});
  ASSERT_TRUE(copy.Restore(image).ok());
  EXPECT_EQ(copy.size(), 100u);
  EXPECT_EQ(copy.bytes(), sm.bytes());
  EXPECT_EQ(copy.Get("k42"), std::string(42, 'v'));
  EXPECT_EQ(copy.Get("stale"), std::nullopt) << "a restore replaces the map";
  EXPECT_EQ(copy.Serialize().size(), image.size());

  for (size_t n : {size_t{0}, size_t{1}, size_t{9}, image.size() / 2, image.size() - 1}) {
    EXPECT_EQ(copy.Restore(image.substr(0, n)).code(), StatusCode::kDataLoss) << n;
  }
  std::string bad_version = image;
  bad_version[0] = 7;
  EXPECT_FALSE(copy.Restore(bad_version).ok());
  std::string huge_count = image;
  huge_count[8] = '\x7f';
  EXPECT_FALSE(copy.Restore(huge_count).ok());
  EXPECT_FALSE(copy.Restore(image + "x").ok()) << "trailing bytes";
  EXPECT_EQ(copy.size(), 100u) << "a refused image changes nothing";

  StateMachine empty;
  ASSERT_TRUE(copy.Restore(empty.Serialize()).ok());
  EXPECT_EQ(copy.size(), 0u);
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
