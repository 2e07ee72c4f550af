// Scenario tests in the style of etcd's raft testdata: each file in testdata/ is a script of
// commands, each followed by "----" and the output the command must produce. The runner drives a
// TestCluster by hand (nothing is delivered unless a command says so) and reports, after every
// command, each node whose visible state changed, so a script reads as a trace of the paper's case.
//
//   # comment
//   command arg key=value ...
//   ----
//   expected output (ends at a blank line)
//
// Commands: cluster n= [pre_vote= check_quorum= election_tick= seed= max_inflight=
// max_size= learners=4,5 snapshot_timeout= read_only=safe|lease] (pre_vote and check_quorum
// default to false: plain Raft as in the paper);
// log ID terms=1,1,2 [term= vote= commit=] (replace a node's stored log, then restart it);
// campaign ID; tick ID|all [n=]; propose ID DATA; read-index ID CTX; transfer ID TARGET;
// deliver [from= to= type=] (one pass over the queued messages); stabilize [from= to= type=]
// (deliver until no message matches); drop [from= to= type=]; queue; cut A B; isolate ID; heal;
// restart ID (crash: volatile state and the state machine are lost, storage survives);
// compact ID INDEX (the host snapshots its applied entries up to INDEX and compacts its log);
// status; raft-log ID; applied ID; check (election safety, log matching, state-machine safety);
// conf-change ID add-voter|remove-voter|add-learner NODE (ProposeConfChange); conf (every node's
// configuration in effect).
//
// DTX_REWRITE=1 rewrites the files with the actual output (review the diff before committing).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "consensus/raft/raft.h"
#include "consensus/raft/test_cluster.h"

namespace dtx::raft {
namespace {

using testing::TestCluster;

struct Block {
  std::string prelude;  // comments and blank lines before the command, kept on rewrite
  int line = 0;
  std::string command;
  std::string expected;
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\n')) s.pop_back();
  size_t b = 0;
  while (b < s.size() && s[b] == ' ') ++b;
  return s.substr(b);
}

// Parses a script; an unterminated block is a test failure, not a crash.
bool ParseScript(const std::string& text, std::vector<Block>* blocks, std::string* trailer,
                 std::string* error) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string prelude;
  size_t i = 0;
  while (i < lines.size()) {
    const std::string t = Trim(lines[i]);
    if (t.empty() || t[0] == '#') {
      prelude += lines[i] + "\n";
      ++i;
      continue;
    }
    Block b;
    b.prelude = std::move(prelude);
    prelude.clear();
    b.line = static_cast<int>(i) + 1;
    b.command = t;
    ++i;
    if (i >= lines.size() || Trim(lines[i]) != "----") {
      *error = "line " + std::to_string(b.line) + ": command not followed by ----";
      return false;
    }
    ++i;
    while (i < lines.size() && !Trim(lines[i]).empty()) b.expected += Trim(lines[i++]) + "\n";
    if (i < lines.size()) ++i;  // the blank line ending the block belongs to it
    blocks->push_back(std::move(b));
  }
  *trailer = prelude;
  return true;
}

struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> kv;
};

Args SplitArgs(const std::string& command) {
  Args a;
  std::istringstream in(command);
  for (std::string tok; in >> tok;) {
    const size_t eq = tok.find('=');
    if (eq == std::string::npos) {
      a.pos.push_back(tok);
    } else {
      a.kv[tok.substr(0, eq)] = tok.substr(eq + 1);
    }
  }
  return a;
}

// Thrown only inside the runner for a malformed script line; caught per command and reported as
// the command's output, so a bad script fails its test with a message.
struct ScriptError {
  std::string what;
};

uint64_t ParseU64(const std::string& s) {
  if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), ::isdigit)) {
    throw ScriptError{"not a number: '" + s + "'"};
  }
  return std::stoull(s);
}

bool ParseBool(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  throw ScriptError{"not a bool: '" + s + "'"};
}

std::vector<uint64_t> ParseList(const std::string& s) {
  std::vector<uint64_t> out;
  if (s.empty()) return out;
  std::istringstream in(s);
  for (std::string tok; std::getline(in, tok, ',');) out.push_back(ParseU64(tok));
  return out;
}

class Runner {
 public:
  std::string Run(const std::string& command) {
    try {
      Args a = SplitArgs(command);
      if (a.pos.empty()) throw ScriptError{"empty command"};
      const std::string cmd = a.pos[0];
      out_.str("");
      if (cmd == "cluster") {
        Cluster(a);
      } else {
        if (!c_) throw ScriptError{"no cluster yet: start with 'cluster n=...'"};
        last_states_ = States();
        Dispatch(cmd, a);
        Changes();
      }
      std::string s = out_.str();
      return s.empty() ? "ok\n" : s;
    } catch (const ScriptError& e) {
      return "script error: " + e.what + "\n";
    }
  }

 private:
  NodeId Node(const std::string& s) const {
    const uint64_t id = ParseU64(s);
    if (id < 1 || id > c_->size()) throw ScriptError{"no node " + s};
    return id;
  }
  const std::string& Pos(const Args& a, size_t i) const {
    if (a.pos.size() <= i) throw ScriptError{"missing argument " + std::to_string(i)};
    return a.pos[i];
  }

  void Cluster(const Args& a) {
    const uint64_t n = ParseU64(a.kv.count("n") ? a.kv.at("n") : "3");
    if (n < 1 || n > 9) throw ScriptError{"n must be in [1, 9]"};
    Config over;
    over.pre_vote = a.kv.count("pre_vote") ? ParseBool(a.kv.at("pre_vote")) : false;
    over.check_quorum = a.kv.count("check_quorum") ? ParseBool(a.kv.at("check_quorum")) : false;
    over.election_tick =
        static_cast<int>(ParseU64(a.kv.count("election_tick") ? a.kv.at("election_tick") : "10"));
    over.max_inflight_msgs = ParseU64(a.kv.count("max_inflight") ? a.kv.at("max_inflight") : "256");
    over.max_size_per_msg = ParseU64(a.kv.count("max_size") ? a.kv.at("max_size") : "1048576");
    const std::string read_only = a.kv.count("read_only") ? a.kv.at("read_only") : "safe";
    if (read_only != "safe" && read_only != "lease") {
      throw ScriptError{"read_only must be safe or lease"};
    }
    over.read_only = read_only == "lease" ? ReadOnly::kLeaseBased : ReadOnly::kSafe;
    over.snapshot_timeout_tick = static_cast<int>(
        ParseU64(a.kv.count("snapshot_timeout") ? a.kv.at("snapshot_timeout") : "50"));
    const uint64_t seed = ParseU64(a.kv.count("seed") ? a.kv.at("seed") : "1");
    const std::vector<uint64_t> learners =
        ParseList(a.kv.count("learners") ? a.kv.at("learners") : std::string());
    for (uint64_t l : learners) {
      if (l < 1 || l > n) throw ScriptError{"learner " + std::to_string(l) + " is not a node"};
    }
    std::vector<NodeId> voters;
    for (NodeId id = 1; id <= n; ++id) {
      if (std::find(learners.begin(), learners.end(), id) == learners.end()) voters.push_back(id);
    }
    if (voters.empty()) throw ScriptError{"no voters left"};
    c_ = std::make_unique<TestCluster>(n, seed, [over, voters, learners](Config& cfg) {
      cfg.peers = voters;
      cfg.learners.assign(learners.begin(), learners.end());
      cfg.pre_vote = over.pre_vote;
      cfg.check_quorum = over.check_quorum;
      cfg.election_tick = over.election_tick;
      cfg.max_inflight_msgs = over.max_inflight_msgs;
      cfg.max_size_per_msg = over.max_size_per_msg;
      cfg.snapshot_timeout_tick = over.snapshot_timeout_tick;
      cfg.read_only = over.read_only;
    });
  }

  void Dispatch(const std::string& cmd, const Args& a) {
    if (cmd == "log") return SetLog(a);
    if (cmd == "campaign") {
      const NodeId id = Node(Pos(a, 1));
      Report(c_->node(id).Campaign());
      return c_->Process(id);
    }
    if (cmd == "tick") return Tick(a);
    if (cmd == "propose") {
      const NodeId id = Node(Pos(a, 1));
      Result<uint64_t> r = c_->node(id).Propose(Pos(a, 2));
      if (r.ok()) {
        out_ << "index " << *r << "\n";
      } else {
        out_ << r.status().ToString() << "\n";
      }
      return c_->Process(id);
    }
    if (cmd == "transfer") {
      // The target is passed through unchecked: refusing unknown ids is the core's job.
      const NodeId id = Node(Pos(a, 1));
      Report(c_->node(id).TransferLeadership(ParseU64(Pos(a, 2))));
      return c_->Process(id);
    }
    if (cmd == "conf-change") {
      // conf-change <node> add-voter|remove-voter|add-learner <id>
      const NodeId id = Node(Pos(a, 1));
      const std::string& kind = Pos(a, 2);
      ConfChange cc;
      cc.node = ParseU64(Pos(a, 3));
      if (kind == "add-voter") {
        cc.type = ConfChangeType::kAddVoter;
      } else if (kind == "remove-voter") {
        cc.type = ConfChangeType::kRemoveVoter;
      } else if (kind == "add-learner") {
        cc.type = ConfChangeType::kAddLearner;
      } else {
        throw ScriptError{"conf-change: unknown kind " + kind};
      }
      Result<uint64_t> r = c_->node(id).ProposeConfChange(cc);
      if (r.ok()) {
        out_ << "index " << *r << "\n";
      } else {
        out_ << r.status().ToString() << "\n";
      }
      return c_->Process(id);
    }
    if (cmd == "conf") {
      for (NodeId id = 1; id <= c_->size(); ++id) {
        const ConfState& cs = c_->node(id).conf_state();
        out_ << id << ": voters=";
        for (size_t k = 0; k < cs.voters.size(); ++k) out_ << (k ? "," : "") << cs.voters[k];
        out_ << " learners=";
        for (size_t k = 0; k < cs.learners.size(); ++k) out_ << (k ? "," : "") << cs.learners[k];
        out_ << "\n";
      }
      return;
    }
    if (cmd == "read-index") {
      const NodeId id = Node(Pos(a, 1));
      Report(c_->node(id).ReadIndex(Pos(a, 2)));
      return c_->Process(id);
    }
    if (cmd == "deliver") return Deliver(a, /*repeat=*/false);
    if (cmd == "stabilize") return Deliver(a, /*repeat=*/true);
    if (cmd == "drop") return Drop(a);
    if (cmd == "queue") {
      for (const Message& m : c_->queue()) out_ << DescribeMessage(m) << "\n";
      return;
    }
    if (cmd == "cut") return c_->Cut(Node(Pos(a, 1)), Node(Pos(a, 2)));
    if (cmd == "isolate") return c_->Isolate(Node(Pos(a, 1)));
    if (cmd == "heal") return c_->Heal();
    if (cmd == "restart") {
      const NodeId id = Node(Pos(a, 1));
      c_->Start(id);
      return c_->Process(id);
    }
    if (cmd == "status") {
      for (NodeId id = 1; id <= c_->size(); ++id) out_ << State(id) << "\n";
      return;
    }
    if (cmd == "raft-log") return PrintLog(Node(Pos(a, 1)));
    if (cmd == "applied") {
      const NodeId id = Node(Pos(a, 1));
      for (const Entry& e : c_->applied(id)) out_ << Describe(e) << "\n";
      return;
    }
    if (cmd == "check") return Check();
    if (cmd == "compact") {
      const NodeId id = Node(Pos(a, 1));
      ::testing::AssertionResult r = c_->Compact(id, ParseU64(Pos(a, 2)));
      if (!r) out_ << "error: " << r.message() << "\n";
      return;
    }
    throw ScriptError{"unknown command '" + cmd + "'"};
  }

  void Report(const Status& s) {
    if (!s.ok()) out_ << s.ToString() << "\n";
  }

  // Replaces node id's stored log with entries of the given terms (and the hard state), then
  // restarts it from that storage; only meaningful before the node has written anything.
  void SetLog(const Args& a) {
    const NodeId id = Node(Pos(a, 1));
    const std::vector<uint64_t> terms =
        ParseList(a.kv.count("terms") ? a.kv.at("terms") : std::string());
    MemoryStorage& st = c_->storage(id);
    if (st.LastIndex() != 0) throw ScriptError{"log: node " + Pos(a, 1) + " has a log already"};
    std::vector<Entry> entries;
    for (size_t i = 0; i < terms.size(); ++i) {
      Entry e;
      e.index = i + 1;
      e.term = terms[i];
      entries.push_back(e);
    }
    Report(st.Append(entries));
    HardState hs;
    hs.term = a.kv.count("term") ? ParseU64(a.kv.at("term")) : (terms.empty() ? 0 : terms.back());
    hs.vote = a.kv.count("vote") ? ParseU64(a.kv.at("vote")) : kNoNode;
    hs.commit = a.kv.count("commit") ? ParseU64(a.kv.at("commit")) : 0;
    st.SetHardState(hs);
    c_->Start(id);
    c_->Process(id);
  }

  void Tick(const Args& a) {
    const std::string& who = Pos(a, 1);
    const uint64_t n = ParseU64(a.kv.count("n") ? a.kv.at("n") : "1");
    if (n > 10000) throw ScriptError{"tick: n must be <= 10000"};
    for (uint64_t k = 0; k < n; ++k) {
      for (NodeId id = 1; id <= c_->size(); ++id) {
        if (who != "all" && id != Node(who)) continue;
        c_->node(id).Tick();
        c_->Process(id);
      }
    }
  }

  struct Filter {
    std::optional<NodeId> from;
    std::optional<NodeId> to;
    std::optional<std::string> type;
    bool Matches(const Message& m) const {
      return (!from || m.from == *from) && (!to || m.to == *to) &&
             (!type || MessageTypeName(m.type) == *type);
    }
  };
  // Checked before any message is looked at, so a typo fails even on an empty queue.
  Filter ParseFilter(const Args& a) const {
    Filter f;
    for (const auto& [k, v] : a.kv) {
      if (k == "from") {
        f.from = Node(v);
      } else if (k == "to") {
        f.to = Node(v);
      } else if (k == "type") {
        bool known = false;
        for (int t = 0; t <= UINT8_MAX && !known && v != "?"; ++t) {
          known = MessageTypeName(static_cast<MessageType>(t)) == v;
        }
        if (!known) throw ScriptError{"unknown message type '" + v + "'"};
        f.type = v;
      } else {
        throw ScriptError{"unknown filter '" + k + "'"};
      }
    }
    return f;
  }

  // One pass delivers the messages queued (and matching) at its start; messages they produce
  // wait for the next pass. stabilize repeats passes until nothing matches.
  void Deliver(const Args& a, bool repeat) {
    const Filter f = ParseFilter(a);
    constexpr int kMaxPasses = 1000;
    for (int pass = 0; pass < kMaxPasses; ++pass) {
      std::deque<Message> now;
      std::deque<Message> keep;
      for (Message& m : c_->queue()) (f.Matches(m) ? now : keep).push_back(std::move(m));
      c_->queue() = std::move(keep);
      if (now.empty()) return;
      for (const Message& m : now) {
        out_ << (c_->Blocked(m) ? "blocked " : "") << DescribeMessage(m) << "\n";
        c_->Deliver(m);
        Changes();
      }
      if (!repeat) return;
    }
    throw ScriptError{"stabilize: still delivering after " + std::to_string(kMaxPasses) +
                      " passes"};
  }

  void Drop(const Args& a) {
    const Filter f = ParseFilter(a);
    std::deque<Message> keep;
    for (Message& m : c_->queue()) {
      if (f.Matches(m)) {
        out_ << "dropped " << DescribeMessage(m) << "\n";
      } else {
        keep.push_back(std::move(m));
      }
    }
    c_->queue() = std::move(keep);
  }

  static std::string Describe(const Entry& e) {
    return std::to_string(e.index) + "/" + std::to_string(e.term) +
           (e.data.empty() ? " (empty)" : " " + e.data);
  }

  // The stored entries after the snapshot (FirstIndex() onwards).
  std::vector<Entry> StoredLog(NodeId id) {
    MemoryStorage& st = c_->storage(id);
    Result<std::vector<Entry>> r = st.Entries(st.FirstIndex(), st.LastIndex() + 1, UINT64_MAX);
    if (!r.ok()) throw ScriptError{"storage: " + r.status().ToString()};
    return *r;
  }

  void PrintLog(NodeId id) {
    std::vector<Entry> log = StoredLog(id);
    Result<Snapshot> snap = c_->storage(id).Snapshot();
    if (snap.ok() && !snap->empty()) {
      out_ << "snapshot " << snap->metadata.index << "/" << snap->metadata.term << "\n";
    }
    if (log.empty()) out_ << "empty\n";
    for (const Entry& e : log) out_ << Describe(e) << "\n";
  }

  std::string State(NodeId id) {
    RawNode& n = c_->node(id);
    const std::vector<Entry>& ap = c_->applied(id);
    std::ostringstream s;
    s << id << ": " << RoleName(n.role()) << " term=" << n.term() << " lead=" << n.lead()
      << " commit=" << n.GetStatus().commit << " last=" << n.log().LastIndex()
      << " applied=" << (ap.empty() ? 0 : ap.back().index);
    if (n.lead_transferee() != kNoNode) s << " transferee=" << n.lead_transferee();
    if (c_->storage(id).FirstIndex() > 1) s << " first=" << c_->storage(id).FirstIndex();
    return s.str();
  }
  std::vector<std::string> States() {
    std::vector<std::string> out;
    for (NodeId id = 1; id <= c_->size(); ++id) out.push_back(State(id));
    return out;
  }
  // Prints the nodes whose state changed since the last call, and the reads released.
  void Changes() {
    std::vector<std::string> now = States();
    for (size_t i = 0; i < now.size(); ++i) {
      if (now[i] != last_states_[i]) out_ << "> " << now[i] << "\n";
    }
    last_states_ = std::move(now);
    for (NodeId id = 1; id <= c_->size(); ++id) {
      std::vector<ReadState>& rs = c_->reads(id);
      for (const ReadState& r : rs) {
        out_ << "> " << id << ": read ctx=" << r.context << " index=" << r.index << "\n";
      }
      rs.clear();
    }
  }

  void Check() {
    out_ << "election safety: " << (c_->election_safety_violated() ? "VIOLATED" : "ok") << "\n";
    bool matching = true;
    for (NodeId a = 1; a <= c_->size(); ++a) {
      for (NodeId b = a + 1; b <= c_->size(); ++b) {
        // Log matching over the indexes both still hold (compaction drops prefixes): a shared
        // (index, term) implies identical entries below it.
        std::map<uint64_t, Entry> x;
        for (Entry& e : StoredLog(a)) x.emplace(e.index, std::move(e));
        std::vector<Entry> y = StoredLog(b);
        bool shared = false;
        for (size_t k = y.size(); k-- > 0;) {
          auto it = x.find(y[k].index);
          if (it == x.end()) continue;
          if (!shared && it->second.term != y[k].term) continue;
          shared = true;
          if (!(it->second == y[k])) {
            out_ << "log matching VIOLATED between " << a << " and " << b << "\n";
            matching = false;
            break;
          }
        }
      }
    }
    if (matching) out_ << "log matching: ok\n";
    ::testing::AssertionResult prefixes = c_->AppliedArePrefixes();
    out_ << "state-machine safety: " << (prefixes ? std::string("ok") : prefixes.message()) << "\n";
  }

  std::unique_ptr<TestCluster> c_;
  std::ostringstream out_;
  std::vector<std::string> last_states_;
};

std::vector<std::string> ScenarioFiles() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(DTX_RAFT_TESTDATA, ec)) {
    if (e.path().extension() == ".txt") out.push_back(e.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct ScriptOutcome {
  std::string error;                    // the script could not be parsed
  std::vector<std::string> mismatches;  // one per command whose output differs
  std::string rewritten;                // the script with the actual outputs
};

ScriptOutcome RunScript(const std::string& text) {
  ScriptOutcome out;
  std::vector<Block> blocks;
  std::string trailer;
  if (!ParseScript(text, &blocks, &trailer, &out.error)) return out;
  if (blocks.empty()) {
    out.error = "no commands";
    return out;
  }
  Runner runner;
  for (const Block& b : blocks) {
    const std::string actual = runner.Run(b.command);
    if (actual != b.expected) {
      out.mismatches.push_back("line " + std::to_string(b.line) + ": " + b.command +
                               "\nexpected:\n" + b.expected + "actual:\n" + actual);
    }
    out.rewritten += b.prelude + b.command + "\n----\n" + actual + "\n";
  }
  while (out.rewritten.size() >= 2 && out.rewritten.substr(out.rewritten.size() - 2) == "\n\n") {
    out.rewritten.pop_back();
  }
  out.rewritten += trailer;
  return out;
}

TEST(ScenarioRunner, AcceptsMatchingOutputAndReportsDifferences) {
  const std::string good =
      "cluster n=3\n----\nok\n\nstatus\n----\n"
      "1: follower term=0 lead=0 commit=0 last=0 applied=0\n"
      "2: follower term=0 lead=0 commit=0 last=0 applied=0\n"
      "3: follower term=0 lead=0 commit=0 last=0 applied=0\n";
  ScriptOutcome ok = RunScript(good);
  EXPECT_EQ(ok.error, "");
  EXPECT_TRUE(ok.mismatches.empty());
  EXPECT_EQ(ok.rewritten, good);

  std::string bad = good;
  bad.replace(bad.find("2: follower term=0"), 18, "2: leader term=0");
  ScriptOutcome diff = RunScript(bad);
  ASSERT_EQ(diff.mismatches.size(), 1u);
  EXPECT_NE(diff.mismatches[0].find("line 5: status"), std::string::npos) << diff.mismatches[0];
  EXPECT_EQ(diff.rewritten, good);
}

TEST(ScenarioRunner, BadScriptsGiveClearErrors) {
  EXPECT_EQ(RunScript("cluster n=3\nstatus\n").error, "line 1: command not followed by ----");
  EXPECT_EQ(RunScript("# only a comment\n").error, "no commands");

  ScriptOutcome r = RunScript(
      "status\n----\n\ncluster n=x\n----\n\ncluster n=2\n----\n\ncampaign 7\n----\n\n"
      "frobnicate\n----\n\ntick 1 n=99999\n----\n\nlog 1 terms=1,a\n----\n\n"
      "drop from=\n----\n\ndeliver type=Apps\n----\n\nstabilize form=1\n----\n");
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.rewritten,
            "status\n----\nscript error: no cluster yet: start with 'cluster n=...'\n\n"
            "cluster n=x\n----\nscript error: not a number: 'x'\n\n"
            "cluster n=2\n----\nok\n\n"
            "campaign 7\n----\nscript error: no node 7\n\n"
            "frobnicate\n----\nscript error: unknown command 'frobnicate'\n\n"
            "tick 1 n=99999\n----\nscript error: tick: n must be <= 10000\n\n"
            "log 1 terms=1,a\n----\nscript error: not a number: 'a'\n\n"
            "drop from=\n----\nscript error: not a number: ''\n\n"
            "deliver type=Apps\n----\nscript error: unknown message type 'Apps'\n\n"
            "stabilize form=1\n----\nscript error: unknown filter 'form'\n");
}

class ScenarioTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, MatchesExpectedTrace) {
  const std::filesystem::path path =
      std::filesystem::path(DTX_RAFT_TESTDATA) / (GetParam() + ".txt");
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream buf;
  buf << in.rdbuf();
  ScriptOutcome r = RunScript(buf.str());
  ASSERT_EQ(r.error, "") << path;
  for (const std::string& m : r.mismatches) ADD_FAILURE() << path.filename().string() << " " << m;

  const char* rewrite_env = std::getenv("DTX_REWRITE");
  if (rewrite_env != nullptr && std::string(rewrite_env) == "1") std::ofstream(path) << r.rewritten;
}

INSTANTIATE_TEST_SUITE_P(Testdata, ScenarioTest, ::testing::ValuesIn(ScenarioFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace_if(
                               name.begin(), name.end(), [](char ch) { return !std::isalnum(ch); },
                               '_');
                           return name;
                         });

}  // namespace
}  // namespace dtx::raft
