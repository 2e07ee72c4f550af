#include "base/coding.h"

#include <gtest/gtest.h>

namespace dtx {
namespace {

TEST(CodingTest, ValuesRoundTripInOrder) {
  std::string s;
  PutU8(s, 0xab);
  PutU32(s, 0xdeadbeef);
  PutU64(s, 0x0123456789abcdefull);
  PutBytes(s, std::string("a\0b", 3));
  PutBytes(s, "");
  s.append("tail");
  ByteReader r(s);
  EXPECT_EQ(r.U8(), 0xab);
  EXPECT_EQ(r.U32(), 0xdeadbeefu);
  EXPECT_EQ(r.U64(), 0x0123456789abcdefull);
  EXPECT_EQ(r.Bytes(), std::string_view("a\0b", 3));
  EXPECT_EQ(r.Bytes(), "");
  EXPECT_FALSE(r.done());
  EXPECT_EQ(r.Rest(), "tail");
  EXPECT_TRUE(r.done());
}

TEST(CodingTest, IsLittleEndian) {
  std::string s;
  PutU32(s, 0x01020304);
  EXPECT_EQ(s, std::string("\x04\x03\x02\x01", 4));
}

TEST(CodingTest, EveryTruncationFailsAndLatches) {
  std::string s;
  PutU64(s, 7);
  PutBytes(s, "hello");
  for (size_t n = 0; n < s.size(); ++n) {
    ByteReader r(std::string_view(s).substr(0, n));
    (void)r.U64();
    (void)r.Bytes();
    EXPECT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.U64(), 0u) << "reads after a failure return zero";
    EXPECT_FALSE(r.done());
  }
}

TEST(CodingTest, AHugeLengthIsRefusedWithoutReadingIt) {
  std::string s;
  PutU64(s, ~uint64_t{0});
  s.append("xy");
  ByteReader r(s);
  EXPECT_TRUE(r.Bytes().empty());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

}  // namespace
}  // namespace dtx
