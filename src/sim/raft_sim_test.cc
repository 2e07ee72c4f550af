#include "sim/raft_sim.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dtx::sim {
namespace {

std::string Describe(const RaftSimOptions& o, const RaftSimReport& r) {
  std::string s = FormatRaftStats(r) + "\n";
  for (const std::string& v : r.violations) s += "  " + v + "\n";
  s += "  replay: " + RaftReplayCommand(o) + "\n";
  return s;
}

TEST(RaftSimTest, OneSeedWithoutFaultsCommitsAndIsLinearizable) {
  RaftSimOptions o;
  o.seed = 1;
  o.faults = false;
  o.crashes = false;
  RaftSimReport r = RunRaftSim(o);
  EXPECT_TRUE(r.ok()) << Describe(o, r);
  EXPECT_GT(r.stats.ok, 20) << Describe(o, r);
  EXPECT_EQ(r.stats.crashes, 0);
  EXPECT_EQ(r.stats.dropped, 0u);
}

TEST(RaftSimTest, BothClusterSizesRun) {
  for (int n : {3, 5}) {
    RaftSimOptions o;
    o.seed = 42;
    o.nodes = n;
    RaftSimReport r = RunRaftSim(o);
    EXPECT_EQ(r.stats.nodes, n);
    EXPECT_TRUE(r.ok()) << Describe(o, r);
  }
}

TEST(RaftSimTest, BadOptionsAreReportedNotRun) {
  RaftSimOptions o;
  o.nodes = 4;
  RaftSimReport r = RunRaftSim(o);
  ASSERT_EQ(r.violations.size(), 1u);
  EXPECT_NE(r.violations[0].find("nodes must be 0, 3 or 5"), std::string::npos) << r.violations[0];
  EXPECT_EQ(r.stats.events, 0u);
  o.nodes = 3;
  o.keys = 0;
  EXPECT_FALSE(ValidateRaftSimOptions(o).ok());
  o.keys = 3;
  o.max_drift = -0.1;
  EXPECT_FALSE(ValidateRaftSimOptions(o).ok());
  o.max_drift = 0.05;
  EXPECT_TRUE(ValidateRaftSimOptions(o).ok());
}

TEST(RaftSimTest, ThousandSeedsWithAllFaults) {
  const auto start = std::chrono::steady_clock::now();
  int failed = 0;
  uint64_t ops = 0;
  uint64_t ok = 0;
  uint64_t crashes = 0;
  uint64_t persist_crashes = 0;
  uint64_t partitions = 0;
  uint64_t committed = 0;
  uint64_t snapshots = 0;
  uint64_t installs = 0;
  uint64_t restarts_from_snapshot = 0;
  uint64_t compaction_crashes = 0;
  for (uint64_t seed = 1; seed <= 1000; ++seed) {
    RaftSimOptions o;
    o.seed = seed;
    RaftSimReport r = RunRaftSim(o);
    ops += r.stats.ops;
    ok += r.stats.ok;
    crashes += r.stats.crashes;
    persist_crashes += r.stats.persist_crashes;
    partitions += r.stats.partitions;
    committed += r.stats.committed;
    snapshots += r.stats.snapshots;
    installs += r.stats.installs;
    restarts_from_snapshot += r.stats.restarts_from_snapshot;
    compaction_crashes += r.stats.compaction_crashes;
    if (!r.ok()) {
      ++failed;
      ADD_FAILURE() << Describe(o, r);
      if (failed >= 5) break;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "1000 seeds: " << secs << " s, " << ops << " ops (" << ok << " ok), " << committed
            << " entries committed, " << crashes << " crashes (" << persist_crashes
            << " inside a persist, " << compaction_crashes << " inside a compaction), "
            << partitions << " partitions, " << snapshots << " snapshots, " << installs
            << " installed from a "
            << "leader, " << restarts_from_snapshot << " restarts from a snapshot\n";
  // The faults must actually happen and the clients must get work done.
  EXPECT_GT(crashes, 1000u);
  EXPECT_GT(persist_crashes, 100u);
  EXPECT_GT(partitions, 1000u);
  EXPECT_GT(ok, ops / 2);
  // Snapshots are taken, sent to lagging nodes, restarted from, and crashed in.
  EXPECT_GT(snapshots, 1000u);
  EXPECT_GT(installs, 100u);
  EXPECT_GT(restarts_from_snapshot, 1000u);
  EXPECT_GT(compaction_crashes, 100u);
}

TEST(RaftSimTest, LeaseReadsUnderBoundedDriftStayLinearizable) {
  int lease_reads = 0;
  int failed = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    RaftSimOptions o;
    o.seed = seed;
    o.lease_reads = true;
    o.max_drift = 0.1;
    RaftSimReport r = RunRaftSim(o);
    lease_reads += r.stats.lease_reads;
    if (!r.ok()) {
      ADD_FAILURE() << Describe(o, r);
      if (++failed >= 5) break;
    }
  }
  std::cout << "300 seeds with lease reads: " << lease_reads << " gets answered from a lease\n";
  EXPECT_GT(lease_reads, 3000);
}

TEST(RaftSimTest, SameSeedSameTrace) {
  RaftSimOptions o;
  o.seed = 7;
  o.trace = true;
  RaftSimReport a = RunRaftSim(o);
  RaftSimReport b = RunRaftSim(o);
  ASSERT_GT(a.trace.size(), 100u);
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(FormatRaftStats(a), FormatRaftStats(b));
  o.seed = 8;
  RaftSimReport c = RunRaftSim(o);
  EXPECT_NE(a.trace, c.trace);
}

// Leaders replicate in parallel with their own disk write, as dtxkv runs: their appends leave
// before the persist, and crashes right after them (2 % of such persists) leave followers with
// entries the leader lost. Every seed's invariants and history must still hold.
TEST(RaftSimTest, LeaderParallelPersistWithAllFaults) {
  int failed = 0;
  uint64_t early_send_crashes = 0;
  uint64_t ok = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    RaftSimOptions o;
    o.seed = seed;
    o.leader_parallel_persist = true;
    o.membership_changes = seed % 3 == 0;
    o.lease_reads = seed % 5 == 0;
    RaftSimReport r = RunRaftSim(o);
    early_send_crashes += r.stats.early_send_crashes;
    ok += r.stats.ok;
    if (!r.ok() && ++failed <= 3) ADD_FAILURE() << Describe(o, r);
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(early_send_crashes, 100u) << "leaders crashed after their early appends left";
  EXPECT_GT(ok, 30'000u) << "the clients made progress";
}

// Seeds with membership changes mixed into the workload: nodes added (as learners, then
// promoted, or directly as voters), voters removed (the leader too), with every fault on.
TEST(RaftSimTest, MembershipChangesWithAllFaults) {
  const auto start = std::chrono::steady_clock::now();
  uint64_t first = 1;
  uint64_t count = 300;
  if (const char* env = std::getenv("DTX_RAFT_SIM_MEMBERSHIP_SEEDS")) {
    // "A..B": a longer run by hand, e.g. DTX_RAFT_SIM_MEMBERSHIP_SEEDS=1..3000.
    unsigned long long a = 0;
    unsigned long long b = 0;
    ASSERT_EQ(std::sscanf(env, "%llu..%llu", &a, &b), 2) << "bad range: " << env;
    ASSERT_TRUE(a >= 1 && a <= b) << "bad range: " << env;
    first = a;
    count = b - a + 1;
  }
  int failed = 0;
  uint64_t proposals = 0;
  uint64_t changes = 0;
  uint64_t leader_removals = 0;
  uint64_t added = 0;
  uint64_t retired = 0;
  uint64_t crashes = 0;
  uint64_t partitions = 0;
  uint64_t installs = 0;
  uint64_t ops = 0;
  uint64_t ok = 0;
  uint64_t lease_reads = 0;
  uint64_t leaders_after_removal = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    RaftSimOptions o;
    o.seed = seed;
    o.membership_changes = true;
    o.lease_reads = seed % 4 == 0;  // leases counted against changing configurations
    RaftSimReport r = RunRaftSim(o);
    proposals += r.stats.conf_proposals;
    lease_reads += r.stats.lease_reads;
    leaders_after_removal += r.stats.leaders_after_removal;
    changes += r.stats.conf_changes;
    leader_removals += r.stats.leader_removals;
    added += r.stats.nodes_added;
    retired += r.stats.nodes_retired;
    crashes += r.stats.crashes;
    partitions += r.stats.partitions;
    installs += r.stats.installs;
    ops += r.stats.ops;
    ok += r.stats.ok;
    if (!r.ok()) {
      ADD_FAILURE() << Describe(o, r);
      if (++failed >= 5) break;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << count << " seeds with membership changes: " << secs << " s, " << proposals
            << " changes proposed (" << leader_removals << " leaders removing themselves), "
            << changes << " committed, " << added << " nodes added, " << retired << " retired, "
            << crashes << " crashes, " << partitions << " partitions, " << installs
            << " snapshots installed, " << ops << " ops (" << ok << " ok), " << lease_reads
            << " lease reads, " << leaders_after_removal
            << " leaders elected after their removal committed\n";
  // The changes must actually happen, of every kind, under faults, and clients get work done.
  EXPECT_GT(changes, count * 3);
  EXPECT_GT(leader_removals, count / 10);
  EXPECT_GT(added, count);
  EXPECT_GT(retired, count / 2);
  EXPECT_GT(crashes, count);
  EXPECT_GT(installs, count / 10);
  EXPECT_GT(ok, ops / 2);
  EXPECT_GT(lease_reads, count);
}

TEST(RaftSimTest, MembershipChangesKeepTheSameSeedSameTrace) {
  RaftSimOptions o;
  o.seed = 11;
  o.trace = true;
  o.membership_changes = true;
  RaftSimReport a = RunRaftSim(o);
  RaftSimReport b = RunRaftSim(o);
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_GT(a.stats.conf_changes, 0) << FormatRaftStats(a);
  EXPECT_NE(RaftReplayCommand(o).find("--membership-changes"), std::string::npos);
}

// Runs seeds from 1 with the broken mode until one reports a violation of an invariant other
// than liveness (a safety finding); returns that seed, or 0 if none within max_seeds.
uint64_t FirstSafetyViolation(RaftBreak mode, uint64_t max_seeds, std::string* found,
                              bool membership_changes = false) {
  for (uint64_t seed = 1; seed <= max_seeds; ++seed) {
    RaftSimOptions o;
    o.seed = seed;
    o.break_mode = mode;
    o.membership_changes = membership_changes;
    RaftSimReport r = RunRaftSim(o);
    for (const std::string& v : r.violations) {
      if (v.rfind("liveness", 0) == 0 || v.rfind("livelock", 0) == 0) continue;
      *found = v;
      return seed;
    }
  }
  return 0;
}

TEST(RaftSimTest, UnsyncedAppendsAreCaught) {
  std::string found;
  const uint64_t seed = FirstSafetyViolation(RaftBreak::kUnsyncedAppends, 50, &found);
  EXPECT_NE(seed, 0u) << "no seed in 1..50 caught storage that acknowledges unsynced entries";
  std::cout << "unsynced appends caught at seed " << seed << ": " << found << "\n";
}

TEST(RaftSimTest, LocalReadsAreCaught) {
  // Stale reads need a deposed leader still answering while a new one takes writes (or a new
  // leader that has not applied its predecessor's last commits): about 1 seed in 150.
  std::string found;
  const uint64_t seed = FirstSafetyViolation(RaftBreak::kLocalReads, 1500, &found);
  EXPECT_NE(seed, 0u) << "no seed in 1..1500 caught reads served without ReadIndex";
  std::cout << "local reads caught at seed " << seed << ": " << found << "\n";
}

TEST(RaftSimTest, BadSnapshotsAreCaught) {
  // A restored image that differs from what the appliers had at its index is a state-machine
  // safety violation even before a client reads the damage.
  std::string found;
  const uint64_t seed = FirstSafetyViolation(RaftBreak::kBadSnapshots, 50, &found);
  EXPECT_NE(seed, 0u) << "no seed in 1..50 caught snapshots that lose state";
  EXPECT_EQ(found.rfind("state-machine safety", 0), 0u) << found;
  std::cout << "bad snapshots caught at seed " << seed << ": " << found << "\n";
}

TEST(RaftSimTest, ReusedRemovedIdsAreCaught) {
  // A removed node's machine rejoining under its old id with a wiped disk: a node that lags
  // behind the removal still counts that id as a voter of its old configuration, and the wiped
  // node, which remembers no vote, grants it one - two leaders in one term. The first seed in
  // 1..1000 where a classic invariant breaks (not the configuration checks, which the wiped
  // node's different boot configuration trips anyway) is 616.
  uint64_t caught = 0;
  std::string found;
  for (uint64_t seed = 600; seed <= 700 && caught == 0; ++seed) {
    RaftSimOptions o;
    o.seed = seed;
    o.membership_changes = true;
    o.break_mode = RaftBreak::kReuseRemovedIds;
    RaftSimReport r = RunRaftSim(o);
    for (const std::string& v : r.violations) {
      for (const char* kind : {"election safety", "leader completeness", "state-machine safety",
                               "log matching", "linearizability"}) {
        if (v.rfind(kind, 0) == 0 && caught == 0) {
          caught = seed;
          found = v;
        }
      }
    }
  }
  EXPECT_NE(caught, 0u) << "no seed in 600..700 caught removed ids reused with wiped disks";
  std::cout << "reused ids caught at seed " << caught << ": " << found << "\n";
  // The same seeds with fresh ids are clean (MembershipChangesWithAllFaults runs 1..300).
  RaftSimOptions o;
  o.seed = caught;
  o.membership_changes = true;
  RaftSimReport r = RunRaftSim(o);
  EXPECT_TRUE(r.ok()) << Describe(o, r);
}

}  // namespace
}  // namespace dtx::sim
