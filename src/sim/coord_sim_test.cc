#include "sim/coord_sim.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace dtx::sim {
namespace {

// DTX_SIM_SEED=N runs only seed N; DTX_SIM_SEEDS=K runs seeds 1..K (default 1000).
std::pair<uint64_t, uint64_t> SeedRange() {
  if (const char* one = std::getenv("DTX_SIM_SEED"); one != nullptr && *one != '\0') {
    uint64_t s = std::strtoull(one, nullptr, 10);
    return {s, s};
  }
  uint64_t count = 1000;
  if (const char* n = std::getenv("DTX_SIM_SEEDS"); n != nullptr && *n != '\0') {
    count = std::strtoull(n, nullptr, 10);
  }
  return {1, count};
}

std::string Describe(const SimOptions& o, const SimReport& r) {
  std::string out = "seed " + std::to_string(r.seed) + " (replay: " + ReplayCommand(o) + ")\n";
  for (const auto& v : r.violations) out += "    " + v + "\n";
  return out;
}

TEST(CoordSim, SeedsHoldAllInvariants) {
  auto [first, last] = SeedRange();
  std::string failures;
  int failed_seeds = 0;
  SimStats total;
  for (uint64_t seed = first; seed <= last; ++seed) {
    SimOptions o;
    o.seed = seed;
    SimReport r = RunCoordSim(o);
    total.crashes += r.stats.crashes;
    total.succeeded += r.stats.succeeded;
    total.failed += r.stats.failed;
    total.faults += r.stats.faults;
    total.msgs += r.stats.msgs;
    if (!r.ok()) {
      ++failed_seeds;
      failures += Describe(o, r);
    }
  }
  EXPECT_EQ(failed_seeds, 0) << failures;
  // The runs must actually exercise the interesting paths, or passing means nothing.
  if (last - first >= 50) {
    EXPECT_GT(total.crashes, 0);
    EXPECT_GT(total.succeeded, 0);
    EXPECT_GT(total.failed, 0);
    EXPECT_GT(total.faults, 0);
    EXPECT_GT(total.msgs, 0);
  }
}

// Fewer seeds, many more concurrent transactions per run: more interleavings per crash.
TEST(CoordSim, HeavyRunsHoldAllInvariants) {
  auto [first, last] = SeedRange();
  last = first + (last - first) / 10;
  std::string failures;
  for (uint64_t seed = first; seed <= last; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.txns = 80;
    SimReport r = RunCoordSim(o);
    if (!r.ok()) failures += Describe(o, r);
  }
  EXPECT_TRUE(failures.empty()) << failures;
}

TEST(CoordSim, SameSeedGivesIdenticalTrace) {
  SimOptions o;
  o.seed = 4242;
  o.trace = true;
  SimReport a = RunCoordSim(o);
  SimReport b = RunCoordSim(o);
  ASSERT_FALSE(a.trace.empty());
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(a.violations, b.violations);
  EXPECT_EQ(FormatStats(a), FormatStats(b));
}

TEST(CoordSim, DifferentSeedsDiffer) {
  SimOptions o;
  o.trace = true;
  o.seed = 1;
  SimReport a = RunCoordSim(o);
  o.seed = 2;
  SimReport b = RunCoordSim(o);
  EXPECT_NE(a.trace, b.trace);
}

TEST(CoordSim, TraceOnlyWhenAsked) {
  SimOptions o;
  o.seed = 3;
  SimReport r = RunCoordSim(o);
  EXPECT_TRUE(r.trace.empty());
  EXPECT_GT(r.stats.events, 0u);
}

TEST(CoordSim, QuietRunFinishesEverything) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.crashes = false;
    o.faults = false;
    SimReport r = RunCoordSim(o);
    EXPECT_TRUE(r.ok()) << Describe(o, r);
    EXPECT_EQ(r.stats.crashes, 0);
    EXPECT_EQ(r.stats.faults, 0);
    EXPECT_EQ(r.stats.unfinished, 0);
    EXPECT_GT(r.stats.succeeded, 0) << FormatStats(r);
  }
}

// Runs seeds 1..max with a broken variant and returns the first report with violations.
SimReport FirstViolation(SimOptions o, uint64_t max_seed) {
  SimReport r;
  for (uint64_t seed = 1; seed <= max_seed; ++seed) {
    o.seed = seed;
    r = RunCoordSim(o);
    if (!r.ok()) return r;
  }
  return r;
}

TEST(CoordSim, CatchesCallsAndRepliesBeforePersist) {
  SimOptions o;
  o.break_persist_before_send = true;
  SimReport r = FirstViolation(o, 50);
  ASSERT_FALSE(r.ok()) << "no seed in 1..50 caught a driver that sends before persisting";
  bool durability = false;
  for (const auto& v : r.violations) {
    durability = durability || v.find("before the transaction was durable") != std::string::npos ||
                 v.find("while the durable status was") != std::string::npos;
  }
  EXPECT_TRUE(durability) << Describe(o, r);
}

TEST(CoordSim, CatchesDroppedDurableWrites) {
  SimOptions o;
  o.break_drop_writes = true;
  SimReport r = FirstViolation(o, 50);
  EXPECT_FALSE(r.ok()) << "no seed in 1..50 caught a disk that drops writes";
}

TEST(CoordSim, CatchesParticipantsWithoutBarrier) {
  SimOptions o;
  o.break_no_barrier = true;
  SimReport r = FirstViolation(o, 50);
  ASSERT_FALSE(r.ok()) << "no seed in 1..50 caught participants without a barrier";
  bool effect = false;
  for (const auto& v : r.violations) {
    effect = effect || v.find("times") != std::string::npos ||
             v.find("net effect") != std::string::npos ||
             v.find("without its action") != std::string::npos;
  }
  EXPECT_TRUE(effect) << Describe(o, r);
}

TEST(CoordSim, ReplayCommandNamesTheSeedAndFlags) {
  SimOptions o;
  o.seed = 77;
  EXPECT_EQ(ReplayCommand(o), "dtxsim coord --seed 77 --trace");
  o.txns = 5;
  o.crashes = false;
  EXPECT_EQ(ReplayCommand(o), "dtxsim coord --seed 77 --txns 5 --no-crashes --trace");
}

}  // namespace
}  // namespace dtx::sim
