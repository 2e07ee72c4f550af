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
    total.tccs += r.stats.tccs;
    total.xas += r.stats.xas;
    total.branch_txns_succeeded += r.stats.branch_txns_succeeded;
    total.branch_txns_failed += r.stats.branch_txns_failed;
    total.branches_registered += r.stats.branches_registered;
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
    EXPECT_GT(total.tccs, 0);
    EXPECT_GT(total.xas, 0);
    EXPECT_GT(total.branch_txns_succeeded, 0);
    EXPECT_GT(total.branch_txns_failed, 0);
    EXPECT_GT(total.branches_registered, 0);
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

// TCC/XA clients have their own random stream: adding them leaves the saga/msg workload alone,
// and without them a run is the saga/msg-only run.
TEST(CoordSim, BranchTxnsLeaveTheSagaMsgWorkloadAlone) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimOptions with;
    with.seed = seed;
    SimOptions without = with;
    without.branch_txns = 0;
    SimReport a = RunCoordSim(with);
    SimReport b = RunCoordSim(without);
    EXPECT_EQ(a.stats.sagas, b.stats.sagas);
    EXPECT_EQ(a.stats.msgs, b.stats.msgs);
    EXPECT_EQ(a.stats.tccs + a.stats.xas, with.branch_txns);
    EXPECT_EQ(b.stats.tccs + b.stats.xas, 0);
    EXPECT_TRUE(b.ok()) << Describe(without, b);
  }
}

TEST(CoordSim, QuietBranchTxnsSucceedAndFail) {
  SimStats total;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.txns = 0;
    o.branch_txns = 12;
    o.crashes = false;
    o.faults = false;
    SimReport r = RunCoordSim(o);
    EXPECT_TRUE(r.ok()) << Describe(o, r);
    EXPECT_EQ(r.stats.unfinished, 0);
    total.branch_txns_succeeded += r.stats.branch_txns_succeeded;
    total.branch_txns_failed += r.stats.branch_txns_failed;
  }
  // Failed tries, dying clients and slow tries make some fail even without faults.
  EXPECT_GT(total.branch_txns_succeeded, 0);
  EXPECT_GT(total.branch_txns_failed, 0);
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

TEST(CoordSim, CatchesRegisterBranchAnsweredBeforePersist) {
  SimOptions o;
  o.break_register_before_persist = true;
  SimReport r = FirstViolation(o, 50);
  ASSERT_FALSE(r.ok()) << "no seed in 1..50 caught registerBranch answered before persisting";
  bool caught = false;
  for (const auto& v : r.violations) {
    caught = caught || v.find("before the branch was durable") != std::string::npos ||
             v.find("the branch is lost") != std::string::npos;
  }
  EXPECT_TRUE(caught) << Describe(o, r);
}

// The end-of-run check alone (without the reply-time check) sees the acknowledged branch that a
// crash inside the persist window lost.
TEST(CoordSim, CatchesLostRegisteredBranchAtTheEnd) {
  SimOptions o;
  o.break_register_before_persist = true;
  bool lost = false;
  for (uint64_t seed = 1; seed <= 300 && !lost; ++seed) {
    o.seed = seed;
    SimReport r = RunCoordSim(o);
    for (const auto& v : r.violations)
      lost = lost || v.find("the branch is lost") != std::string::npos;
  }
  EXPECT_TRUE(lost) << "no seed in 1..300 lost an acknowledged branch in a crash";
}

TEST(CoordSim, ReplayCommandNamesTheSeedAndFlags) {
  SimOptions o;
  o.seed = 77;
  EXPECT_EQ(ReplayCommand(o), "dtxsim coord --seed 77 --trace");
  o.txns = 5;
  o.crashes = false;
  EXPECT_EQ(ReplayCommand(o), "dtxsim coord --seed 77 --txns 5 --no-crashes --trace");
  o.branch_txns = 0;
  o.crashes = true;
  o.break_register_before_persist = true;
  EXPECT_EQ(ReplayCommand(o),
            "dtxsim coord --seed 77 --txns 5 --branch-txns 0 --break-register-before-persist "
            "--trace");
}

}  // namespace
}  // namespace dtx::sim
