#include "check/linearizability.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/rand.h"
#include "check/history.h"

namespace dtx::check {
namespace {

History Parse(std::string_view text) {
  Result<History> h = ParseHistory(text);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  return h.ok() ? std::move(h).value() : History();
}

CheckResult Check(std::string_view text, const CheckOptions& options = {}) {
  return CheckLinearizable(Parse(text), options);
}

// ---- history and text format ----

TEST(HistoryTest, ParsesEveryEventForm) {
  History h = Parse(R"(
# a comment
invoke 1 write k1 v1
ok 1
@10 invoke 2 cas k1 nil v2
ok 2 cas k1 false
invoke 3 read k1
ok 3 read k1 v1
invoke 1 write k2 x
ok 1 write k2 x
invoke 2 read k2
fail 2
invoke 3 cas k1 v1 v3
info 3
invoke 4 read k2
)");
  ASSERT_EQ(h.events().size(), 13u);
  EXPECT_EQ(h.events()[0].time, 1u);
  EXPECT_EQ(h.events()[2].time, 10u);
  EXPECT_EQ(h.events()[3].time, 11u);
  std::vector<Operation> ops = h.Operations();
  ASSERT_EQ(ops.size(), 7u);
  EXPECT_EQ(ops[1].op, Op::Cas("k1", std::nullopt, "v2"));
  EXPECT_EQ(ops[1].outcome, EventType::kOk);
  EXPECT_FALSE(ops[1].cas_swapped);
  EXPECT_EQ(ops[2].read_value, std::optional<std::string>("v1"));
  EXPECT_EQ(ops[4].outcome, EventType::kFail);
  EXPECT_EQ(ops[5].outcome, EventType::kInfo);
  EXPECT_EQ(ops[5].complete_time, UINT64_MAX);
  EXPECT_EQ(ops[6].outcome, EventType::kInfo);  // still pending at the end
  EXPECT_EQ(ops[6].op.key, "k2");
}

TEST(HistoryTest, FormatRoundTrips) {
  History h = Parse(
      "invoke 1 write k1 v1\nok 1\ninvoke 2 cas k1 nil v2\n@7 ok 2 cas k1 false\n"
      "invoke 3 read k1\nok 3 read k1 nil\ninvoke 4 write k1 v9\ninfo 4\ninvoke 5 read k2\n"
      "fail 5\ninvoke 6 read k1\n");
  Result<std::string> text = FormatHistory(h);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  History again = Parse(*text);
  EXPECT_EQ(again.events(), h.events());
}

TEST(HistoryTest, FormatRejectsUnwritableValues) {
  History h;
  ASSERT_TRUE(h.Invoke(1, Op::Write("k", "two words")).ok());
  EXPECT_EQ(FormatHistory(h).status().code(), StatusCode::kInvalidArgument);
  History n;
  ASSERT_TRUE(n.Invoke(1, Op::Write("k", "nil")).ok());
  EXPECT_EQ(FormatHistory(n).status().code(), StatusCode::kInvalidArgument);
}

TEST(HistoryTest, ParseErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {"invoke 1 write k1 v1\nbogus 1\n", "line 2: unknown event 'bogus'"},
      {"invoke x read k\n", "line 1: bad client id 'x'"},
      {"invoke 1 read\n", "line 1: want 'read K'"},
      {"ok 1 read k v\n", "line 1: client 1 has no operation in flight"},
      {"invoke 1 read k\ninvoke 1 read k\n", "line 2: client 1 invokes while"},
      {"invoke 1 read k\nok 1\n", "line 2: ok of a read needs"},
      {"invoke 1 read k\nok 1 read other v\n", "line 2: ok does not match"},
      {"invoke 1 cas k a b\nok 1 cas k maybe\n", "line 2: ok of a cas needs"},
      {"invoke 1 write k a\nok 1 write k b\n", "line 2: ok of a write wants"},
      {"@5 invoke 1 read k\n@5 ok 1 read k v\n", "line 2: event time 5 does not increase"},
      {"@x invoke 1 read k\n", "line 1: bad time '@x'"},
      {"invoke 1 write k nil\n", "line 1: write of nil"},
      {"\n\ninvoke 1 read k\ninfo 1 extra\n", "line 4: info takes only a client id"},
      {"fail 3\n", "line 1: client 3 completes an operation it did not invoke"},
  };
  for (const Case& c : cases) {
    Result<History> h = ParseHistory(c.text);
    ASSERT_FALSE(h.ok()) << c.text;
    EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(h.status().message().find(c.want), std::string::npos)
        << "got: " << h.status().message() << "\nwant: " << c.want;
  }
}

TEST(HistoryTest, AppendRejectsMisuseAndKeepsHistory) {
  History h;
  EXPECT_FALSE(h.OkWrite(1).ok());
  ASSERT_TRUE(h.Invoke(1, Op::Read("k")).ok());
  EXPECT_FALSE(h.OkWrite(1).ok());  // a read completed as a write
  EXPECT_FALSE(h.Invoke(2, Op::Read("")).ok());
  EXPECT_EQ(h.events().size(), 1u);
  EXPECT_TRUE(h.OkRead(1, std::nullopt).ok());
}

// ---- linearizability: paper-style cases ----

TEST(LinearizabilityTest, EmptyAndSequentialHistoriesAreOk) {
  EXPECT_TRUE(Check("").ok());
  CheckResult r = Check(R"(
invoke 1 read k
ok 1 read k nil
invoke 1 write k a
ok 1
invoke 2 read k
ok 2 read k a
invoke 2 write k b
ok 2
invoke 1 read k
ok 1 read k b
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kOk) << r.explanation;
}

TEST(LinearizabilityTest, ConcurrentWriteAndReadInEitherOrder) {
  // The read overlaps the write, so it may see the old or the new value.
  const char* base = R"(
invoke 1 write k a
ok 1
invoke 1 write k b
invoke 2 read k
ok 2 read k %s
ok 1
)";
  for (const char* seen : {"a", "b"}) {
    char buf[256];
    snprintf(buf, sizeof(buf), base, seen);
    CheckResult r = Check(buf);
    EXPECT_EQ(r.outcome, CheckOutcome::kOk) << seen << ": " << r.explanation;
  }
  // The read returns before the write is invoked: only the old value is allowed.
  CheckResult r = Check(R"(
invoke 1 write k a
ok 1
invoke 2 read k
ok 2 read k b
invoke 1 write k b
ok 1
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kViolation);
}

TEST(LinearizabilityTest, StaleReadAfterCompletedWriteIsAViolation) {
  CheckResult r = Check(R"(
invoke 1 write k a
ok 1
invoke 1 write k b
ok 1
invoke 2 read k
ok 2 read k a
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kViolation);
  EXPECT_EQ(r.key, "k");
  EXPECT_NE(r.explanation.find("client 2 read k => a"), std::string::npos) << r.explanation;
  EXPECT_NE(r.explanation.find("holds 'b'"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityTest, ReadOfAValueNeverWrittenIsAViolation) {
  CheckResult r = Check(R"(
invoke 1 write k a
invoke 2 read k
ok 2 read k ghost
ok 1
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kViolation);
  EXPECT_NE(r.explanation.find("ghost"), std::string::npos) << r.explanation;
  // Reading a value before any write is a violation too; reading "absent" is fine.
  EXPECT_EQ(Check("invoke 1 read k\nok 1 read k a\n").outcome, CheckOutcome::kViolation);
  EXPECT_TRUE(Check("invoke 1 read k\nok 1 read k nil\n").ok());
}

TEST(LinearizabilityTest, CasSemantics) {
  // Expected absent on an empty key swaps; a second one must not.
  EXPECT_TRUE(Check(R"(
invoke 1 cas k nil a
ok 1 cas k true
invoke 2 cas k nil b
ok 2 cas k false
invoke 1 read k
ok 1 read k a
)")
                  .ok());
  // Expected absent cannot swap once a value is there.
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 2 cas k nil b
ok 2 cas k true
)")
                .outcome,
            CheckOutcome::kViolation);
  // Expected match swaps and the new value is read.
  EXPECT_TRUE(Check(R"(
invoke 1 write k a
ok 1
invoke 2 cas k a b
ok 2 cas k true
invoke 1 read k
ok 1 read k b
)")
                  .ok());
  // A mismatching cas must report no swap ...
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 2 cas k z b
ok 2 cas k true
)")
                .outcome,
            CheckOutcome::kViolation);
  // ... and a matching one that reports no swap is wrong.
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 2 cas k a b
ok 2 cas k false
)")
                .outcome,
            CheckOutcome::kViolation);
  // A cas that did not swap leaves the value alone.
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 2 cas k z b
ok 2 cas k false
invoke 1 read k
ok 1 read k b
)")
                .outcome,
            CheckOutcome::kViolation);
  // Two concurrent cas from the same value: only one may win.
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 2 cas k a b
invoke 3 cas k a c
ok 2 cas k true
ok 3 cas k true
)")
                .outcome,
            CheckOutcome::kViolation);
}

TEST(LinearizabilityTest, InfoWriteMayShowUpLater) {
  CheckResult r = Check(R"(
invoke 1 write k a
ok 1
invoke 2 write k b
info 2
invoke 1 read k
ok 1 read k a
invoke 1 read k
ok 1 read k b
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kOk) << r.explanation;
  // Once it has shown up it cannot disappear again (no other write restores a).
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 2 write k b
info 2
invoke 1 read k
ok 1 read k b
invoke 1 read k
ok 1 read k a
)")
                .outcome,
            CheckOutcome::kViolation);
  // But it cannot take effect before its invoke.
  EXPECT_EQ(Check(R"(
invoke 1 read k
ok 1 read k b
invoke 2 write k b
info 2
)")
                .outcome,
            CheckOutcome::kViolation);
}

TEST(LinearizabilityTest, InfoWriteThatNeverShowsUpIsOk) {
  CheckResult r = Check(R"(
invoke 1 write k a
ok 1
invoke 2 write k b
info 2
invoke 1 read k
ok 1 read k a
invoke 3 write k c
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kOk) << r.explanation;
}

TEST(LinearizabilityTest, InfoCasMayOrMayNotApply) {
  const char* base = R"(
invoke 1 write k a
ok 1
invoke 2 cas k a b
info 2
invoke 1 read k
ok 1 read k %s
)";
  for (const char* seen : {"a", "b"}) {
    char buf[256];
    snprintf(buf, sizeof(buf), base, seen);
    EXPECT_TRUE(Check(buf).ok()) << seen;
  }
}

TEST(LinearizabilityTest, UnreadInfoWriteCanExplainAnUnswappedCas) {
  // b is never read, but the cas can only have failed if b landed first.
  EXPECT_TRUE(Check(R"(
invoke 1 write k a
ok 1
invoke 2 write k b
info 2
invoke 3 cas k a c
ok 3 cas k false
)")
                  .ok());
  // Not when the cas completed before b was invoked.
  EXPECT_EQ(Check(R"(
invoke 1 write k a
ok 1
invoke 3 cas k a c
ok 3 cas k false
invoke 2 write k b
info 2
)")
                .outcome,
            CheckOutcome::kViolation);
}

TEST(LinearizabilityTest, FailedWriteNeverHappened) {
  EXPECT_EQ(Check(R"(
invoke 1 write k a
fail 1
invoke 2 read k
ok 2 read k a
)")
                .outcome,
            CheckOutcome::kViolation);
}

TEST(LinearizabilityTest, TwoKeysOnlyOneBroken) {
  CheckResult r = Check(R"(
invoke 1 write good x
invoke 2 write bad y
ok 1
ok 2
invoke 1 write bad z
ok 1
invoke 3 read good
ok 3 read good x
invoke 3 read bad
ok 3 read bad y
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kViolation);
  EXPECT_EQ(r.key, "bad");
  EXPECT_EQ(r.explanation.rfind("key bad: ", 0), 0u) << r.explanation;
}

TEST(LinearizabilityTest, StaleReadFromADeposedLeader) {
  // A writes v1 and v2 through the new leader and both are acknowledged; B then asks the old
  // leader, which has not heard of its deposition, and gets v1.
  CheckResult r = Check(R"(
invoke 1 write x v1
ok 1
invoke 1 write x v2
ok 1
invoke 2 read x
ok 2 read x v1
invoke 1 read x
ok 1 read x v2
)");
  EXPECT_EQ(r.outcome, CheckOutcome::kViolation);
  EXPECT_EQ(r.key, "x");
  EXPECT_NE(r.explanation.find("client 2 read x => v1"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityTest, BudgetExhaustedIsUnknown) {
  // Many concurrent writes and an impossible read: the search must try many orders.
  std::string text;
  for (int c = 1; c <= 12; ++c)
    text += "invoke " + std::to_string(c) + " write k v" + std::to_string(c) + "\n";
  text += "invoke 100 read k\nok 100 read k nope\n";
  for (int c = 1; c <= 12; ++c) text += "ok " + std::to_string(c) + "\n";
  CheckOptions tiny;
  tiny.max_states_per_key = 50;
  CheckResult r = Check(text, tiny);
  EXPECT_EQ(r.outcome, CheckOutcome::kUnknown);
  EXPECT_EQ(r.key, "k");
  EXPECT_NE(r.explanation.find("budget"), std::string::npos) << r.explanation;
  // With the default budget the memoized search settles it.
  EXPECT_EQ(Check(text).outcome, CheckOutcome::kViolation);
}

// ---- randomized: histories from a real register ----

struct GenOptions {
  int clients = 5;
  int keys = 3;
  int operations = 60;
};

// Runs a real sequential register while clients overlap at random: each operation takes effect
// at one moment between its invoke and its completion, so the history is linearizable by
// construction. Some operations fail (no effect), some end as info (with or without effect;
// an unapplied info operation may still take effect later).
class Generator {
 public:
  explicit Generator(uint64_t seed, GenOptions o) : rand_(seed), o_(o), clients_(o.clients) {}

  History Run() {
    int invoked = 0;
    // Bounded: each step advances some client or a limbo op; 20x operations is ample.
    for (int step = 0; step < o_.operations * 20; ++step) {
      if (!limbo_.empty() && rand_.Chance(0.05)) {
        size_t i = rand_.Uniform(limbo_.size());
        Apply(&limbo_[i]);
        limbo_.erase(limbo_.begin() + static_cast<std::ptrdiff_t>(i));
      }
      const uint64_t c = rand_.Uniform(clients_.size());
      Client& cl = clients_[c];
      if (!cl.busy) {
        if (invoked >= o_.operations) continue;
        ++invoked;
        cl.busy = true;
        cl.applied = false;
        cl.op = RandomOp();
        EXPECT_TRUE(history_.Invoke(c, cl.op).ok());
      } else if (!cl.applied) {
        if (rand_.Chance(0.05)) {
          EXPECT_TRUE(history_.Fail(c).ok());
          cl.busy = false;
        } else if (rand_.Chance(0.05)) {
          EXPECT_TRUE(history_.Info(c).ok());
          limbo_.push_back(cl);
          cl.busy = false;
        } else {
          Apply(&cl);
        }
      } else {
        cl.busy = false;
        if (rand_.Chance(0.05)) {
          EXPECT_TRUE(history_.Info(c).ok());
        } else if (cl.op.type == OpType::kRead) {
          EXPECT_TRUE(history_.OkRead(c, cl.read).ok());
        } else if (cl.op.type == OpType::kWrite) {
          EXPECT_TRUE(history_.OkWrite(c).ok());
        } else {
          EXPECT_TRUE(history_.OkCas(c, cl.swapped).ok());
        }
      }
    }
    return history_;
  }

 private:
  struct Client {
    bool busy = false;
    bool applied = false;
    Op op;
    std::optional<std::string> read;
    bool swapped = false;
  };

  Op RandomOp() {
    std::string key = "k" + std::to_string(rand_.Uniform(o_.keys));
    std::string value = "v" + std::to_string(++next_value_);
    switch (rand_.Uniform(3)) {
      case 0:
        return Op::Read(key);
      case 1:
        return Op::Write(key, value);
      default: {
        std::optional<std::string> expected = reg_[key];
        if (rand_.Chance(0.4)) {
          expected = rand_.Chance(0.3) ? std::nullopt
                                       : std::optional<std::string>(
                                             "v" + std::to_string(rand_.Uniform(next_value_) + 1));
        }
        return Op::Cas(key, expected, value);
      }
    }
  }

  void Apply(Client* cl) {
    cl->applied = true;
    std::optional<std::string>& v = reg_[cl->op.key];
    switch (cl->op.type) {
      case OpType::kRead:
        cl->read = v;
        break;
      case OpType::kWrite:
        v = cl->op.value;
        break;
      case OpType::kCas:
        cl->swapped = v == cl->op.expected;
        if (cl->swapped) v = cl->op.value;
        break;
    }
  }

  Rand rand_;
  GenOptions o_;
  std::vector<Client> clients_;
  std::vector<Client> limbo_;
  std::map<std::string, std::optional<std::string>> reg_;
  History history_;
  uint64_t next_value_ = 0;
};

// Rebuilds `h` with the read at event index `target` returning `value`.
History WithRead(const History& h, size_t target, std::optional<std::string> value) {
  History out;
  for (size_t i = 0; i < h.events().size(); ++i) {
    Event e = h.events()[i];
    if (i == target) e.read_value = value;
    EXPECT_TRUE(out.Append(e).ok());
  }
  return out;
}

std::vector<size_t> OkReads(const History& h) {
  std::vector<size_t> out;
  for (size_t i = 0; i < h.events().size(); ++i) {
    const Event& e = h.events()[i];
    if (e.type == EventType::kOk && e.op.type == OpType::kRead) out.push_back(i);
  }
  return out;
}

TEST(LinearizabilityRandomTest, GeneratedHistoriesAreOkAndGhostReadsAreCaught) {
  int mutated = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    History h = Generator(seed, GenOptions{}).Run();
    CheckResult r = CheckLinearizable(h);
    ASSERT_EQ(r.outcome, CheckOutcome::kOk) << "seed " << seed << ": " << r.explanation << "\n"
                                            << FormatHistory(h).value();
    std::vector<size_t> reads = OkReads(h);
    if (reads.empty()) continue;
    Rand pick(seed * 7919);
    const size_t target = reads[pick.Uniform(reads.size())];
    History bad = WithRead(h, target, "never-written");
    CheckResult rb = CheckLinearizable(bad);
    ASSERT_EQ(rb.outcome, CheckOutcome::kViolation) << "seed " << seed;
    EXPECT_EQ(rb.key, h.events()[target].op.key);
    ++mutated;
  }
  EXPECT_GT(mutated, 450);
}

// A brute-force oracle for small histories: tries every order of the operations that respects
// real time (an operation completed before another's invoke comes first), where operations with
// an unknown outcome may also be left out.
bool BruteForceKey(const std::vector<Operation>& ops, std::vector<bool>& placed,
                   std::optional<std::string> state) {
  bool all_ok_placed = true;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!placed[i] && ops[i].outcome == EventType::kOk) all_ok_placed = false;
  }
  if (all_ok_placed) return true;
  for (size_t c = 0; c < ops.size(); ++c) {
    if (placed[c]) continue;
    bool allowed = true;
    for (size_t a = 0; a < ops.size(); ++a) {
      if (a != c && !placed[a] && ops[a].outcome == EventType::kOk &&
          ops[a].complete_time < ops[c].invoke_time) {
        allowed = false;
      }
    }
    if (!allowed) continue;
    const Operation& o = ops[c];
    const bool info = o.outcome != EventType::kOk;
    std::optional<std::string> next = state;
    switch (o.op.type) {
      case OpType::kRead:
        if (!info && state != o.read_value) continue;
        break;
      case OpType::kWrite:
        next = o.op.value;
        break;
      case OpType::kCas:
        if (!info && o.cas_swapped != (state == o.op.expected)) continue;
        if (state == o.op.expected) next = o.op.value;
        break;
    }
    placed[c] = true;
    const bool found = BruteForceKey(ops, placed, next);
    placed[c] = false;
    if (found) return true;
  }
  return false;
}

bool BruteForce(const History& h) {
  std::map<std::string, std::vector<Operation>> by_key;
  for (const Operation& o : h.Operations()) {
    if (o.outcome != EventType::kFail) by_key[o.op.key].push_back(o);
  }
  for (auto& [key, ops] : by_key) {
    std::vector<bool> placed(ops.size(), false);
    if (!BruteForceKey(ops, placed, std::nullopt)) return false;
  }
  return true;
}

TEST(LinearizabilityRandomTest, AgreesWithBruteForceOnMutatedReads) {
  int violations = 0;
  int oks = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    History h = Generator(seed, GenOptions{.clients = 3, .keys = 2, .operations = 14}).Run();
    std::vector<size_t> reads = OkReads(h);
    if (reads.empty()) continue;
    Rand pick(seed);
    const size_t target = reads[pick.Uniform(reads.size())];
    // Any value this history ever wrote, or absent: some keep it linearizable, some do not.
    std::vector<std::optional<std::string>> candidates = {std::nullopt};
    for (const Event& e : h.events()) {
      if (e.type == EventType::kInvoke && e.op.type != OpType::kRead) {
        candidates.push_back(e.op.value);
      }
    }
    History m = WithRead(h, target, candidates[pick.Uniform(candidates.size())]);
    const bool expected = BruteForce(m);
    CheckResult r = CheckLinearizable(m);
    ASSERT_EQ(r.outcome, expected ? CheckOutcome::kOk : CheckOutcome::kViolation)
        << "seed " << seed << ": " << r.explanation << "\n"
        << FormatHistory(m).value();
    (expected ? oks : violations) += 1;
  }
  // Both verdicts must actually occur, or the comparison proves little.
  EXPECT_GT(violations, 50);
  EXPECT_GT(oks, 50);
}

TEST(LinearizabilityRandomTest, TwoThousandOperationsOverTenKeys) {
  History h = Generator(42, GenOptions{.clients = 5, .keys = 10, .operations = 2000}).Run();
  ASSERT_GE(h.Operations().size(), 1900u);
  CheckResult r = CheckLinearizable(h);
  EXPECT_EQ(r.outcome, CheckOutcome::kOk) << r.explanation;
}

}  // namespace
}  // namespace dtx::check
