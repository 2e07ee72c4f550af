// Unit tests of the storage, log and progress pieces, and cluster tests on the in-test harness.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "base/rand.h"
#include "consensus/raft/log.h"
#include "consensus/raft/progress.h"
#include "consensus/raft/raft.h"
#include "consensus/raft/storage.h"
#include "consensus/raft/test_cluster.h"

namespace dtx::raft {
namespace {

using testing::Drain;
using testing::MustCreate;
using testing::TestCluster;
using testing::TestConfig;

Entry E(uint64_t index, uint64_t term, std::string data = "") {
  Entry e;
  e.index = index;
  e.term = term;
  e.data = std::move(data);
  return e;
}

std::vector<Entry> Terms(const std::vector<uint64_t>& terms) {
  std::vector<Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) out.push_back(E(i + 1, terms[i]));
  return out;
}

TEST(MemoryStorageTest, AppendTruncatesAndRejectsGaps) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Terms({1, 1, 2})).ok());
  EXPECT_EQ(s.LastIndex(), 3u);
  ASSERT_TRUE(s.Append({E(2, 3)}).ok());
  EXPECT_EQ(s.LastIndex(), 2u);
  EXPECT_EQ(*s.Term(2), 3u);
  EXPECT_EQ(s.Append({E(5, 3)}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Append({E(3, 3), E(5, 3)}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Term(9).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s.Entries(2, 9, 100).status().code(), StatusCode::kInvalidArgument);
}

TEST(MemoryStorageTest, EntriesRespectByteBoundButReturnOne) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append({E(1, 1, std::string(100, 'a')), E(2, 1, std::string(100, 'b'))}).ok());
  EXPECT_EQ(s.Entries(1, 3, 1)->size(), 1u);
  EXPECT_EQ(s.Entries(1, 3, 1000)->size(), 2u);
}

TEST(MemoryStorageTest, CreateSnapshotThenCompactDropsTheCoveredPrefix) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append({E(1, 1, "a"), E(2, 1, "b"), E(3, 2, "c"), E(4, 2, "d")}).ok());
  EXPECT_EQ(s.Snapshot()->metadata.index, 0u);
  // Compaction needs a snapshot covering what it drops.
  EXPECT_EQ(s.Compact(2).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.CreateSnapshot(5, "x").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.CreateSnapshot(3, "img3").ok());
  EXPECT_EQ(s.Snapshot()->metadata, (SnapshotMetadata{3, 2}));
  EXPECT_EQ(s.Snapshot()->data, "img3");
  EXPECT_EQ(s.FirstIndex(), 1u);  // entries stay until Compact
  ASSERT_TRUE(s.Compact(2).ok());
  EXPECT_EQ(s.FirstIndex(), 3u);
  EXPECT_EQ(*s.Term(2), 1u);
  EXPECT_EQ(s.Term(1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s.Entries(2, 4, 100).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.Compact(3).ok());
  EXPECT_EQ(s.FirstIndex(), 4u);
  EXPECT_EQ(s.LastIndex(), 4u);
  EXPECT_EQ(*s.Term(3), 2u);
  EXPECT_EQ((*s.Entries(4, 5, 100))[0].data, "d");
  EXPECT_TRUE(s.Compact(3).ok());  // at the compaction point: nothing to do
  EXPECT_EQ(s.Compact(2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.CreateSnapshot(3, "again").code(), StatusCode::kFailedPrecondition);
  // Appends below the compaction point are already covered and skipped.
  ASSERT_TRUE(s.Append({E(3, 2), E(4, 2, "d"), E(5, 3, "e")}).ok());
  EXPECT_EQ(s.LastIndex(), 5u);
  EXPECT_EQ(s.Append({E(7, 3)}).code(), StatusCode::kInvalidArgument);
}

TEST(MemoryStorageTest, ApplySnapshotReplacesTheLogAndRefusesOlderOnes) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Terms({1, 1, 1})).ok());
  Snapshot snap{SnapshotMetadata{10, 4}, "img"};
  ASSERT_TRUE(s.ApplySnapshot(snap).ok());
  EXPECT_EQ(s.FirstIndex(), 11u);
  EXPECT_EQ(s.LastIndex(), 10u);
  EXPECT_EQ(*s.Term(10), 4u);
  EXPECT_EQ(*s.Snapshot(), snap);
  EXPECT_EQ(s.ApplySnapshot(snap).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.ApplySnapshot(Snapshot{SnapshotMetadata{9, 4}, ""}).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s.Append({E(11, 4)}).ok());
  EXPECT_EQ(s.Append({E(13, 4)}).code(), StatusCode::kInvalidArgument);
}

TEST(RaftLogTest, RestoreReplacesTheLogUntilTheSnapshotIsStable) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Terms({1, 1, 2})).ok());
  RaftLog log(&s);
  log.Restore(Snapshot{SnapshotMetadata{8, 3}, "img"});
  EXPECT_EQ(log.FirstIndex(), 9u);
  EXPECT_EQ(log.LastIndex(), 8u);
  EXPECT_EQ(log.committed(), 8u);
  EXPECT_EQ(log.TermOrZero(8), 3u);
  EXPECT_EQ(log.TermOrZero(2), 0u);  // the stored log is superseded
  EXPECT_FALSE(log.HasNextCommitted());
  EXPECT_EQ(log.Snapshot()->data, "img");
  ASSERT_TRUE(log.MaybeAppend(8, 3, 9, {E(9, 3)}).has_value());
  // The host persists the snapshot (replacing its log), then the entries.
  ASSERT_TRUE(s.ApplySnapshot(*log.PendingSnapshot()).ok());
  log.StableSnapTo(8);
  ASSERT_TRUE(s.Append(log.UnstableEntries()).ok());
  log.StableTo(9, 3);
  log.AppliedTo(8);
  EXPECT_FALSE(log.HasPendingSnapshot());
  EXPECT_EQ(log.FirstIndex(), 9u);
  ASSERT_EQ(log.NextCommitted(1000).size(), 1u);
  EXPECT_EQ(log.NextCommitted(1000)[0].index, 9u);
}

TEST(RaftLogTest, StartsFromTheStoredSnapshot) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(Snapshot{SnapshotMetadata{5, 2}, "img"}).ok());
  ASSERT_TRUE(s.Append({E(6, 2), E(7, 3)}).ok());
  s.SetHardState(HardState{3, kNoNode, 2});  // a lazily saved commit below the snapshot
  RaftLog log(&s);
  EXPECT_EQ(log.applied(), 5u);
  EXPECT_EQ(log.committed(), 5u);
  EXPECT_EQ(log.FirstIndex(), 6u);
  EXPECT_EQ(log.TermOrZero(5), 2u);
  EXPECT_EQ(log.FindConflictByTerm(7, 1), (std::pair<uint64_t, uint64_t>{5, 2}));
}

TEST(RaftLogTest, UnstableSuffixBecomesStableOnlyWithMatchingTerm) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Terms({1, 1})).ok());
  RaftLog log(&s);
  EXPECT_EQ(log.LastIndex(), 2u);
  log.Append({E(3, 2), E(4, 2)});
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  log.StableTo(4, 1);  // wrong term: ignored
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  ASSERT_TRUE(s.Append(log.UnstableEntries()).ok());
  log.StableTo(4, 2);
  EXPECT_FALSE(log.HasUnstable());
  EXPECT_EQ(log.LastIndex(), 4u);
  EXPECT_EQ(log.TermOrZero(3), 2u);
}

TEST(RaftLogTest, MaybeAppendTruncatesConflictsAndCommitsOnlyWhatMatches) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Terms({1, 1, 1})).ok());
  RaftLog log(&s);
  EXPECT_FALSE(log.MaybeAppend(3, 2, 3, {}).has_value());  // (3, 2) does not match
  std::optional<uint64_t> last = log.MaybeAppend(1, 1, 10, {E(2, 3)});
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 2u);
  EXPECT_EQ(log.LastIndex(), 2u);  // entry 3 of term 1 was dropped
  EXPECT_EQ(log.committed(), 2u);  // min(leader commit, last new index)
  EXPECT_EQ(log.TermOrZero(2), 3u);
  // The replacement reaches storage through the unstable suffix.
  ASSERT_TRUE(s.Append(log.UnstableEntries()).ok());
  log.StableTo(2, 3);
  EXPECT_EQ(s.LastIndex(), 2u);
}

TEST(RaftLogTest, FindConflictByTerm) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Terms({1, 1, 2, 2, 4, 4})).ok());
  RaftLog log(&s);
  EXPECT_EQ(log.FindConflictByTerm(6, 3), std::make_pair(uint64_t{4}, uint64_t{2}));
  EXPECT_EQ(log.FindConflictByTerm(6, 1), std::make_pair(uint64_t{2}, uint64_t{1}));
  EXPECT_EQ(log.FindConflictByTerm(6, 0), std::make_pair(uint64_t{0}, uint64_t{0}));
  EXPECT_EQ(log.FindConflictByTerm(9, 5), std::make_pair(uint64_t{6}, uint64_t{4}));
}

TEST(ProgressTest, ProbeAcceptsOnlyTheLatestRejection) {
  Progress pr(4);
  pr.next = 10;
  EXPECT_FALSE(pr.MaybeDecrTo(5, 3));  // not the probe at next-1 = 9
  EXPECT_TRUE(pr.MaybeDecrTo(9, 3));
  EXPECT_EQ(pr.next, 4u);
  pr.match = 6;
  pr.BecomeReplicate();
  EXPECT_FALSE(pr.MaybeDecrTo(6, 0));  // at or below match: stale
  for (uint64_t i = 7; i < 11; ++i) pr.SentAppend(i, 1);
  EXPECT_TRUE(pr.IsPaused());
  pr.inflights.FreeLE(8);
  EXPECT_FALSE(pr.IsPaused());
  EXPECT_EQ(pr.inflights.count(), 2u);
}

TEST(ProgressTest, SnapshotStatePausesUntilAnsweredAndProbesAfterIt) {
  Progress pr(4);
  pr.match = 3;
  pr.next = 4;
  pr.BecomeSnapshot(20);
  EXPECT_TRUE(pr.IsPaused());
  EXPECT_FALSE(pr.MaybeDecrTo(3, 0));  // rejections do not move a pending snapshot
  pr.BecomeProbe();                    // the timeout: probe right after the snapshot
  EXPECT_EQ(pr.next, 21u);
  EXPECT_EQ(pr.pending_snapshot, 0u);
  EXPECT_FALSE(pr.IsPaused());
}

TEST(ConfigTest, RejectsBadConfigsWithClearErrors) {
  MemoryStorage s;
  Config c = TestConfig(1, 3);
  c.id = 0;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c = TestConfig(4, 3);
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c = TestConfig(1, 3);
  c.election_tick = 1;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c = TestConfig(1, 3);
  c.peers.push_back(2);
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c = TestConfig(1, 3);
  c.applied = 5;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  s.SetHardState(HardState{2, 1, 7});
  Result<std::unique_ptr<RawNode>> r = RawNode::Create(TestConfig(1, 3), &s);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("beyond the last stored entry"), std::string::npos);
  EXPECT_EQ(RawNode::Create(TestConfig(1, 3), nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(RawNodeTest, MessagesFromStrangersAreRefused) {
  MemoryStorage s;
  auto n = MustCreate(TestConfig(1, 3), &s);
  Message m;
  m.type = MessageType::kHeartbeat;
  m.from = 0;
  m.to = 1;
  m.term = 1;
  EXPECT_EQ(n->Step(m).code(), StatusCode::kInvalidArgument);
  m.from = 1;
  EXPECT_EQ(n->Step(m).code(), StatusCode::kInvalidArgument);
  m.from = 2;
  m.to = 3;
  EXPECT_EQ(n->Step(m).code(), StatusCode::kInvalidArgument);
}

TEST(RawNodeTest, RestartRecoversTermVoteAndLog) {
  MemoryStorage s;
  {
    auto n = MustCreate(TestConfig(1, 1), &s);
    ASSERT_TRUE(n->Campaign().ok());
    ASSERT_TRUE(n->Propose("x").ok());
    Drain(*n, s);
  }
  auto n = MustCreate(TestConfig(1, 1), &s);
  EXPECT_EQ(n->term(), 1u);
  EXPECT_EQ(n->GetStatus().vote, 1u);
  EXPECT_EQ(n->log().LastIndex(), 2u);
  EXPECT_EQ(n->log().committed(), 2u);
  std::vector<Entry> applied;
  Drain(*n, s, &applied);
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[1].data, "x");
}

TEST(RawNodeTest, CreateStartsFromTheStoredSnapshot) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(Snapshot{SnapshotMetadata{5, 2}, "img"}).ok());
  ASSERT_TRUE(s.Append({E(6, 2, "six")}).ok());
  s.SetHardState(HardState{2, kNoNode, 6});
  // applied below the snapshot is raised to it; beyond the commit index it is refused.
  Config c = TestConfig(1, 1);
  c.applied = 3;
  auto n = MustCreate(c, &s);
  EXPECT_EQ(n->log().applied(), 5u);
  std::vector<Entry> applied;
  Drain(*n, s, &applied);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].data, "six");
  c.applied = 7;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c.applied = 0;
  c.snapshot_timeout_tick = 0;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
}

TEST(RawNodeTest, SnapMessageWithoutASnapshotIsRefused) {
  MemoryStorage s;
  auto n = MustCreate(TestConfig(1, 3), &s);
  Message m;
  m.type = MessageType::kSnap;
  m.from = 2;
  m.to = 1;
  m.term = 1;
  Status st = n->Step(m);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("no snapshot"), std::string::npos);
  EXPECT_EQ(n->term(), 0u);
}

TEST(RawNodeTest, ProposalOnFollowerIsRefusedNamingTheLeader) {
  TestCluster c(3);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId follower = leader % 3 + 1;
  Result<uint64_t> r = c.node(follower).Propose("x");
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("leader: " + std::to_string(leader)), std::string::npos);
  EXPECT_EQ(c.node(follower).ReadIndex("r").code(), StatusCode::kFailedPrecondition);
}

class InitialElectionTest : public ::testing::TestWithParam<size_t> {};

TEST_P(InitialElectionTest, ElectsExactlyOneLeaderFollowedByAll) {
  const size_t n = GetParam();
  TestCluster c(n, 3);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.DeliverAll();
  size_t leaders = 0;
  for (NodeId id = 1; id <= n; ++id) {
    if (c.node(id).role() == Role::kLeader) ++leaders;
    EXPECT_EQ(c.node(id).term(), c.node(leader).term());
  }
  EXPECT_EQ(leaders, 1u);
  // Stays put while the network is fine: no election in 50 more ticks.
  const uint64_t term = c.node(leader).term();
  for (int t = 0; t < 50; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.node(leader).term(), term);
  EXPECT_EQ(c.node(leader).role(), Role::kLeader);
  EXPECT_FALSE(c.election_safety_violated());
}

INSTANTIATE_TEST_SUITE_P(Sizes, InitialElectionTest, ::testing::Values(3, 5));

TEST(ClusterTest, ReElectionAfterLeaderIsolation) {
  TestCluster c(3, 5);
  NodeId old = c.WaitLeader();
  ASSERT_NE(old, kNoNode);
  const uint64_t old_term = c.node(old).term();
  c.Isolate(old);
  NodeId fresh = c.WaitLeader(500, old);
  ASSERT_NE(fresh, kNoNode);
  EXPECT_NE(fresh, old);
  EXPECT_GT(c.node(fresh).term(), old_term);
  // Check-quorum: the isolated leader steps down on its own within two election timeouts.
  for (int t = 0; t < 20; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.node(old).term(), old_term);
  EXPECT_NE(c.node(old).role(), Role::kLeader);
  c.Heal();
  for (int t = 0; t < 20; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.node(old).lead(), fresh);
  c.ProposeAndSettle(fresh, "after");
  EXPECT_EQ(c.applied(old).back().data, "after");
  EXPECT_TRUE(c.AppliedArePrefixes());
  EXPECT_FALSE(c.election_safety_violated());
}

// Config::leader_parallel_persist (Raft thesis section 10.2.1): a leader's appends come out as
// early messages, and its own copy joins the commit quorum only when Advance() says it is
// persisted - so a commit rests on synced copies, the followers' alone if need be.
TEST(ClusterTest, ParallelPersistCountsTheLeadersCopyOnlyOncePersisted) {
  TestCluster c(3, 3, [](Config& cfg) { cfg.leader_parallel_persist = true; });
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.ProposeAndSettle(leader, "warm");
  const NodeId f1 = leader % 3 + 1, f2 = f1 % 3 + 1;
  RawNode& l = c.node(leader);
  // Delivers the early append for `to`, then the answers queued from it to the leader.
  auto replicate = [&](const Ready& rd, NodeId to) {
    for (const Message& m : rd.early_messages) {
      if (m.to == to) c.Deliver(m);
    }
    std::deque<Message> rest;
    for (Message& m : c.queue()) {
      if (m.from == to && m.to == leader) {
        ASSERT_TRUE(l.Step(m).ok());
      } else {
        rest.push_back(std::move(m));
      }
    }
    c.queue() = std::move(rest);
  };

  Result<uint64_t> x = l.Propose("x");
  ASSERT_TRUE(x.ok());
  Ready rd = l.Ready();
  ASSERT_EQ(rd.early_messages.size(), 2u);
  for (const Message& m : rd.early_messages) EXPECT_EQ(m.type, MessageType::kApp);
  for (const Message& m : rd.messages) EXPECT_NE(m.type, MessageType::kApp);
  replicate(rd, f1);
  EXPECT_LT(l.GetStatus().commit, *x)
      << "one follower's copy and the leader's unpersisted one are no quorum";
  replicate(rd, f2);
  EXPECT_EQ(l.GetStatus().commit, *x) << "two followers' synced copies are a quorum of three";
  testing::PersistReady(c.storage(leader), rd);
  l.Advance(rd);
  c.Process(leader);
  EXPECT_EQ(c.applied(leader).back().data, "x");

  Result<uint64_t> y = l.Propose("y");
  ASSERT_TRUE(y.ok());
  rd = l.Ready();
  testing::PersistReady(c.storage(leader), rd);
  EXPECT_LT(l.GetStatus().commit, *y);
  l.Advance(rd);
  EXPECT_LT(l.GetStatus().commit, *y) << "the leader's persisted copy alone is no quorum";
  replicate(rd, f1);
  EXPECT_EQ(l.GetStatus().commit, *y) << "the leader's persisted copy and one follower's are";
  c.DeliverAll();
  EXPECT_TRUE(c.AppliedArePrefixes());

  // Without the option the leader's appends wait for the persist.
  TestCluster plain(3, 3);
  const NodeId pl = plain.WaitLeader();
  ASSERT_NE(pl, kNoNode);
  ASSERT_TRUE(plain.node(pl).Propose("z").ok());
  Ready prd = plain.node(pl).Ready();
  EXPECT_TRUE(prd.early_messages.empty());
  EXPECT_FALSE(prd.messages.empty());
}

// A Ready that changes the term (a new leader's first) sends nothing early, and a single node's
// entry is committed only once Advance() reports it persisted.
TEST(ClusterTest, ParallelPersistSendsNothingEarlyWithANewTerm) {
  MemoryStorage storage;
  Config cfg = TestConfig(1, 1);
  cfg.leader_parallel_persist = true;
  std::unique_ptr<RawNode> n = MustCreate(cfg, &storage);
  ASSERT_NE(n, nullptr);
  ASSERT_TRUE(n->Campaign().ok());
  ASSERT_EQ(n->role(), Role::kLeader);
  Ready rd = n->Ready();
  EXPECT_TRUE(rd.early_messages.empty());
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.committed_entries.empty()) << "the no-op is not persisted yet";
  testing::PersistReady(storage, rd);
  n->Advance(rd);
  ASSERT_TRUE(n->HasReady());
  rd = n->Ready();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].index, 1u);
  n->Advance(rd);
}

TEST(ClusterTest, BasicAgreementOf100Proposals) {
  TestCluster c(3, 7);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 100; ++i) {
    uint64_t index = c.ProposeAndSettle(leader, "v" + std::to_string(i));
    for (NodeId id = 1; id <= 3; ++id) {
      ASSERT_FALSE(c.applied(id).empty());
      EXPECT_EQ(c.applied(id).back().index, index);
      EXPECT_EQ(c.applied(id).back().data, "v" + std::to_string(i));
    }
  }
  EXPECT_TRUE(c.AppliedArePrefixes());
}

TEST(ClusterTest, FollowerFailureAndRejoinCatchesUp) {
  TestCluster c(3, 9);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId f = leader % 3 + 1;
  c.ProposeAndSettle(leader, "before");
  c.Isolate(f);
  for (int i = 0; i < 20; ++i) c.ProposeAndSettle(leader, "during" + std::to_string(i));
  // Two of three still commit.
  EXPECT_EQ(c.applied(leader).back().data, "during19");
  EXPECT_EQ(c.applied(f).back().data, "before");
  // The failed follower also crashes and restarts with what it had persisted.
  c.Start(f);
  c.Heal();
  for (int t = 0; t < 30 && c.applied(f).size() < c.applied(leader).size(); ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.applied(f).back().data, "during19");
  EXPECT_EQ(c.node(leader).role(), Role::kLeader);
  EXPECT_TRUE(c.AppliedArePrefixes());
}

TEST(ClusterTest, FastBackupOverFiftyDivergentEntries) {
  TestCluster c(5, 11);
  NodeId l1 = c.WaitLeader();
  ASSERT_NE(l1, kNoNode);
  c.ProposeAndSettle(l1, "common");
  // l1 and one follower go to a minority; they take 50 entries that never commit.
  NodeId a = l1 % 5 + 1;
  for (NodeId x : {l1, a}) {
    for (NodeId y = 1; y <= 5; ++y) {
      if (y != l1 && y != a) c.Cut(x, y);
    }
  }
  for (int i = 0; i < 50; ++i) c.ProposeAndSettle(l1, "lost" + std::to_string(i));
  NodeId l2 = c.WaitLeader(500, l1);
  ASSERT_NE(l2, kNoNode);
  ASSERT_NE(l2, l1);
  ASSERT_NE(l2, a);
  for (int i = 0; i < 50; ++i) c.ProposeAndSettle(l2, "kept" + std::to_string(i));
  EXPECT_EQ(c.node(a).log().LastIndex(), c.node(l2).log().LastIndex() - 1);
  size_t rejects = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type == MessageType::kAppResp && m.reject) ++rejects;
  };
  c.Heal();
  for (int t = 0; t < 30 && (c.applied(a).size() < c.applied(l2).size() ||
                             c.applied(l1).size() < c.applied(l2).size());
       ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.applied(a).back().data, "kept49");
  EXPECT_EQ(c.applied(l1).back().data, "kept49");
  // Entry-by-entry backtracking would take ~50 round trips per node.
  EXPECT_LE(rejects, 4u);
  EXPECT_TRUE(c.AppliedArePrefixes());
}

TEST(ClusterTest, BatchingBoundsMessageBytes) {
  TestCluster c(3, 13, [](Config& cfg) { cfg.max_size_per_msg = 200; });
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  NodeId f = leader % 3 + 1;
  c.Isolate(f);
  for (int i = 0; i < 30; ++i) c.ProposeAndSettle(leader, std::string(50, 'x'));
  size_t max_entries = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type != MessageType::kApp || m.to != f) return;
    uint64_t bytes = 0;
    for (const Entry& e : m.entries) bytes += EntrySize(e);
    if (m.entries.size() > 1) {
      EXPECT_LE(bytes, 200u);
    }
    max_entries = std::max(max_entries, m.entries.size());
  };
  c.Heal();
  for (int t = 0; t < 30 && c.applied(f).size() < c.applied(leader).size(); ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.applied(f).size(), c.applied(leader).size());
  EXPECT_EQ(max_entries, 2u);  // 2 * 74 bytes fit in 200, 3 do not
}

TEST(ClusterTest, PipeliningStopsAtTheInflightBound) {
  TestCluster c(3, 15, [](Config& cfg) { cfg.max_inflight_msgs = 4; });
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.ProposeAndSettle(leader, "warmup");  // followers are in replicate state now
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.node(leader).Propose("p" + std::to_string(i)).ok());
  c.Process(leader);
  std::map<NodeId, size_t> apps;
  for (const Message& m : c.queue()) {
    if (m.type == MessageType::kApp) ++apps[m.to];
  }
  for (NodeId id = 1; id <= 3; ++id) {
    if (id != leader) {
      EXPECT_EQ(apps[id], 4u) << "to " << id;
    }
  }
  c.DeliverAll();
  for (NodeId id = 1; id <= 3; ++id) EXPECT_EQ(c.applied(id).back().data, "p9");
}

TEST(ReadIndexTest, LeaderAnswersAfterAHeartbeatQuorum) {
  TestCluster c(3, 17);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  uint64_t index = c.ProposeAndSettle(leader, "w");
  ASSERT_TRUE(c.node(leader).ReadIndex("r1").ok());
  c.Process(leader);
  EXPECT_TRUE(c.reads(leader).empty());  // not before the heartbeat round
  c.DeliverAll();
  ASSERT_EQ(c.reads(leader).size(), 1u);
  EXPECT_EQ(c.reads(leader)[0], (ReadState{index, "r1"}));
}

void LeaseConfig(Config& c) {
  c.read_only = ReadOnly::kLeaseBased;
  c.check_quorum = true;
  c.pre_vote = true;
}

TEST(LeaseReadTest, ConfigNeedsCheckQuorumAndRoomForALease) {
  MemoryStorage s;
  Config c = TestConfig(1, 3);
  LeaseConfig(c);
  EXPECT_EQ(c.LeaseTicks(), 7);  // floor(9 * 0.95 / 1.05) - 1
  EXPECT_TRUE(RawNode::Create(c, &s).ok());
  c.check_quorum = false;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c.check_quorum = true;
  c.election_tick = 3;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c.election_tick = 10;
  c.max_clock_drift = 0.5;
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
}

TEST(LeaseReadTest, LeaderWithALeaseAnswersWithoutAHeartbeatRound) {
  TestCluster c(3, 17, LeaseConfig);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const uint64_t index = c.ProposeAndSettle(leader, "w");
  c.node(leader).Tick();  // a heartbeat round establishes the lease
  c.Process(leader);
  c.DeliverAll();
  ASSERT_TRUE(c.node(leader).ReadIndex("r1").ok());
  c.Process(leader);
  ASSERT_EQ(c.reads(leader).size(), 1u);
  EXPECT_EQ(c.reads(leader)[0], (ReadState{index, "r1"}));
  EXPECT_TRUE(c.queue().empty()) << "no heartbeat round for the read";
}

TEST(LeaseReadTest, AnIsolatedLeadersLeaseRunsOutBeforeAnotherCanBeElected) {
  TestCluster c(3, 17, LeaseConfig);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.ProposeAndSettle(leader, "w");
  c.node(leader).Tick();
  c.Process(leader);
  c.DeliverAll();
  c.Isolate(leader);
  // The last acknowledged heartbeat was sent at the tick above: the lease holds LeaseTicks().
  Config cfg = TestConfig(1, 3);
  LeaseConfig(cfg);
  for (int t = 0; t < cfg.LeaseTicks(); ++t) {
    c.node(leader).Tick();
    c.Process(leader);
  }
  ASSERT_TRUE(c.node(leader).ReadIndex("in lease").ok());
  c.Process(leader);
  EXPECT_EQ(c.reads(leader).size(), 1u);
  c.node(leader).Tick();
  c.Process(leader);
  ASSERT_TRUE(c.node(leader).ReadIndex("expired").ok());
  c.Process(leader);
  c.DeliverAll();  // the heartbeat round is cut off
  EXPECT_EQ(c.reads(leader).size(), 1u) << "no answer once the lease ran out";
  // The followers still refuse to elect anyone else for election_tick ticks after the last
  // heartbeat they acknowledged, which is longer than the lease.
  for (int t = 0; t < cfg.election_tick - 1; ++t) {
    for (NodeId id = 1; id <= 3; ++id) {
      if (id == leader) continue;
      c.node(id).Tick();
      c.Process(id);
    }
    c.DeliverAll();
    EXPECT_EQ(c.Leader(leader), kNoNode) << "tick " << t;
  }
}

TEST(LeaseReadTest, NoLeaseAfterTimeoutNow) {
  TestCluster c(3, 17, LeaseConfig);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.ProposeAndSettle(leader, "w");
  c.node(leader).Tick();
  c.Process(leader);
  c.DeliverAll();
  const NodeId target = leader % 3 + 1;
  ASSERT_TRUE(c.node(leader).TransferLeadership(target).ok());
  c.Process(leader);
  c.queue().clear();  // the kTimeoutNow is lost, but it was sent
  ASSERT_TRUE(c.node(leader).ReadIndex("r").ok());
  c.Process(leader);
  EXPECT_TRUE(c.reads(leader).empty()) << "a transfer's forced vote can elect the target";
  c.DeliverAll();  // the ReadIndex heartbeat round still answers it
  EXPECT_EQ(c.reads(leader).size(), 1u);
}

TEST(LeaseReadTest, ARestartedVoterStaysQuietForAnElectionTimeout) {
  TestCluster c(3, 17, LeaseConfig);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId f = leader % 3 + 1;
  c.Start(f);
  Message vote;
  vote.type = MessageType::kPreVote;
  vote.from = 6 - leader - f;  // the third node
  vote.to = f;
  vote.term = c.node(f).term() + 1;
  vote.index = 100;
  vote.log_term = 100;
  ASSERT_TRUE(c.node(f).Step(vote).ok());
  c.Process(f);
  EXPECT_TRUE(c.queue().empty()) << "ignored while quiet";
  for (int t = 0; t < 10; ++t) c.node(f).Tick();
  ASSERT_TRUE(c.node(f).Step(vote).ok());
  c.Process(f);
  ASSERT_EQ(c.queue().size(), 1u);
  EXPECT_EQ(c.queue().front().type, MessageType::kPreVoteResp);
  EXPECT_FALSE(c.queue().front().reject);
}

TEST(ReadIndexTest, IsolatedLeaderNeverAnswers) {
  TestCluster c(3, 19);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.Isolate(leader);
  ASSERT_TRUE(c.node(leader).ReadIndex("stale?").ok());
  for (int t = 0; t < 40; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_TRUE(c.reads(leader).empty());
}

TEST(ReadIndexTest, NewLeaderWaitsForAnEntryOfItsTerm) {
  TestCluster c(3, 21);
  ASSERT_TRUE(c.node(1).Campaign().ok());
  c.Process(1);
  std::vector<Message> held;
  for (int k = 0; k < 1000 && !c.queue().empty(); ++k) {
    Message m = c.queue().front();
    c.queue().pop_front();
    if (m.type == MessageType::kApp) {
      held.push_back(m);
    } else {
      c.Deliver(m);
    }
  }
  ASSERT_EQ(c.node(1).role(), Role::kLeader);
  const uint64_t noop = c.node(1).log().LastIndex();
  ASSERT_TRUE(c.node(1).ReadIndex("early").ok());
  c.Process(1);
  c.DeliverAll();
  EXPECT_TRUE(c.reads(1).empty());
  for (const Message& m : held) c.Deliver(m);
  c.DeliverAll();
  ASSERT_EQ(c.reads(1).size(), 1u);
  EXPECT_EQ(c.reads(1)[0].context, "early");
  EXPECT_GE(c.reads(1)[0].index, noop);
}

TEST(ConfigTest, RejectsBadLearnerConfigs) {
  MemoryStorage s;
  Config c = TestConfig(1, 3);
  c.learners = {3};
  Result<std::unique_ptr<RawNode>> r = RawNode::Create(c, &s);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("duplicate member"), std::string::npos);
  c.learners = {4, 4};
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c.learners = {0};
  EXPECT_EQ(RawNode::Create(c, &s).status().code(), StatusCode::kInvalidArgument);
  c = TestConfig(4, 0);
  c.learners = {4};
  r = RawNode::Create(c, &s);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("at least one voter"), std::string::npos);
  c = TestConfig(4, 3);
  c.learners = {4, 5};
  EXPECT_TRUE(RawNode::Create(c, &s).ok());
  // A stored vote may name any node: it may have been removed (or demoted) since it was cast.
  s.SetHardState(HardState{1, 5, 0});
  EXPECT_TRUE(RawNode::Create(c, &s).ok());
}

// Ticks and delivers until pred holds (at most max_ticks ticks); returns whether it held.
template <typename Pred>
bool TickUntil(TestCluster& c, int max_ticks, Pred pred) {
  for (int t = 0; t <= max_ticks; ++t) {
    c.DeliverAll();
    if (pred()) return true;
    if (t < max_ticks) c.TickAll();
  }
  return false;
}

TEST(TransferTest, ToAnUpToDateFollowerElectsItInTheNextTerm) {
  TestCluster c(3, 31);
  NodeId old = c.WaitLeader();
  ASSERT_NE(old, kNoNode);
  c.ProposeAndSettle(old, "before");
  const NodeId target = old % 3 + 1;
  const uint64_t term = c.node(old).term();
  size_t pre_votes = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type == MessageType::kPreVote) ++pre_votes;
  };
  ASSERT_TRUE(c.node(old).TransferLeadership(target).ok());
  c.Process(old);
  ASSERT_EQ(c.queue().size(), 1u);  // the target is up to date: straight to TimeoutNow
  EXPECT_EQ(c.queue().front().type, MessageType::kTimeoutNow);
  c.DeliverAll();
  EXPECT_EQ(c.node(target).role(), Role::kLeader);
  EXPECT_EQ(c.node(target).term(), term + 1);
  EXPECT_EQ(c.Leader(), target);
  EXPECT_EQ(c.node(old).role(), Role::kFollower);
  EXPECT_EQ(c.node(old).lead(), target);
  EXPECT_EQ(pre_votes, 0u);
  c.ProposeAndSettle(target, "after");
  for (NodeId id = 1; id <= 3; ++id) EXPECT_EQ(c.applied(id).back().data, "after");
  EXPECT_TRUE(c.AppliedArePrefixes());
  EXPECT_FALSE(c.election_safety_violated());
}

TEST(TransferTest, ALaggingTargetCatchesUpFirst) {
  TestCluster c(3, 33);
  NodeId old = c.WaitLeader();
  ASSERT_NE(old, kNoNode);
  const NodeId target = old % 3 + 1;
  c.Isolate(target);
  for (int i = 0; i < 10; ++i) c.ProposeAndSettle(old, "p" + std::to_string(i));
  c.Heal();
  const uint64_t last = c.node(old).log().LastIndex();
  ASSERT_LT(c.node(target).log().LastIndex(), last);
  bool timeout_now_seen = false;
  uint64_t target_last_at_timeout_now = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type != MessageType::kTimeoutNow) return;
    timeout_now_seen = true;
    target_last_at_timeout_now = c.node(m.to).log().LastIndex();
  };
  ASSERT_TRUE(c.node(old).TransferLeadership(target).ok());
  c.Process(old);
  for (const Message& m : c.queue()) EXPECT_NE(m.type, MessageType::kTimeoutNow);
  c.DeliverAll();
  ASSERT_TRUE(timeout_now_seen);
  EXPECT_EQ(target_last_at_timeout_now, last);
  EXPECT_EQ(c.Leader(), target);
  c.ProposeAndSettle(target, "after");
  EXPECT_EQ(c.applied(target).size(), c.applied(old).size());
  EXPECT_EQ(c.applied(old).back().data, "after");
  EXPECT_TRUE(c.AppliedArePrefixes());
  EXPECT_FALSE(c.election_safety_violated());
}

TEST(TransferTest, ToAPartitionedFollowerTimesOutAndTheLeaderKeepsServing) {
  TestCluster c(3, 35);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId target = leader % 3 + 1;
  const uint64_t term = c.node(leader).term();
  c.Isolate(target);
  ASSERT_TRUE(c.node(leader).TransferLeadership(target).ok());
  c.Process(leader);
  Result<uint64_t> refused = c.node(leader).Propose("during");
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("transfer in progress"), std::string::npos);
  EXPECT_TRUE(c.node(leader).ReadIndex("read-during").ok());  // reads still work
  int ticks = 0;
  for (; ticks < 100 && c.node(leader).lead_transferee() != kNoNode; ++ticks) {
    // Asking again for the same target does not extend the deadline.
    ASSERT_TRUE(c.node(leader).TransferLeadership(target).ok());
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(ticks, 10);  // one election timeout
  EXPECT_EQ(c.node(leader).role(), Role::kLeader);
  EXPECT_EQ(c.node(leader).term(), term);
  ASSERT_FALSE(c.reads(leader).empty());
  EXPECT_EQ(c.reads(leader).back().context, "read-during");
  c.ProposeAndSettle(leader, "resumed");
  EXPECT_EQ(c.applied(leader).back().data, "resumed");
  const NodeId other = 6 - leader - target;
  EXPECT_EQ(c.applied(other).back().data, "resumed");
  EXPECT_FALSE(c.election_safety_violated());
}

TEST(TransferTest, ASecondTransferReplacesTheRunningOne) {
  TestCluster c(5, 37);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId stuck = leader % 5 + 1;
  const NodeId next = stuck % 5 + 1;
  ASSERT_NE(next, leader);
  c.Isolate(stuck);
  ASSERT_TRUE(c.node(leader).TransferLeadership(stuck).ok());
  c.Process(leader);
  c.DeliverAll();
  EXPECT_EQ(c.node(leader).lead_transferee(), stuck);
  ASSERT_TRUE(c.node(leader).TransferLeadership(next).ok());
  EXPECT_EQ(c.node(leader).lead_transferee(), next);
  c.Process(leader);
  c.DeliverAll();
  EXPECT_EQ(c.Leader(), next);
  // Cancelling: target == self ends a running transfer at once.
  ASSERT_TRUE(c.node(next).TransferLeadership(stuck).ok());
  EXPECT_EQ(c.node(next).Propose("x").status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(c.node(next).TransferLeadership(next).ok());
  EXPECT_EQ(c.node(next).lead_transferee(), kNoNode);
  EXPECT_TRUE(c.node(next).Propose("y").ok());
  EXPECT_FALSE(c.election_safety_violated());
}

TEST(TransferTest, RefusedOnFollowersAndForUnknownTargets) {
  TestCluster c(3, 39);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId f = leader % 3 + 1;
  Status s = c.node(f).TransferLeadership(f);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("not the leader"), std::string::npos);
  s = c.node(leader).TransferLeadership(9);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.node(leader).TransferLeadership(kNoNode).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.node(leader).lead_transferee(), kNoNode);
}

// Three voters and two learners.
void VotersAndLearners(Config& cfg) {
  cfg.peers = {1, 2, 3};
  cfg.learners = {4, 5};
}

TEST(LearnerTest, ALearnerReceivesAndAppliesEveryCommittedEntry) {
  TestCluster c(5, 41, VotersAndLearners);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_LE(leader, 3u);
  for (int i = 0; i < 20; ++i) c.ProposeAndSettle(leader, "v" + std::to_string(i));
  for (NodeId id : {4, 5}) {
    EXPECT_EQ(c.applied(id), c.applied(leader)) << "learner " << id;
    EXPECT_EQ(c.node(id).lead(), leader);
    ASSERT_NE(c.node(leader).PeerProgress(id), nullptr);
    EXPECT_TRUE(c.node(leader).PeerProgress(id)->is_learner);
  }
  EXPECT_EQ(c.node(leader).TransferLeadership(4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.node(leader).lead_transferee(), kNoNode);
}

TEST(LearnerTest, CommitAndQuorumNeedOnlyTheVoters) {
  TestCluster c(5, 43, VotersAndLearners);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_LE(leader, 3u);
  std::vector<NodeId> voters;
  for (NodeId id = 1; id <= 3; ++id) {
    if (id != leader) voters.push_back(id);
  }
  // The leader and one voter commit without either learner.
  c.Isolate(4);
  c.Isolate(5);
  c.Isolate(voters[0]);
  uint64_t index = c.ProposeAndSettle(leader, "two-voters");
  EXPECT_EQ(c.node(leader).log().committed(), index);
  // Both learners and the leader hold the entry, but without a second voter nothing commits.
  c.Heal();
  c.Isolate(voters[0]);
  c.Isolate(voters[1]);
  index = c.ProposeAndSettle(leader, "learners-only");
  EXPECT_EQ(c.node(4).log().LastIndex(), index);
  EXPECT_EQ(c.node(5).log().LastIndex(), index);
  EXPECT_LT(c.node(leader).log().committed(), index);
  // ReadIndex: learners' heartbeat acks do not confirm leadership.
  ASSERT_TRUE(c.node(leader).ReadIndex("r").ok());
  c.Process(leader);
  c.DeliverAll();
  EXPECT_TRUE(c.reads(leader).empty());
  // Check-quorum: learners hearing the leader do not keep it in office.
  EXPECT_TRUE(TickUntil(c, 30, [&] { return c.node(leader).role() != Role::kLeader; }));
  // Once the voters are back the cluster commits again, learners included.
  c.Heal();
  NodeId fresh = c.WaitLeader();
  ASSERT_NE(fresh, kNoNode);
  ASSERT_LE(fresh, 3u);
  c.ProposeAndSettle(fresh, "healed");
  for (NodeId id = 1; id <= 5; ++id) EXPECT_EQ(c.applied(id).back().data, "healed") << id;
  EXPECT_TRUE(c.AppliedArePrefixes());
  EXPECT_FALSE(c.election_safety_violated());
}

TEST(LearnerTest, ALearnersTimeoutNeverStartsAnElection) {
  TestCluster c(5, 45, VotersAndLearners);
  NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  c.ProposeAndSettle(leader, "x");
  const uint64_t term = c.node(leader).term();
  size_t from_learners = 0;
  auto count_campaigns = [&] {
    for (const Message& m : c.queue()) {
      if (m.from >= 4 && (m.type == MessageType::kVote || m.type == MessageType::kPreVote)) {
        ++from_learners;
      }
    }
  };
  c.Isolate(4);
  for (int t = 0; t < 100; ++t) {
    c.node(4).Tick();
    c.Process(4);
  }
  EXPECT_TRUE(c.queue().empty());
  EXPECT_EQ(c.node(4).role(), Role::kFollower);
  EXPECT_EQ(c.node(4).term(), term);
  EXPECT_EQ(c.node(4).Campaign().code(), StatusCode::kFailedPrecondition);
  // Without any leader at all, the learners still only wait.
  c.Heal();
  c.Isolate(1);
  c.Isolate(2);
  c.Isolate(3);
  for (int t = 0; t < 100; ++t) {
    c.TickAll();
    count_campaigns();
    c.DeliverAll();
  }
  EXPECT_EQ(from_learners, 0u);
  for (NodeId id : {4, 5}) {
    EXPECT_EQ(c.node(id).role(), Role::kFollower);
    EXPECT_EQ(c.node(id).term(), term);
  }
}

// Randomized runs: messages are reordered, dropped and duplicated, nodes are partitioned and
// restarted, proposals (and, with `transfers`, leadership transfers to random members) arrive at
// random; every run checks election safety (at most one leader per term), state-machine safety
// (applied sequences are prefixes of each other) and, after the faults stop, that the cluster
// still commits and every member (learners included) applies the final entry. Adds the number
// of kTimeoutNow messages delivered (transfers that got as far as the target) to *timeout_now.
void RunRandomized(uint64_t seed, size_t n, std::function<void(Config&)> tweak, bool transfers,
                   size_t* timeout_now = nullptr, bool compact = false, size_t* snaps = nullptr,
                   size_t* early_crashes = nullptr) {
  Rand rng(seed);
  TestCluster c(n, seed, std::move(tweak));
  if (early_crashes != nullptr) {
    c.crash_after_early_send = [&](NodeId) {
      const bool crash = rng.Chance(0.05);
      *early_crashes += crash ? 1 : 0;
      return crash;
    };
  }
  c.on_deliver = [&](const Message& m) {
    if (timeout_now != nullptr && m.type == MessageType::kTimeoutNow) ++*timeout_now;
    if (snaps != nullptr && m.type == MessageType::kSnap) ++*snaps;
  };
  int proposals = 0;
  for (int step = 0; step < 3000; ++step) {
    const uint64_t r = rng.Uniform(100);
    const NodeId id = 1 + rng.Uniform(n);
    if (c.RandomNetworkStep(rng, r, id)) {
      // a tick or a message: nothing more to do in this step
    } else if (r < 90) {
      if (c.node(id).role() != Role::kLeader) continue;
      if (transfers && rng.Chance(0.2)) {
        const NodeId target = 1 + rng.Uniform(n);
        Status s = c.node(id).TransferLeadership(target);
        ASSERT_TRUE(s.ok() || (s.code() == StatusCode::kInvalidArgument &&
                               c.node(id).PeerProgress(target)->is_learner))
            << s.ToString();
      } else {
        Result<uint64_t> p = c.node(id).Propose("s" + std::to_string(proposals++));
        ASSERT_TRUE(p.ok() || (transfers && p.status().code() == StatusCode::kUnavailable))
            << p.status().ToString();
      }
      c.Process(id);
    } else if (r < 93) {
      if (rng.Chance(0.5)) {
        c.Isolate(id);
      } else {
        c.Heal();
      }
    } else if (r < 94) {
      c.Start(id);
    } else if (compact && r >= 97) {
      // Host-side compaction at a random applied index past the current snapshot.
      const uint64_t first = c.storage(id).FirstIndex();
      if (c.applied(id).empty() || c.applied(id).back().index < first) continue;
      const uint64_t index = first + rng.Uniform(c.applied(id).back().index - first + 1);
      ASSERT_TRUE(c.Compact(id, index));
    } else {
      c.TickAll();
    }
    ASSERT_FALSE(c.election_safety_violated());
  }
  ASSERT_TRUE(c.AppliedArePrefixes());
  c.Heal();
  c.crash_after_early_send = nullptr;  // the faults are over
  NodeId leader = kNoNode;
  // A transfer may still be running on the leader found; it ends within an election timeout.
  for (int attempt = 0; attempt < 30; ++attempt) {
    leader = c.WaitLeader(1000);
    ASSERT_NE(leader, kNoNode);
    if (c.node(leader).lead_transferee() == kNoNode) break;
    c.TickAll();
  }
  c.ProposeAndSettle(leader, "final");
  for (int t = 0; t < 100; ++t) {
    bool all = true;
    for (NodeId x = 1; x <= n; ++x) {
      all = all && !c.applied(x).empty() && c.applied(x).back().data == "final";
    }
    if (all) break;
    c.TickAll();
    c.DeliverAll();
  }
  for (NodeId x = 1; x <= n; ++x) {
    ASSERT_FALSE(c.applied(x).empty());
    EXPECT_EQ(c.applied(x).back().data, "final") << "node " << x;
  }
  ASSERT_TRUE(c.AppliedArePrefixes());
  ASSERT_FALSE(c.election_safety_violated());
}

TEST(RandomizedTest, SafetyUnderDropsReorderPartitionsAndRestarts) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunRandomized(seed, seed % 2 == 0 ? 3 : 5, nullptr, false);
    if (HasFatalFailure()) return;
  }
}

TEST(RandomizedTest, SafetyWithCompactionAndInstallSnapshot) {
  size_t snaps = 0;
  for (uint64_t seed = 0; seed < 150; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunRandomized(seed, seed % 2 == 0 ? 3 : 5, nullptr, seed % 3 == 0, nullptr, true, &snaps);
    if (HasFatalFailure()) return;
  }
  // Followers did fall behind a compaction and were sent snapshots.
  EXPECT_GT(snaps, 100u);
}

TEST(RandomizedTest, SafetyWithLeadershipTransfers) {
  size_t timeout_now = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunRandomized(seed, seed % 2 == 0 ? 3 : 5, nullptr, true, &timeout_now);
    if (HasFatalFailure()) return;
  }
  // The runs did exercise handovers, not only refused or abandoned transfers.
  EXPECT_GT(timeout_now, 50u);
}

// Config::leader_parallel_persist: leaders send their appends before persisting them and
// sometimes crash right after (the Ready is lost); followers then hold entries their leader
// lost, and a commit must never have counted the leader's unpersisted copy.
TEST(RandomizedTest, SafetyWithLeadersPersistingInParallel) {
  size_t early_crashes = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunRandomized(
        seed, seed % 2 == 0 ? 3 : 5, [](Config& c) { c.leader_parallel_persist = true; },
        seed % 4 == 0, nullptr, seed % 3 == 0, nullptr, &early_crashes);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(early_crashes, 200u);
}

TEST(RandomizedTest, SafetyWithThreeVotersAndTwoLearners) {
  size_t timeout_now = 0;
  for (uint64_t seed = 0; seed < 150; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunRandomized(seed, 5, VotersAndLearners, true, &timeout_now);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(timeout_now, 40u);
}

}  // namespace
}  // namespace dtx::raft
