#include "base/clock.h"

#include <gtest/gtest.h>

namespace dtx {
namespace {

TEST(ManualClockTest, StartsWhereTold) {
  EXPECT_EQ(ManualClock().NowMs(), 0);
  EXPECT_EQ(ManualClock(1234).NowMs(), 1234);
}

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(100);
  EXPECT_EQ(clock.NowMs(), 100);
  EXPECT_EQ(clock.NowMs(), 100);
  clock.Advance(50);
  EXPECT_EQ(clock.NowMs(), 150);
  clock.Advance(0);
  EXPECT_EQ(clock.NowMs(), 150);
  clock.Set(10);
  EXPECT_EQ(clock.NowMs(), 10);
}

TEST(ManualClockTest, UsableThroughClockInterface) {
  ManualClock manual(5);
  const Clock& clock = manual;
  manual.Advance(5);
  EXPECT_EQ(clock.NowMs(), 10);
}

TEST(SystemClockTest, IsWallTimeAndDoesNotGoBackInOneRead) {
  SystemClock clock;
  const TimeMs a = clock.NowMs();
  const TimeMs b = clock.NowMs();
  // 2020-01-01 in ms since the epoch: a sanity bound that catches unit mistakes.
  EXPECT_GT(a, 1577836800000);
  EXPECT_LE(a, b + 1000);  // Tolerates a small NTP step between two reads.
}

}  // namespace
}  // namespace dtx
