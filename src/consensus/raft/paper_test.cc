// One test per rule of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
// Consensus Algorithm (Extended Version)"), the sentence quoted above each test. Single nodes
// are driven by hand with Step/Tick; figure 7 uses the cluster harness.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "consensus/raft/raft.h"
#include "consensus/raft/test_cluster.h"

namespace dtx::raft {
namespace {

using testing::Drain;
using testing::MustCreate;
using testing::TestCluster;
using testing::TestConfig;

std::vector<Entry> Terms(const std::vector<uint64_t>& terms) {
  std::vector<Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) {
    Entry e;
    e.index = i + 1;
    e.term = terms[i];
    out.push_back(e);
  }
  return out;
}

Message Msg(MessageType type, NodeId from, NodeId to, uint64_t term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

// A single node under test with its storage; plain Raft (no pre-vote, no check-quorum) unless
// the test turns them on.
struct Solo {
  explicit Solo(size_t n = 3, std::vector<uint64_t> log_terms = {}, HardState hs = {},
                bool pre_vote = false, bool check_quorum = false, uint64_t seed = 1) {
    EXPECT_TRUE(storage.Append(Terms(log_terms)).ok());
    storage.SetHardState(hs);
    Config c = TestConfig(1, n, seed);
    c.pre_vote = pre_vote;
    c.check_quorum = check_quorum;
    node = MustCreate(c, &storage);
    peers = n;
  }
  std::vector<Message> Drain() { return testing::Drain(*node, storage, &applied); }
  void Step(const Message& m) { ASSERT_TRUE(node->Step(m).ok()); }
  // Campaigns and collects grants from peers 2..quorum, ending as leader.
  void MakeLeader() {
    ASSERT_TRUE(node->Campaign().ok());
    Drain();
    for (NodeId p = 2; p <= peers / 2 + 1; ++p) {
      Step(Msg(MessageType::kVoteResp, p, 1, node->term()));
    }
    ASSERT_EQ(node->role(), Role::kLeader);
  }

  MemoryStorage storage;
  std::unique_ptr<RawNode> node;
  std::vector<Entry> applied;
  size_t peers = 3;
};

std::unique_ptr<Solo> MakeSolo(size_t n, std::vector<uint64_t> log_terms = {}, HardState hs = {}) {
  return std::make_unique<Solo>(n, std::move(log_terms), hs);
}

std::vector<Message> OfType(const std::vector<Message>& msgs, MessageType t) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == t) out.push_back(m);
  }
  return out;
}

// 5.1: "If one server's current term is smaller than the other's, then it updates its current
// term to the larger value. If a candidate or leader discovers that its term is out of date, it
// immediately reverts to follower state."
TEST(PaperElectionTest, HigherTermTurnsAnyRoleIntoFollower) {
  for (Role start : {Role::kFollower, Role::kCandidate, Role::kLeader}) {
    auto s = MakeSolo(3);
    if (start == Role::kCandidate) {
      ASSERT_TRUE(s->node->Campaign().ok());
    }
    if (start == Role::kLeader) s->MakeLeader();
    s->Drain();
    s->Step(Msg(MessageType::kApp, 2, 1, 5));
    EXPECT_EQ(s->node->term(), 5u) << RoleName(start);
    EXPECT_EQ(s->node->role(), Role::kFollower) << RoleName(start);
    EXPECT_EQ(s->node->lead(), 2u);
  }
}

// 5.1: "If a server receives a request with a stale term number, it rejects the request."
TEST(PaperElectionTest, StaleTermRequestsAreRejected) {
  auto s = MakeSolo(3, {}, HardState{2, kNoNode, 0});
  s->Step(Msg(MessageType::kApp, 2, 1, 1));
  s->Step(Msg(MessageType::kVote, 3, 1, 1));
  EXPECT_EQ(s->node->term(), 2u);
  EXPECT_EQ(s->node->lead(), kNoNode);
  EXPECT_TRUE(s->Drain().empty());
  // With pre-vote/check-quorum the stale leader is told the newer term instead.
  Solo q(3, {}, HardState{2, kNoNode, 0}, true, true);
  q.Step(Msg(MessageType::kApp, 2, 1, 1));
  std::vector<Message> out = q.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kAppResp);
  EXPECT_EQ(out[0].term, 2u);
}

// 5.2: "When servers start up, they begin as followers."
TEST(PaperElectionTest, StartAsFollower) {
  auto s = MakeSolo(3);
  EXPECT_EQ(s->node->role(), Role::kFollower);
  EXPECT_EQ(s->node->term(), 0u);
}

// 5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all
// followers in order to maintain their authority."
TEST(PaperElectionTest, LeaderSendsHeartbeatsEveryHeartbeatTick) {
  auto s = MakeSolo(3);
  s->MakeLeader();
  s->Drain();
  s->node->Tick();
  std::vector<Message> hb = OfType(s->Drain(), MessageType::kHeartbeat);
  ASSERT_EQ(hb.size(), 2u);
  std::set<NodeId> to;
  for (const Message& m : hb) {
    to.insert(m.to);
    EXPECT_TRUE(m.entries.empty());
    EXPECT_EQ(m.term, s->node->term());
  }
  EXPECT_EQ(to, (std::set<NodeId>{2, 3}));
}

// 5.2: "If a follower receives no communication over a period of time called the election
// timeout, then it ... begins an election ... increments its current term and transitions to
// candidate state. It then votes for itself and issues RequestVote RPCs in parallel to each of
// the other servers in the cluster." And: a candidate that neither wins nor loses "will time out
// and start a new election by incrementing its term".
TEST(PaperElectionTest, TimeoutStartsAnElection) {
  auto s = MakeSolo(3, {1, 1}, HardState{1, kNoNode, 0});
  for (uint64_t round = 1; round <= 2; ++round) {
    std::vector<Message> votes;
    // Any timeout is below 2 * election_tick.
    for (int t = 0; t < 20 && votes.empty(); ++t) {
      s->node->Tick();
      votes = OfType(s->Drain(), MessageType::kVote);
    }
    EXPECT_EQ(s->node->role(), Role::kCandidate);
    EXPECT_EQ(s->node->GetStatus().vote, 1u);
    ASSERT_EQ(votes.size(), 2u);
    EXPECT_EQ(s->node->term(), 1 + round);
    for (const Message& m : votes) {
      EXPECT_EQ(m.index, 2u);
      EXPECT_EQ(m.log_term, 1u);
      EXPECT_EQ(m.term, s->node->term());
    }
  }
}

// 5.2: "A candidate wins an election if it receives votes from a majority of the servers in the
// full cluster for the same term." Otherwise it loses (a majority rejects) or the outcome is open.
TEST(PaperElectionTest, ElectionOutcomeInOneRound) {
  struct Case {
    size_t n;
    std::map<NodeId, bool> votes;
    Role want;
  };
  const std::vector<Case> cases = {
      {1, {}, Role::kLeader},
      {3, {{2, true}}, Role::kLeader},
      {3, {{2, true}, {3, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, false}, {3, false}}, Role::kFollower},
      {5, {{2, true}, {3, false}, {4, false}, {5, false}}, Role::kFollower},
      {3, {}, Role::kCandidate},
      {5, {{2, true}}, Role::kCandidate},
      {5, {{2, false}, {3, false}}, Role::kCandidate},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto s = MakeSolo(cases[i].n);
    ASSERT_TRUE(s->node->Campaign().ok());
    s->Drain();
    for (const auto& [p, grant] : cases[i].votes) {
      Message m = Msg(MessageType::kVoteResp, p, 1, 1);
      m.reject = !grant;
      s->Step(m);
    }
    EXPECT_EQ(s->node->role(), cases[i].want) << "case " << i;
    EXPECT_EQ(s->node->term(), 1u) << "case " << i;
  }
}

// 5.2: "Each server will vote for at most one candidate in a given term, on a
// first-come-first-served basis."
TEST(PaperElectionTest, VoteAtMostOncePerTerm) {
  struct Case {
    NodeId voted;
    NodeId candidate;
    bool reject;
  };
  for (const Case& c : std::vector<Case>{
           {kNoNode, 2, false}, {2, 2, false}, {3, 3, false}, {2, 3, true}, {3, 2, true}}) {
    auto s = MakeSolo(3, {}, HardState{1, c.voted, 0});
    s->Step(Msg(MessageType::kVote, c.candidate, 1, 1));
    std::vector<Message> out = s->Drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, MessageType::kVoteResp);
    EXPECT_EQ(out[0].reject, c.reject) << c.voted << " asked by " << c.candidate;
    // The vote reaches stable storage in the same Ready that carries the response.
    if (!c.reject) {
      EXPECT_EQ(s->storage.InitialState().vote, c.candidate);
    }
  }
}

// 5.2: "While waiting for votes, a candidate may receive an AppendEntries RPC from another server
// claiming to be leader. If the leader's term ... is at least as large as the candidate's
// current term, then the candidate recognizes the leader as legitimate and returns to follower
// state."
TEST(PaperElectionTest, CandidateFallsBackToALegitimateLeader) {
  for (uint64_t term : {1, 2}) {
    auto s = MakeSolo(3);
    ASSERT_TRUE(s->node->Campaign().ok());
    ASSERT_EQ(s->node->role(), Role::kCandidate);
    s->Step(Msg(MessageType::kApp, 2, 1, term));
    EXPECT_EQ(s->node->role(), Role::kFollower);
    EXPECT_EQ(s->node->term(), term);
    EXPECT_EQ(s->node->lead(), 2u);
  }
}

// 5.2: "Raft uses randomized election timeouts ... election timeouts are chosen randomly from a
// fixed interval (e.g., 150-300ms)." Here: [election_tick, 2*election_tick) ticks, drawn from
// the injected seed, so nodes with different seeds time out at different ticks.
TEST(PaperElectionTest, ElectionTimeoutsAreRandomizedPerSeed) {
  std::set<int> seen;
  std::set<int> first_timeouts;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Solo s(3, {}, {}, false, false, seed);
    int ticks = 0;
    while (ticks < 100 && s.node->role() == Role::kFollower) {
      s.node->Tick();
      ++ticks;
    }
    seen.insert(ticks);
    if (seed <= 5) first_timeouts.insert(ticks);
  }
  for (int t = 10; t < 20; ++t) EXPECT_TRUE(seen.contains(t)) << t;
  EXPECT_EQ(*seen.begin(), 10);
  EXPECT_EQ(*seen.rbegin(), 19);
  EXPECT_GT(first_timeouts.size(), 1u);
}

// Thesis 9.6 (pre-vote): "a candidate first asks ... whether its log is up-to-date enough to
// get their vote. Only if the candidate believes it can get votes from a majority of the
// cluster does it increment its term and start a normal election." A partitioned node does not
// inflate its term.
TEST(PaperElectionTest, PreVoteDoesNotBumpTerms) {
  Solo pre(3, {}, HardState{3, kNoNode, 0}, true, true);
  for (int t = 0; t < 200; ++t) {
    pre.node->Tick();
    pre.Drain();  // messages are lost
  }
  EXPECT_EQ(pre.node->term(), 3u);
  EXPECT_EQ(pre.node->role(), Role::kPreCandidate);
  Solo plain(3, {}, HardState{3, kNoNode, 0}, false, false);
  for (int t = 0; t < 200; ++t) plain.node->Tick();
  EXPECT_GT(plain.node->term(), 3u);
  // A pre-vote answered positively does not change the voter's term or vote either.
  Solo voter(3, {}, HardState{3, kNoNode, 0}, true, true);
  Message m = Msg(MessageType::kPreVote, 2, 1, 4);
  voter.Step(m);
  std::vector<Message> out = voter.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(voter.node->term(), 3u);
  EXPECT_EQ(voter.node->GetStatus().vote, kNoNode);
}

// 5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
// candidate ... If the logs have last entries with different terms, then the log with the later
// term is more up-to-date. If the logs end with the same term, then whichever log is longer is
// more up-to-date." (This is what guarantees leader completeness.)
TEST(PaperSafetyTest, VoterDeniesCandidatesWithOlderLogs) {
  struct Case {
    std::vector<uint64_t> voter_log;
    uint64_t cand_index;
    uint64_t cand_term;
    bool reject;
  };
  for (const Case& c : std::vector<Case>{
           {{1, 1}, 2, 1, false},
           {{1, 1}, 1, 1, true},
           {{1, 1}, 3, 1, false},
           {{1, 2}, 2, 1, true},
           {{1, 2}, 1, 3, false},
           {{1, 2}, 5, 1, true},
       }) {
    auto s = MakeSolo(3, c.voter_log, HardState{2, kNoNode, 0});
    Message m = Msg(MessageType::kVote, 2, 1, 3);
    m.index = c.cand_index;
    m.log_term = c.cand_term;
    s->Step(m);
    std::vector<Message> out = s->Drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].reject, c.reject) << c.cand_index << "/" << c.cand_term;
  }
}

// 5.3: "the leader appends the command to its log as a new entry, then issues AppendEntries
// RPCs in parallel to each of the other servers ... When sending an AppendEntries RPC, the
// leader includes the index and term of the entry in its log that immediately precedes the new
// entries."
TEST(PaperReplicationTest, LeaderStartsReplication) {
  auto s = MakeSolo(3);
  s->MakeLeader();
  s->Drain();
  // Acknowledge the no-op so both followers are in replicate state.
  for (NodeId p : {2, 3}) {
    Message ack = Msg(MessageType::kAppResp, p, 1, 1);
    ack.index = 1;
    s->Step(ack);
  }
  s->Drain();
  Result<uint64_t> idx = s->node->Propose("some data");
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ(*idx, 2u);
  std::vector<Message> apps = OfType(s->Drain(), MessageType::kApp);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    EXPECT_EQ(m.index, 1u);
    EXPECT_EQ(m.log_term, 1u);
    ASSERT_EQ(m.entries.size(), 1u);
    EXPECT_EQ(m.entries[0].data, "some data");
    EXPECT_EQ(m.commit, 1u);
  }
  EXPECT_EQ(s->storage.LastIndex(), 2u);  // and it went to stable storage
}

// 5.3: "A log entry is committed once the leader that created the entry has replicated it on a
// majority of the servers ... The leader keeps track of the highest index it knows to be
// committed, and it includes that index in future AppendEntries RPCs ... so that the other
// servers eventually find out."
TEST(PaperReplicationTest, LeaderCommitsOnMajorityAndTellsFollowers) {
  struct Case {
    size_t n;
    std::set<NodeId> acks;
    bool committed;
  };
  for (const Case& c : std::vector<Case>{{1, {}, true},
                                         {3, {}, false},
                                         {3, {2}, true},
                                         {5, {2}, false},
                                         {5, {2, 3}, true},
                                         {5, {2, 3, 4, 5}, true}}) {
    auto s = MakeSolo(c.n);
    if (c.n == 1) {
      ASSERT_TRUE(s->node->Campaign().ok());
    } else {
      s->MakeLeader();
    }
    s->Drain();
    for (NodeId p : c.acks) {
      Message ack = Msg(MessageType::kAppResp, p, 1, 1);
      ack.index = 1;
      s->Step(ack);
    }
    EXPECT_EQ(s->node->log().committed() == 1, c.committed) << c.n << " " << c.acks.size();
    std::vector<Message> out = s->Drain();
    if (c.committed) {
      EXPECT_EQ(s->applied.size(), 1u);
      for (const Message& m : OfType(out, MessageType::kApp)) {
        EXPECT_EQ(m.commit, 1u);
      }
    }
  }
  // A follower learns the commit index from the leader's messages.
  auto f = MakeSolo(3);
  Message app = Msg(MessageType::kApp, 2, 1, 1);
  app.entries = Terms({1, 1});
  app.commit = 1;
  f->Step(app);
  f->Drain();
  EXPECT_EQ(f->node->log().committed(), 1u);
  Message hb = Msg(MessageType::kHeartbeat, 2, 1, 1);
  hb.commit = 2;
  f->Step(hb);
  f->Drain();
  EXPECT_EQ(f->node->log().committed(), 2u);
  EXPECT_EQ(f->applied.size(), 2u);
}

// 5.3 (log matching): "When sending an AppendEntries RPC, the leader includes the index and term
// of the entry in its log that immediately precedes the new entries. If the follower does not
// find an entry in its log with the same index and term, then it refuses the new entries."
TEST(PaperReplicationTest, FollowerChecksThePrecedingEntry) {
  struct Case {
    uint64_t index, log_term;
    bool reject;
  };
  for (const Case& c :
       std::vector<Case>{{0, 0, false}, {1, 1, false}, {2, 2, false}, {2, 1, true}, {3, 3, true}}) {
    auto s = MakeSolo(3, {1, 2}, HardState{2, kNoNode, 0});
    Message m = Msg(MessageType::kApp, 2, 1, 2);
    m.index = c.index;
    m.log_term = c.log_term;
    s->Step(m);
    std::vector<Message> out = s->Drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].reject, c.reject) << c.index << "/" << c.log_term;
  }
}

// 5.3: "If an existing entry conflicts with a new one (same index but different terms), delete
// the existing entry and all that follow it; append any new entries not already in the log."
TEST(PaperReplicationTest, FollowerResolvesConflicts) {
  struct Case {
    uint64_t index, log_term;
    std::vector<uint64_t> new_terms;  // for index+1, index+2, ...
    std::vector<uint64_t> want;
  };
  for (const Case& c : std::vector<Case>{{2, 2, {3}, {1, 2, 3}},
                                         {1, 1, {3, 4}, {1, 3, 4}},
                                         {0, 0, {1}, {1, 2}},
                                         {0, 0, {3}, {3}}}) {
    auto s = MakeSolo(3, {1, 2}, HardState{2, kNoNode, 0});
    Message m = Msg(MessageType::kApp, 2, 1, 4);
    m.index = c.index;
    m.log_term = c.log_term;
    for (size_t k = 0; k < c.new_terms.size(); ++k) {
      Entry e;
      e.index = c.index + 1 + k;
      e.term = c.new_terms[k];
      m.entries.push_back(e);
    }
    s->Step(m);
    s->Drain();
    std::vector<uint64_t> got;
    for (uint64_t i = 1; i <= s->storage.LastIndex(); ++i) got.push_back(*s->storage.Term(i));
    EXPECT_EQ(got, c.want);
  }
}

// 5.3, figure 7: "the leader handles inconsistencies by forcing the followers' logs to duplicate
// its own." And 5.3 (leader append-only): "a leader never overwrites or deletes entries in its
// own log."
TEST(PaperReplicationTest, LeaderBringsFigure7FollowersInSync) {
  const std::vector<uint64_t> leader = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<uint64_t>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing entries
      {1, 1, 1, 4},                          // (b) missing entries
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) extra uncommitted entry
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of a later term
      {1, 1, 1, 4, 4, 4, 4},                 // (e) missing and extra
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) missing and extra
  };
  for (size_t k = 0; k < followers.size(); ++k) {
    SCOPED_TRACE("figure 7 case " + std::string(1, static_cast<char>('a' + k)));
    TestCluster c(3, 100 + k);
    ASSERT_TRUE(c.storage(1).Append(Terms(leader)).ok());
    c.storage(1).SetHardState(HardState{7, kNoNode, 0});
    ASSERT_TRUE(c.storage(2).Append(Terms(followers[k])).ok());
    c.storage(2).SetHardState(HardState{followers[k].back(), kNoNode, 0});
    c.Start(1);
    c.Start(2);
    ASSERT_TRUE(c.node(1).Campaign().ok());
    c.Process(1);
    c.DeliverAll();
    ASSERT_EQ(c.node(1).role(), Role::kLeader);
    EXPECT_EQ(c.node(1).term(), 8u);
    for (uint64_t i = 1; i <= leader.size(); ++i) {
      EXPECT_EQ(*c.storage(1).Term(i), leader[i - 1]) << "leader rewrote index " << i;
    }
    ASSERT_EQ(c.storage(2).LastIndex(), c.storage(1).LastIndex());
    for (uint64_t i = 1; i <= c.storage(1).LastIndex(); ++i) {
      EXPECT_EQ(*c.storage(2).Term(i), *c.storage(1).Term(i)) << "index " << i;
    }
    EXPECT_EQ(c.node(2).log().committed(), c.storage(1).LastIndex());
  }
}

// 5.4.2, figure 8: "Raft never commits log entries from previous terms by counting replicas.
// Only log entries from the leader's current term are committed by counting replicas; once an
// entry from the current term has been committed in this way, then all prior entries are
// committed indirectly."
TEST(PaperSafetyTest, Figure8OnlyCurrentTermEntriesCommitByCounting) {
  auto s = MakeSolo(5, {1, 2}, HardState{3, kNoNode, 0});
  s->MakeLeader();
  ASSERT_EQ(s->node->term(), 4u);
  s->Drain();
  auto ack = [&](NodeId p, uint64_t index) {
    Message m = Msg(MessageType::kAppResp, p, 1, 4);
    m.index = index;
    s->Step(m);
  };
  ack(2, 2);
  ack(3, 2);  // the term-2 entry is on 3 of 5 servers: still not committed
  EXPECT_EQ(s->node->log().committed(), 0u);
  ack(2, 3);  // the term-4 no-op on 2 of 5
  EXPECT_EQ(s->node->log().committed(), 0u);
  ack(3, 3);  // the term-4 no-op on 3 of 5: it and everything before it commit
  EXPECT_EQ(s->node->log().committed(), 3u);
  s->Drain();
  EXPECT_EQ(s->applied.size(), 3u);
}

// 6 (check-quorum, thesis 6.2): "a leader steps down if an election timeout elapses without a
// successful round of heartbeats to a majority of its cluster."
TEST(PaperElectionTest, CheckQuorumLeaderStepsDownWithoutAMajority) {
  Solo lonely(3, {}, {}, false, true);
  lonely.MakeLeader();
  for (int t = 0; t < 20; ++t) {
    lonely.node->Tick();
    lonely.Drain();
  }
  EXPECT_EQ(lonely.node->role(), Role::kFollower);
  Solo heard(3, {}, {}, false, true);
  heard.MakeLeader();
  for (int t = 0; t < 40; ++t) {
    heard.node->Tick();
    for (const Message& m : OfType(heard.Drain(), MessageType::kHeartbeat)) {
      heard.Step(Msg(MessageType::kHeartbeatResp, m.to, 1, m.term));
    }
  }
  EXPECT_EQ(heard.node->role(), Role::kLeader);
}

// Thesis 4.2.3 (leader stickiness): "if a server receives a RequestVote request within the
// minimum election timeout of hearing from a current leader, it does not update its term or
// grant its vote."
TEST(PaperElectionTest, FollowerWithALiveLeaderIgnoresVotes) {
  Solo f(3, {}, {}, true, true);
  f.Step(Msg(MessageType::kHeartbeat, 2, 1, 1));
  f.Drain();
  Message vote = Msg(MessageType::kVote, 3, 1, 2);
  f.Step(vote);
  EXPECT_EQ(f.node->term(), 1u);
  EXPECT_TRUE(OfType(f.Drain(), MessageType::kVoteResp).empty());
  // After an election timeout without the leader, the vote is considered and granted.
  for (int t = 0; t < 10; ++t) f.node->Tick();
  f.Drain();
  if (f.node->role() == Role::kFollower) {
    f.Step(vote);
    std::vector<Message> resp = OfType(f.Drain(), MessageType::kVoteResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_FALSE(resp[0].reject);
    EXPECT_EQ(f.node->term(), 2u);
  }
}

// Thesis 3.10 (leadership transfer): "1. The prior leader stops accepting new client requests.
// 2. The prior leader fully updates the target server's log to match its own ... 3. The prior
// leader sends a TimeoutNow request to the target server."
TEST(PaperTransferTest, LeaderCatchesTheTargetUpBeforeTimeoutNow) {
  auto s = MakeSolo(3);
  s->MakeLeader();
  s->Drain();
  const uint64_t last = s->node->log().LastIndex();
  ASSERT_TRUE(s->node->TransferLeadership(2).ok());
  EXPECT_EQ(s->node->lead_transferee(), 2u);
  EXPECT_EQ(s->node->GetStatus().lead_transferee, 2u);
  Result<uint64_t> refused = s->node->Propose("x");
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("transfer in progress"), std::string::npos);
  EXPECT_EQ(s->node->log().LastIndex(), last);
  // Peer 2 has not acknowledged the no-op yet: no TimeoutNow before it does.
  EXPECT_TRUE(OfType(s->Drain(), MessageType::kTimeoutNow).empty());
  Message ack = Msg(MessageType::kAppResp, 2, 1, s->node->term());
  ack.index = last - 1;
  s->Step(ack);
  EXPECT_TRUE(OfType(s->Drain(), MessageType::kTimeoutNow).empty());
  ack.index = last;
  s->Step(ack);
  std::vector<Message> now = OfType(s->Drain(), MessageType::kTimeoutNow);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].to, 2u);
  EXPECT_EQ(now[0].term, s->node->term());
  // A caught-up target gets TimeoutNow at once (here: a new transfer to peer 2 after a cancel).
  ASSERT_TRUE(s->node->TransferLeadership(1).ok());
  EXPECT_EQ(s->node->lead_transferee(), kNoNode);
  EXPECT_TRUE(s->node->Propose("y").ok());
  ack.index = s->node->log().LastIndex();
  s->Step(ack);
  s->Drain();
  ASSERT_TRUE(s->node->TransferLeadership(2).ok());
  EXPECT_EQ(OfType(s->Drain(), MessageType::kTimeoutNow).size(), 1u);
}

// Thesis 3.10: "This request has the same effect as the target server's election timer firing:
// the target server starts a new election (incrementing its term and becoming a candidate)."
// Pre-vote is skipped, and the vote requests say the leader asked for them.
TEST(PaperTransferTest, TimeoutNowStartsARealElectionAtOnce) {
  Solo f(3, {}, {}, true, true);
  f.Step(Msg(MessageType::kHeartbeat, 2, 1, 1));
  f.Drain();
  f.Step(Msg(MessageType::kTimeoutNow, 2, 1, 1));
  EXPECT_EQ(f.node->role(), Role::kCandidate);
  EXPECT_EQ(f.node->term(), 2u);
  std::vector<Message> out = f.Drain();
  EXPECT_TRUE(OfType(out, MessageType::kPreVote).empty());
  std::vector<Message> votes = OfType(out, MessageType::kVote);
  ASSERT_EQ(votes.size(), 2u);
  for (const Message& v : votes) {
    EXPECT_TRUE(v.transfer);
    EXPECT_EQ(v.term, 2u);
  }
  // A TimeoutNow from an old term is stale and ignored.
  Solo g(3, {}, HardState{3, kNoNode, 0}, true, true);
  g.Step(Msg(MessageType::kTimeoutNow, 2, 1, 2));
  EXPECT_EQ(g.node->role(), Role::kFollower);
  EXPECT_EQ(g.node->term(), 3u);
}

// Thesis 4.2.3: with leader stickiness, "RequestVote messages should be processed by other
// servers even when they believe a current cluster leader exists" when the leader asked for the
// election; "those RequestVote requests can include a special flag to indicate this behavior".
TEST(PaperTransferTest, TransferVoteBypassesLeaderStickiness) {
  Solo f(3, {}, {}, true, true);
  f.Step(Msg(MessageType::kHeartbeat, 2, 1, 1));
  f.Drain();
  Message vote = Msg(MessageType::kVote, 3, 1, 2);
  vote.transfer = true;
  f.Step(vote);
  EXPECT_EQ(f.node->term(), 2u);
  std::vector<Message> resp = OfType(f.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_FALSE(resp[0].reject);
  EXPECT_EQ(f.node->GetStatus().vote, 3u);
  // The flag is no licence for an out-of-date log.
  Solo g(3, {1, 1}, HardState{1, kNoNode, 0}, true, true);
  g.Step(Msg(MessageType::kHeartbeat, 2, 1, 1));
  g.Drain();
  vote.index = 1;
  vote.log_term = 1;
  g.Step(vote);
  resp = OfType(g.Drain(), MessageType::kVoteResp);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_TRUE(resp[0].reject);
}

// Thesis 4.2.1: new servers join "as non-voting members (the leader replicates log entries to
// them, but they are not considered for majorities)". Here a learner stays one.
// A learner never campaigns; asked for its vote, it answers like a voter (thesis 4.1: RPCs are
// processed without consulting the configuration - the candidate's may be newer, with this node
// a voter in it; etcd's TestLearnerCanVote). In a stable configuration nobody asks it.
TEST(PaperLearnerTest, LearnerNeverCampaignsButAnswersVotes) {
  MemoryStorage storage;
  Config c = TestConfig(4, 3);
  c.learners = {4};
  std::unique_ptr<RawNode> n = MustCreate(c, &storage);
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->is_learner());
  EXPECT_TRUE(n->GetStatus().learner);
  EXPECT_EQ(n->Campaign().code(), StatusCode::kFailedPrecondition);
  for (int t = 0; t < 100; ++t) n->Tick();
  std::vector<Message> out = Drain(*n, storage);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(n->term(), 0u);
  EXPECT_EQ(n->role(), Role::kFollower);
  for (MessageType t : {MessageType::kVote, MessageType::kPreVote}) {
    Message vote = Msg(t, 2, 4, 1);
    ASSERT_TRUE(n->Step(vote).ok());
    out = Drain(*n, storage);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_FALSE(out[0].reject) << MessageTypeName(t);
  }
  EXPECT_EQ(n->GetStatus().vote, 2u);
  EXPECT_EQ(n->role(), Role::kFollower);
  // It does accept the leader's entries and commit.
  Message app = Msg(MessageType::kApp, 2, 4, 1);
  Entry e;
  e.index = 1;
  e.term = 1;
  e.data = "x";
  app.entries = {e};
  app.commit = 1;
  ASSERT_TRUE(n->Step(app).ok());
  std::vector<Entry> applied;
  out = Drain(*n, storage, &applied);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].data, "x");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kAppResp);
  EXPECT_EQ(out[0].index, 1u);
}

// A voter refuses a vote request from a learner, and a candidate counts only voters' grants.
TEST(PaperLearnerTest, VotersIgnoreLearnersInElections) {
  MemoryStorage storage;
  Config c = TestConfig(1, 3);
  c.pre_vote = false;
  c.check_quorum = false;
  c.learners = {4, 5};
  std::unique_ptr<RawNode> n = MustCreate(c, &storage);
  ASSERT_NE(n, nullptr);
  ASSERT_TRUE(n->Step(Msg(MessageType::kVote, 4, 1, 1)).ok());
  std::vector<Message> out = Drain(*n, storage);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].reject);
  EXPECT_EQ(n->GetStatus().vote, kNoNode);
  ASSERT_TRUE(n->Campaign().ok());
  out = Drain(*n, storage);
  std::set<NodeId> asked;
  for (const Message& m : OfType(out, MessageType::kVote)) asked.insert(m.to);
  EXPECT_EQ(asked, (std::set<NodeId>{2, 3}));
  const uint64_t term = n->term();
  ASSERT_TRUE(n->Step(Msg(MessageType::kVoteResp, 4, 1, term)).ok());
  ASSERT_TRUE(n->Step(Msg(MessageType::kVoteResp, 5, 1, term)).ok());
  EXPECT_EQ(n->role(), Role::kCandidate);
  ASSERT_TRUE(n->Step(Msg(MessageType::kVoteResp, 2, 1, term)).ok());
  EXPECT_EQ(n->role(), Role::kLeader);
  EXPECT_EQ(n->TransferLeadership(4).code(), StatusCode::kInvalidArgument);
}

// A kSnap from leader 2 at `term` carrying a snapshot at (index, snap_term).
Message SnapMsg(uint64_t term, uint64_t index, uint64_t snap_term, std::string data = "img") {
  Message m = Msg(MessageType::kSnap, 2, 1, term);
  m.snapshot.metadata = SnapshotMetadata{index, snap_term};
  m.snapshot.data = std::move(data);
  return m;
}

// 7: "the leader must occasionally send snapshots to followers that lag behind. This happens when
// the leader has already discarded the next log entry that it needs to send to a follower."
TEST(PaperSnapshotTest, AFollowerFarBehindGetsTheSnapshot) {
  TestCluster c(3);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId lagging = leader % 3 + 1;
  c.Isolate(lagging);
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) last = c.ProposeAndSettle(leader, "v" + std::to_string(i));
  ASSERT_EQ(c.applied(leader).back().index, last);
  ASSERT_TRUE(c.Compact(leader, last));
  size_t snaps = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type == MessageType::kSnap) {
      ++snaps;
      EXPECT_EQ(m.to, lagging);
      EXPECT_EQ(m.snapshot.metadata.index, last);
    }
  };
  c.Heal();
  const uint64_t after = c.ProposeAndSettle(leader, "after");
  for (int t = 0; t < 5 && c.applied(lagging).size() < after; ++t) {
    c.TickAll();
    c.DeliverAll();
  }
  EXPECT_EQ(snaps, 1u);
  EXPECT_EQ(c.storage(lagging).FirstIndex(), last + 1);
  ASSERT_FALSE(c.applied(lagging).empty());
  EXPECT_EQ(c.applied(lagging).back().data, "after");
  EXPECT_EQ(c.applied(lagging).size(), c.applied(leader).size());
  EXPECT_TRUE(c.AppliedArePrefixes());
  const Progress* pr = c.node(leader).PeerProgress(lagging);
  EXPECT_EQ(pr->state, Progress::State::kReplicate);
  EXPECT_EQ(pr->match, after);
}

// 7: "Usually the snapshot will contain new information not already in the recipient's log. In
// this case, the follower discards its entire log; it is all superseded by the snapshot and may
// possibly have uncommitted entries that conflict with the snapshot."
TEST(PaperSnapshotTest, FollowerDiscardsItsEntireLogForANewerSnapshot) {
  auto s = MakeSolo(3, {1, 1, 2, 2}, HardState{2, kNoNode, 1});
  s->Step(SnapMsg(3, 6, 3));
  ASSERT_TRUE(s->node->HasReady());
  Ready rd = s->node->Ready();
  ASSERT_TRUE(rd.snapshot.has_value());
  EXPECT_EQ(rd.snapshot->metadata, (SnapshotMetadata{6, 3}));
  EXPECT_TRUE(rd.must_sync);
  EXPECT_TRUE(rd.committed_entries.empty());  // the snapshot replaces applying 2..6
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, 6u);
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppResp);
  EXPECT_FALSE(rd.messages[0].reject);
  EXPECT_EQ(rd.messages[0].index, 6u);
  testing::PersistReady(s->storage, rd);
  s->node->Advance(rd);
  EXPECT_EQ(s->storage.FirstIndex(), 7u);
  EXPECT_EQ(s->storage.LastIndex(), 6u);
  EXPECT_EQ(s->node->GetStatus().applied, 6u);
  EXPECT_EQ(s->node->GetStatus().last_index, 6u);
  EXPECT_EQ(s->node->GetStatus().snapshot_index, 6u);
  EXPECT_EQ(s->node->log().TermOrZero(3), 0u);  // the conflicting entries are gone
  // Replication continues right after the snapshot.
  Message app = Msg(MessageType::kApp, 2, 1, 3);
  app.index = 6;
  app.log_term = 3;
  app.commit = 7;
  Entry e;
  e.index = 7;
  e.term = 3;
  e.data = "seven";
  app.entries = {e};
  s->Step(app);
  s->Drain();
  ASSERT_EQ(s->applied.size(), 1u);
  EXPECT_EQ(s->applied[0].data, "seven");
}

// 7: "If instead the follower receives a snapshot that describes a prefix of its log (due to
// retransmission or by mistake), then log entries covered by the snapshot are deleted but entries
// following the snapshot are still valid and must be retained."
TEST(PaperSnapshotTest, SnapshotOfAPrefixKeepsTheEntriesAfterIt) {
  auto s = MakeSolo(3, {1, 1, 1, 1, 1}, HardState{1, kNoNode, 0});
  s->Step(SnapMsg(1, 3, 1));
  Ready rd = s->node->Ready();
  EXPECT_FALSE(rd.snapshot.has_value());  // nothing to restore: the log already has it
  ASSERT_EQ(rd.committed_entries.size(), 3u);
  ASSERT_EQ(rd.messages.size(), 1u);
  // Acknowledges the snapshot, not the entries after it (they may not match the leader's).
  EXPECT_EQ(rd.messages[0].index, 3u);
  testing::PersistReady(s->storage, rd);
  s->node->Advance(rd);
  EXPECT_EQ(s->node->log().LastIndex(), 5u);
  EXPECT_EQ(s->node->log().committed(), 3u);
  // The covered entries are deleted by the host's own compaction; 4 and 5 stay.
  ASSERT_TRUE(s->storage.CreateSnapshot(3, "mine").ok());
  ASSERT_TRUE(s->storage.Compact(3).ok());
  EXPECT_EQ(s->storage.FirstIndex(), 4u);
  EXPECT_EQ(s->storage.LastIndex(), 5u);
}

// Retransmission: a snapshot the follower has already committed past changes nothing.
TEST(PaperSnapshotTest, StaleOrDuplicateSnapshotIsIgnored) {
  auto s = MakeSolo(3, {1, 1, 1}, HardState{1, kNoNode, 0});
  s->Step(SnapMsg(2, 8, 2));
  s->Drain();
  ASSERT_EQ(s->node->log().committed(), 8u);
  for (uint64_t index : {8u, 5u}) {
    s->Step(SnapMsg(2, index, 2));
    Ready rd = s->node->Ready();
    EXPECT_FALSE(rd.snapshot.has_value()) << index;
    ASSERT_EQ(rd.messages.size(), 1u);
    EXPECT_EQ(rd.messages[0].index, 8u);  // "I have everything up to 8"
    testing::PersistReady(s->storage, rd);
    s->node->Advance(rd);
  }
  EXPECT_EQ(s->storage.Snapshot()->metadata.index, 8u);
  // A snapshot from a deposed leader's term is refused with the current term.
  s->Step(SnapMsg(1, 20, 1));
  std::vector<Message> out = s->Drain();
  ASSERT_EQ(out.size(), 0u);  // plain Raft: stale terms are dropped
  EXPECT_EQ(s->node->log().committed(), 8u);
}

// The leader sends nothing else to a follower while its snapshot is outstanding, and re-sends it
// when neither the snapshot nor its answer arrived within snapshot_timeout_tick ticks.
TEST(PaperSnapshotTest, LostSnapshotIsResentAfterTheTimeout) {
  TestCluster c(3, 1, [](Config& cfg) { cfg.snapshot_timeout_tick = 20; });
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  const NodeId lagging = leader % 3 + 1;
  c.Isolate(lagging);
  uint64_t last = 0;
  for (int i = 0; i < 10; ++i) last = c.ProposeAndSettle(leader, "v" + std::to_string(i));
  ASSERT_TRUE(c.Compact(leader, last));
  c.Heal();
  size_t snaps = 0;
  size_t appends_while_pending = 0;
  int tick = 0;
  int dropped_at = -1;
  int delivered_at = -1;
  c.on_deliver = [&](const Message& m) {
    if (m.to != lagging) return;
    if (m.type == MessageType::kSnap) {
      ++snaps;
      delivered_at = tick;
    }
    const Progress* pr = c.node(leader).PeerProgress(lagging);
    if (m.type == MessageType::kApp && pr != nullptr && pr->state == Progress::State::kSnapshot) {
      ++appends_while_pending;
    }
  };
  for (; tick < 100 && c.applied(lagging).size() < c.applied(leader).size(); ++tick) {
    c.TickAll();
    if (tick == 5) c.ProposeAndSettle(leader, "while pending");
    for (size_t k = 0; k < 100000 && !c.queue().empty(); ++k) {
      Message m = c.queue().front();
      c.queue().pop_front();
      if (m.type == MessageType::kSnap && dropped_at < 0) {
        dropped_at = tick;  // the first kSnap is lost
        continue;
      }
      c.Deliver(m);
    }
  }
  ASSERT_GE(dropped_at, 0);
  EXPECT_GE(delivered_at - dropped_at, 19);
  EXPECT_EQ(snaps, 1u);  // one delivered, after the lost one
  EXPECT_EQ(appends_while_pending, 0u);
  EXPECT_EQ(c.applied(lagging).size(), c.applied(leader).size());
  EXPECT_TRUE(c.AppliedArePrefixes());
}

// A node restarted on a compacted storage starts from its snapshot and catches up after it.
TEST(PaperSnapshotTest, RestartFromASnapshot) {
  TestCluster c(3);
  const NodeId leader = c.WaitLeader();
  ASSERT_NE(leader, kNoNode);
  for (int i = 0; i < 8; ++i) c.ProposeAndSettle(leader, "v" + std::to_string(i));
  const NodeId f = leader % 3 + 1;
  const uint64_t mid = c.applied(f)[5].index;
  ASSERT_TRUE(c.Compact(f, mid));
  c.Start(f);
  EXPECT_EQ(c.node(f).GetStatus().applied, mid);
  EXPECT_EQ(c.applied(f).size(), 6u);  // restored from the snapshot's image
  c.Process(f);                        // applies the entries kept after the snapshot
  EXPECT_EQ(c.applied(f).size(), c.applied(leader).size());
  c.ProposeAndSettle(leader, "after restart");
  EXPECT_EQ(c.applied(f).back().data, "after restart");
  EXPECT_TRUE(c.AppliedArePrefixes());
}

}  // namespace
}  // namespace dtx::raft
