// Membership change, one server at a time (Raft thesis section 4.1 and chapter 4's fixes).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "consensus/raft/raft.h"
#include "consensus/raft/test_cluster.h"

namespace dtx::raft {
namespace {

using testing::TestCluster;

// Nodes 1..3 are the bootstrap voters; node 4 exists but joins only when added (it starts as a
// learner of its own, so it does not campaign before its log makes it a voter).
TestCluster FourWithJoiner(uint64_t seed = 1, bool pre_vote = true) {
  return TestCluster(4, seed, [pre_vote](Config& c) {
    c.peers = {1, 2, 3};
    c.learners.clear();
    if (c.id == 4) c.learners = {4};
    c.pre_vote = pre_vote;
  });
}

std::vector<NodeId> V(std::initializer_list<NodeId> ids) { return ids; }

// The first three of nodes 1..n other than `leader`.
std::vector<NodeId> Others(NodeId leader, NodeId n) {
  std::vector<NodeId> out;
  for (NodeId id = 1; id <= n; ++id) {
    if (id != leader) out.push_back(id);
  }
  return out;
}

Status ProposeCC(TestCluster& c, NodeId leader, ConfChangeType type, NodeId node) {
  Result<uint64_t> r = c.node(leader).ProposeConfChange(ConfChange{type, node});
  c.Process(leader);
  return r.status();
}

TEST(ConfChangeTest, EncodingRoundTripsAndRefusesGarbage) {
  ConfChange cc{ConfChangeType::kAddLearner, 0x0102030405060708ull};
  ConfChange out;
  ASSERT_TRUE(DecodeConfChange(EncodeConfChange(cc), &out));
  EXPECT_EQ(out, cc);
  EXPECT_FALSE(DecodeConfChange("", &out));
  EXPECT_FALSE(DecodeConfChange(EncodeConfChange(cc) + "x", &out));
  std::string bad_type = EncodeConfChange(cc);
  bad_type[0] = 9;
  EXPECT_FALSE(DecodeConfChange(bad_type, &out));
  EXPECT_FALSE(DecodeConfChange(EncodeConfChange(ConfChange{ConfChangeType::kAddVoter, 0}), &out));
}

// Thesis 4.1: "the new server ... catches up", then it counts: with 4 voters a quorum is 3.
TEST(MembershipTest, AddedVoterCatchesUpThenCommitsNeedThreeOfFour) {
  TestCluster c = FourWithJoiner();
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_NE(leader, 4u);
  for (int i = 0; i < 5; ++i) c.ProposeAndSettle(leader, "x" + std::to_string(i));
  EXPECT_TRUE(c.applied(4).empty());  // not a member yet: nobody replicates to it

  ASSERT_TRUE(ProposeCC(c, leader, ConfChangeType::kAddVoter, 4).ok());
  // On append: the leader uses the new configuration at once.
  EXPECT_EQ(c.node(leader).conf_state().voters, V({1, 2, 3, 4}));
  c.DeliverAll();
  c.TickAll();  // a heartbeat carries the final commit index
  c.DeliverAll();
  const uint64_t last = c.node(leader).log().LastIndex();
  EXPECT_EQ(c.node(4).log().committed(), last);
  EXPECT_EQ(c.node(4).conf_state().voters, V({1, 2, 3, 4}));
  EXPECT_TRUE(c.node(4).conf_state().learners.empty());
  EXPECT_FALSE(c.node(4).is_learner());
  ASSERT_NE(c.node(leader).PeerProgress(4), nullptr);
  EXPECT_EQ(c.node(leader).PeerProgress(4)->match, last);
  EXPECT_TRUE(c.AppliedArePrefixes());
  EXPECT_EQ(c.applied(4).size(), c.applied(leader).size());

  // Leader + the new voter are 2 of 4: no commit.
  const std::vector<NodeId> old = Others(leader, 3);
  c.Isolate(old[0]);
  c.Isolate(old[1]);
  const uint64_t before = c.node(leader).log().committed();
  const uint64_t idx = c.ProposeAndSettle(leader, "two-of-four");
  EXPECT_EQ(c.node(4).log().LastIndex(), idx);
  EXPECT_EQ(c.node(leader).log().committed(), before);
  // One old follower back: 3 of 4 commit.
  c.Heal();
  c.Isolate(old[0]);
  c.TickAll();
  c.DeliverAll();
  EXPECT_GE(c.node(leader).log().committed(), idx);
  EXPECT_TRUE(c.AppliedArePrefixes());
}

TEST(MembershipTest, RemovedFollowerGetsNothingMoreAndTheRestCommitWithTwo) {
  TestCluster c(3);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId gone = Others(leader, 3)[1];
  const NodeId stays = Others(leader, 3)[0];
  ASSERT_TRUE(ProposeCC(c, leader, ConfChangeType::kRemoveVoter, gone).ok());
  c.DeliverAll();
  EXPECT_EQ(c.node(leader).PeerProgress(gone), nullptr);
  std::vector<NodeId> expect{leader, stays};
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(c.node(leader).conf_state().voters, expect);
  EXPECT_EQ(c.node(stays).conf_state().voters, expect);
  size_t to_gone = 0;
  c.on_deliver = [&](const Message& m) { to_gone += m.to == gone; };
  for (int t = 0; t < 30; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  c.Isolate(gone);
  const uint64_t idx = c.ProposeAndSettle(leader, "after");
  EXPECT_EQ(c.node(leader).log().committed(), idx);
  EXPECT_EQ(to_gone, 0u);
  EXPECT_EQ(c.node(leader).role(), Role::kLeader);
}

// Thesis 4.2.2: a leader that is not in C_new steps down once C_new is committed.
TEST(MembershipTest, RemovedLeaderStepsDownAfterCommitAndTheRestElect) {
  TestCluster c(3);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const uint64_t term = c.node(leader).term();
  Result<uint64_t> idx = c.node(leader).ProposeConfChange({ConfChangeType::kRemoveVoter, leader});
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  c.Process(leader);
  // Not committed yet: it keeps leading (without counting itself).
  EXPECT_EQ(c.node(leader).role(), Role::kLeader);
  c.DeliverAll();
  EXPECT_EQ(c.node(leader).role(), Role::kFollower);
  EXPECT_GE(c.node(leader).log().committed(), *idx);
  for (NodeId id : Others(leader, 3)) EXPECT_GE(c.node(id).log().committed(), *idx);
  const NodeId next = c.WaitLeader(500, leader);
  ASSERT_NE(next, kNoNode);
  EXPECT_GT(c.node(next).term(), term);
  EXPECT_EQ(c.node(next).conf_state().voters.size(), 2u);
  for (int t = 0; t < 100; ++t) {
    c.TickAll();
    c.DeliverAll();
    ASSERT_NE(c.node(leader).role(), Role::kLeader);
    ASSERT_NE(c.node(leader).role(), Role::kCandidate);
  }
  EXPECT_EQ(c.Leader(leader), next);
  EXPECT_NE(c.ProposeAndSettle(next, "y"), 0u);
  EXPECT_TRUE(c.AppliedArePrefixes());
  EXPECT_FALSE(c.election_safety_violated());
}

TEST(MembershipTest, SecondChangeIsRefusedWhileOneIsUncommitted) {
  TestCluster c(3);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId f = Others(leader, 3)[0];
  c.Isolate(leader);
  ASSERT_TRUE(ProposeCC(c, leader, ConfChangeType::kRemoveVoter, f).ok());
  Status s = ProposeCC(c, leader, ConfChangeType::kAddVoter, f);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("one change at a time"), std::string::npos) << s.ToString();
  c.queue().clear();
  c.Heal();
  c.TickAll();
  c.DeliverAll();
  EXPECT_EQ(c.node(leader).conf_state().voters.size(), 2u);
  EXPECT_TRUE(ProposeCC(c, leader, ConfChangeType::kAddVoter, f).ok());
  c.DeliverAll();
  EXPECT_EQ(c.node(leader).conf_state().voters.size(), 3u);
}

// Ongaro, raft-dev 2015: a leader may change the membership only after committing an entry of
// its own term.
TEST(MembershipTest, NewLeaderMustCommitAnEntryOfItsTermFirst) {
  TestCluster c(3);
  ASSERT_TRUE(c.node(1).Campaign().ok());
  c.Process(1);
  for (int k = 0; k < 100 && c.node(1).role() != Role::kLeader && !c.queue().empty(); ++k) {
    Message m = c.queue().front();
    c.queue().pop_front();
    c.Deliver(m);
  }
  ASSERT_EQ(c.node(1).role(), Role::kLeader);
  Status s = ProposeCC(c, 1, ConfChangeType::kRemoveVoter, 3);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("entry of its term"), std::string::npos) << s.ToString();
  c.DeliverAll();
  EXPECT_TRUE(ProposeCC(c, 1, ConfChangeType::kRemoveVoter, 3).ok());
}

TEST(MembershipTest, BadProposalsAreRefusedWithClearErrors) {
  TestCluster c(3);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId f = Others(leader, 3)[0];
  EXPECT_EQ(c.node(f).ProposeConfChange({ConfChangeType::kAddVoter, 9}).status().code(),
            StatusCode::kFailedPrecondition);
  auto code = [&](ConfChangeType t, NodeId n) { return ProposeCC(c, leader, t, n).code(); };
  EXPECT_EQ(code(ConfChangeType::kAddVoter, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ConfChangeType::kAddVoter, f), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ConfChangeType::kAddLearner, f), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ConfChangeType::kRemoveVoter, 9), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.node(leader).log().LastIndex(), c.node(leader).log().committed());

  TestCluster one(1);
  ASSERT_EQ(one.WaitLeader(), 1u);
  Status s = ProposeCC(one, 1, ConfChangeType::kRemoveVoter, 1);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("no voter"), std::string::npos) << s.ToString();
}

// Thesis 4.2.3: removed servers must not disrupt the cluster. Node 3 never learns of its
// removal and keeps campaigning, with pre-vote and without.
TEST(MembershipTest, RemovedNodeCannotDisruptWithItsVotes) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(pre_vote ? "pre-vote" : "no pre-vote");
    TestCluster c(3, 5, [pre_vote](Config& cfg) { cfg.pre_vote = pre_vote; });
    ASSERT_TRUE(c.node(1).Campaign().ok());
    c.Process(1);
    ASSERT_EQ(c.WaitLeader(), 1u);
    c.Isolate(3);
    ASSERT_TRUE(ProposeCC(c, 1, ConfChangeType::kRemoveVoter, 3).ok());
    c.DeliverAll();
    ASSERT_EQ(c.node(1).conf_state().voters, V({1, 2}));
    EXPECT_EQ(c.node(3).conf_state().voters, V({1, 2, 3}));
    c.Heal();
    const uint64_t term = c.node(1).term();
    for (int t = 0; t < 200; ++t) {
      c.TickAll();
      c.DeliverAll();
    }
    EXPECT_EQ(c.node(1).role(), Role::kLeader);
    EXPECT_EQ(c.node(1).term(), term);
    EXPECT_EQ(c.node(2).lead(), 1u);
    if (!pre_vote) {
      EXPECT_GT(c.node(3).term(), term);  // it campaigned, unheard
    }
  }
}

TEST(MembershipTest, ConfigurationSurvivesRestartFromTheLog) {
  TestCluster c = FourWithJoiner();
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  ASSERT_TRUE(ProposeCC(c, leader, ConfChangeType::kAddVoter, 4).ok());
  c.DeliverAll();
  for (NodeId id = 1; id <= 4; ++id) {
    c.Start(id);  // bootstrap config says {1,2,3}; the log says otherwise
    EXPECT_EQ(c.node(id).conf_state().voters, V({1, 2, 3, 4})) << id;
    EXPECT_FALSE(c.node(id).is_learner());
  }
  const NodeId next = c.WaitLeader();
  ASSERT_NE(next, kNoNode);
  EXPECT_NE(c.ProposeAndSettle(next, "z"), 0u);
  EXPECT_TRUE(c.AppliedArePrefixes());
}

TEST(MembershipTest, ConfigurationSurvivesRestartFromASnapshotAndReachesANewNodeInOne) {
  TestCluster c = FourWithJoiner();
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId gone = Others(leader, 3)[1];
  ASSERT_TRUE(ProposeCC(c, leader, ConfChangeType::kRemoveVoter, gone).ok());
  c.DeliverAll();
  for (int i = 0; i < 3; ++i) c.ProposeAndSettle(leader, "s" + std::to_string(i));
  // Every member snapshots at its applied index, recording the configuration there.
  for (NodeId id = 1; id <= 3; ++id) {
    if (id == gone) continue;
    const uint64_t applied = c.node(id).GetStatus().applied;
    Result<ConfState> cs = c.node(id).ConfStateAt(applied);
    ASSERT_TRUE(cs.ok()) << cs.status().ToString();
    EXPECT_EQ(cs->voters.size(), 2u);
    ASSERT_EQ(c.applied(id).back().index, applied);
    ASSERT_TRUE(
        c.storage(id).CreateSnapshot(applied, testing::EncodeEntries(c.applied(id)), *cs).ok());
    ASSERT_TRUE(c.storage(id).Compact(applied).ok());
    c.Start(id);
    EXPECT_EQ(c.node(id).conf_state(), *cs) << id;
    EXPECT_EQ(c.node(id).GetStatus().snapshot_index, applied);
  }
  EXPECT_EQ(c.node(leader).ConfStateAt(0).status().code(), StatusCode::kNotFound);
  NodeId next = kNoNode;
  for (int t = 0; t < 500 && next == kNoNode; ++t) {
    c.TickAll();
    c.DeliverAll();
    for (NodeId id = 1; id <= 3; ++id) {
      if (id != gone && c.node(id).role() == Role::kLeader) next = id;
    }
  }
  ASSERT_NE(next, kNoNode);
  ASSERT_TRUE(c.node(next).Propose("own term").ok());  // commit an entry of its term first
  c.Process(next);
  c.DeliverAll();
  // Node 4 joins: it needs the snapshot (with the configuration) and then the change.
  ASSERT_TRUE(c.node(next).ProposeConfChange({ConfChangeType::kAddVoter, 4}).status().ok());
  c.Process(next);
  c.DeliverAll();
  EXPECT_GT(c.node(4).GetStatus().snapshot_index, 0u);
  std::vector<NodeId> expect = c.node(next).conf_state().voters;
  EXPECT_EQ(expect.size(), 3u);
  EXPECT_EQ(c.node(4).conf_state().voters, expect);
  EXPECT_EQ(c.node(4).log().committed(), c.node(next).log().committed());
}

TEST(MembershipTest, LearnerIsPromotedAndCanThenLead) {
  TestCluster c(4, 3, [](Config& cfg) {
    cfg.peers = {1, 2, 3};
    cfg.learners = {4};
  });
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  EXPECT_EQ(c.node(leader).TransferLeadership(4).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(ProposeCC(c, leader, ConfChangeType::kAddVoter, 4).ok());
  c.DeliverAll();
  EXPECT_FALSE(c.node(4).is_learner());
  EXPECT_EQ(c.node(4).conf_state().voters, V({1, 2, 3, 4}));
  ASSERT_TRUE(c.node(leader).TransferLeadership(4).ok());
  c.Process(leader);
  c.DeliverAll();
  EXPECT_EQ(c.node(4).role(), Role::kLeader);
}

// On append, a change takes effect; truncation of the uncommitted change reverts it.
TEST(MembershipTest, TruncatedUncommittedChangeIsReverted) {
  TestCluster c(3);
  ASSERT_TRUE(c.node(1).Campaign().ok());
  c.Process(1);
  ASSERT_EQ(c.WaitLeader(), 1u);
  c.Isolate(1);
  ASSERT_TRUE(ProposeCC(c, 1, ConfChangeType::kRemoveVoter, 3).ok());
  EXPECT_EQ(c.node(1).conf_state().voters, V({1, 2}));
  c.queue().clear();
  const NodeId next = c.WaitLeader(500, 1);
  ASSERT_NE(next, kNoNode);
  c.ProposeAndSettle(next, "overwrites");
  c.Heal();
  for (int t = 0; t < 50 && c.node(1).conf_state().voters.size() != 3; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(c.node(1).conf_state().voters, V({1, 2, 3}));
  EXPECT_EQ(c.node(1).lead(), next);
  EXPECT_TRUE(c.AppliedArePrefixes());
}

TEST(MembershipTest, ReadyReportsConfigurationChanges) {
  MemoryStorage s;
  Config cfg = testing::TestConfig(1, 1);
  auto n = testing::MustCreate(cfg, &s);
  ASSERT_TRUE(n->Campaign().ok());
  testing::Drain(*n, s);
  ASSERT_EQ(n->role(), Role::kLeader);
  ASSERT_TRUE(n->ProposeConfChange({ConfChangeType::kAddLearner, 2}).ok());
  ASSERT_TRUE(n->HasReady());
  Ready rd = n->Ready();
  ASSERT_TRUE(rd.conf_state.has_value());
  EXPECT_EQ(rd.conf_state->learners, V({2}));
  bool saw_committed = false;
  (void)testing::PersistReady(s, rd);
  for (const Entry& e : rd.committed_entries) {
    ConfChange cc;
    if (e.type == EntryType::kConfChange && DecodeConfChange(e.data, &cc)) saw_committed = true;
  }
  n->Advance(rd);
  for (int k = 0; k < 10 && n->HasReady(); ++k) {
    Ready r2 = n->Ready();
    EXPECT_FALSE(r2.conf_state.has_value());
    (void)testing::PersistReady(s, r2);
    for (const Entry& e : r2.committed_entries) saw_committed |= e.type == EntryType::kConfChange;
    n->Advance(r2);
  }
  EXPECT_TRUE(saw_committed);
  EXPECT_EQ(n->GetStatus().conf_state.learners, V({2}));
}

// Randomized runs with membership changes mixed in: five nodes, voters {1,2,3} at bootstrap,
// 4 and 5 waiting to be added; messages are reordered, dropped and duplicated, nodes are
// partitioned, restarted and compacted (recording the configuration), and leaders propose random
// changes. Every run checks election safety and state-machine safety, and after the faults stop
// that a leader of the final configuration commits and every member applies its entry. Adds the
// number of changes accepted to *changes.
void RunRandomizedMembership(uint64_t seed, size_t* changes) {
  const size_t n = 5;
  Rand rng(seed);
  TestCluster c(n, seed, [](Config& cfg) {
    cfg.peers = {1, 2, 3};
    cfg.learners.clear();
    if (cfg.id > 3) cfg.learners = {cfg.id};
  });
  int proposals = 0;
  for (int step = 0; step < 3000; ++step) {
    const uint64_t r = rng.Uniform(100);
    const NodeId id = 1 + rng.Uniform(n);
    if (c.RandomNetworkStep(rng, r, id)) {
      // a tick or a message: nothing more to do in this step
    } else if (r < 88) {
      if (c.node(id).role() != Role::kLeader) continue;
      Result<uint64_t> p = c.node(id).Propose("s" + std::to_string(proposals++));
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      c.Process(id);
    } else if (r < 91) {
      if (c.node(id).role() != Role::kLeader) continue;
      const auto type = static_cast<ConfChangeType>(rng.Uniform(3));
      const NodeId target = 1 + rng.Uniform(n);
      Result<uint64_t> p = c.node(id).ProposeConfChange({type, target});
      const StatusCode code = p.status().code();
      ASSERT_TRUE(p.ok() || code == StatusCode::kFailedPrecondition ||
                  code == StatusCode::kInvalidArgument)
          << p.status().ToString();
      if (p.ok()) ++*changes;
      c.Process(id);
    } else if (r < 93) {
      if (rng.Chance(0.5)) {
        c.Isolate(id);
      } else {
        c.Heal();
      }
    } else if (r < 94) {
      c.Start(id);
    } else if (r < 96) {
      // Host-side compaction at the applied index, recording the configuration there.
      const uint64_t applied = c.node(id).GetStatus().applied;
      if (c.applied(id).empty() || c.applied(id).back().index != applied ||
          applied < c.storage(id).FirstIndex()) {
        continue;
      }
      Result<ConfState> cs = c.node(id).ConfStateAt(applied);
      ASSERT_TRUE(cs.ok()) << cs.status().ToString();
      ASSERT_TRUE(
          c.storage(id).CreateSnapshot(applied, testing::EncodeEntries(c.applied(id)), *cs).ok());
      ASSERT_TRUE(c.storage(id).Compact(applied).ok());
    } else {
      c.TickAll();
    }
    ASSERT_FALSE(c.election_safety_violated());
  }
  ASSERT_TRUE(c.AppliedArePrefixes());
  c.Heal();
  NodeId leader = kNoNode;
  uint64_t final_index = 0;
  for (int t = 0; t < 3000 && final_index == 0; ++t) {
    c.TickAll();
    c.DeliverAll();
    for (NodeId x = 1; x <= n && final_index == 0; ++x) {
      RawNode& node = c.node(x);
      if (node.role() != Role::kLeader) continue;
      const auto& voters = node.conf_state().voters;
      if (std::find(voters.begin(), voters.end(), x) == voters.end()) continue;
      Result<uint64_t> p = node.Propose("final");
      if (!p.ok()) continue;
      leader = x;
      final_index = *p;
      c.Process(x);
    }
  }
  if (leader == kNoNode) {
    for (NodeId y = 1; y <= n; ++y) {
      const auto& cs = c.node(y).conf_state();
      NodeStatus st = c.node(y).GetStatus();
      std::string v;
      for (auto x : cs.voters) v += std::to_string(x) + ",";
      v += " L:";
      for (auto x : cs.learners) v += std::to_string(x) + ",";
      ADD_FAILURE() << "n" << y << " role=" << RoleName(st.role) << " term=" << st.term
                    << " vote=" << st.vote << " lead=" << st.lead << " last=" << st.last_index
                    << " lastterm=" << c.node(y).log().LastTerm() << " commit=" << st.commit
                    << " applied=" << st.applied << " snap=" << st.snapshot_index
                    << " voters=" << v;
    }
  }
  ASSERT_NE(leader, kNoNode);
  const ConfState members = c.node(leader).conf_state();
  auto applied_final = [&](NodeId x) {
    return !c.applied(x).empty() && c.applied(x).back().index >= final_index;
  };
  for (int t = 0; t < 500; ++t) {
    bool all = true;
    for (NodeId x : members.voters) all = all && applied_final(x);
    for (NodeId x : members.learners) all = all && applied_final(x);
    if (all) break;
    c.TickAll();
    c.DeliverAll();
  }
  for (NodeId x : members.voters) EXPECT_TRUE(applied_final(x)) << "voter " << x;
  for (NodeId x : members.learners) EXPECT_TRUE(applied_final(x)) << "learner " << x;
  ASSERT_TRUE(c.AppliedArePrefixes());
  ASSERT_FALSE(c.election_safety_violated());
}

TEST(MembershipRandomizedTest, SafetyWithChangesDropsPartitionsRestartsAndCompaction) {
  size_t changes = 0;
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RunRandomizedMembership(seed, &changes);
    if (HasFatalFailure()) return;
  }
  // The runs did change the membership, not only get refused.
  EXPECT_GT(changes, 1000u);
}

}  // namespace
}  // namespace dtx::raft
