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
