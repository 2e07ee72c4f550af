#include "check/linearizability.h"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace dtx::check {

namespace {

constexpr int32_t kAbsent = 0;

// One operation of a key, with its values interned (kAbsent = no value).
struct ModelOp {
  const Operation* source = nullptr;
  OpType type = OpType::kRead;
  bool info = false;
  int32_t read = kAbsent;  // ok read: the value seen
  int32_t expected = kAbsent;
  int32_t value = kAbsent;  // write / cas: the value written
  bool swapped = false;     // ok cas
};

// Applies `op` to `state`; false when the op's observed result contradicts the state.
bool Step(const ModelOp& op, int32_t state, int32_t* next) {
  switch (op.type) {
    case OpType::kRead:
      *next = state;
      return op.info || state == op.read;
    case OpType::kWrite:
      *next = op.value;
      return true;
    case OpType::kCas:
      if (op.info) {
        *next = state == op.expected ? op.value : state;
        return true;
      }
      if (op.swapped) {
        *next = op.value;
        return state == op.expected;
      }
      *next = state;
      return state != op.expected;
  }
  return false;
}

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The hash is kept incrementally (Zobrist: xor of a random word per linearized operation, mixed
// with the state), so probing the cache costs no pass over the bitset and no allocation.
struct CacheKey {
  std::vector<uint64_t> bits;
  int32_t state = kAbsent;
  uint64_t hash = 0;
  bool operator==(const CacheKey&) const = default;
};

struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const { return static_cast<size_t>(k.hash); }
};

// A call or return entry of the doubly linked list the search walks; index 0 is the head.
struct Entry {
  int op = -1;  // index into ops; -1 for the head
  bool is_call = false;
  int match = -1;  // call: index of its return entry
  int prev = -1;
  int next = -1;
};

struct KeyVerdict {
  CheckOutcome outcome = CheckOutcome::kOk;
  std::string explanation;
  uint64_t states = 0;
};

class KeyChecker {
 public:
  KeyChecker(const std::vector<const Operation*>& ops, uint64_t max_states)
      : max_states_(max_states) {
    values_.push_back("");  // kAbsent
    for (const Operation* o : ops) {
      ModelOp m;
      m.source = o;
      m.type = o->op.type;
      m.info = o->outcome != EventType::kOk;
      if (m.type == OpType::kRead) m.read = Intern(o->read_value);
      if (m.type == OpType::kCas) m.expected = Intern(o->op.expected);
      if (m.type != OpType::kRead) m.value = Intern(o->op.value);
      m.swapped = o->cas_swapped;
      ops_.push_back(m);
    }
    DropUnobservedInfoWrites();
  }

  KeyVerdict Run() {
    BuildList();
    // probe.bits is the set of operations linearized so far; set_hash its Zobrist hash.
    CacheKey probe;
    probe.bits.assign((ops_.size() + 63) / 64, 0);
    uint64_t set_hash = 0;
    struct Frame {
      int entry;
      int32_t state;
    };
    std::vector<Frame> stack;
    std::unordered_set<CacheKey, CacheKeyHash> cache;
    int32_t state = kAbsent;
    size_t ok_left = 0;
    for (const ModelOp& m : ops_) ok_left += m.info ? 0 : 1;
    size_t best_depth = 0;
    int blocked_op = -1;
    int32_t blocked_state = kAbsent;

    int entry = entries_[0].next;
    while (ok_left > 0) {
      // A call entry is always followed by its own return, so `entry` is never -1 here while
      // completed operations remain.
      const Entry& e = entries_[entry];
      if (e.is_call) {
        const ModelOp& m = ops_[e.op];
        int32_t next_state;
        if (Step(m, state, &next_state)) {
          const uint64_t bit = uint64_t{1} << (e.op % 64);
          probe.bits[e.op / 64] |= bit;
          probe.state = next_state;
          probe.hash = set_hash ^ Mix(static_cast<uint64_t>(e.op)) ^ Mix(~uint64_t(next_state));
          if (!cache.contains(probe)) {
            cache.insert(probe);
            if (cache.size() > max_states_) {
              return {CheckOutcome::kUnknown,
                      "search budget of " + std::to_string(max_states_) +
                          " states exhausted after " + std::to_string(ops_.size()) + " operations",
                      cache.size()};
            }
            stack.push_back({entry, state});
            state = next_state;
            set_hash ^= Mix(static_cast<uint64_t>(e.op));
            if (!m.info) --ok_left;
            Lift(entry);
            entry = entries_[0].next;
            continue;
          }
          probe.bits[e.op / 64] &= ~bit;
        }
        entry = e.next;
        continue;
      }
      // A completed operation's return: it must have been linearized by now. Backtrack.
      if (blocked_op < 0 || stack.size() > best_depth) {
        best_depth = stack.size();
        blocked_op = e.op;
        blocked_state = state;
      }
      if (stack.empty()) {
        return {CheckOutcome::kViolation, Explain(best_depth, blocked_op, blocked_state),
                cache.size()};
      }
      Frame top = stack.back();
      stack.pop_back();
      const int op = entries_[top.entry].op;
      state = top.state;
      probe.bits[op / 64] &= ~(uint64_t{1} << (op % 64));
      set_hash ^= Mix(static_cast<uint64_t>(op));
      if (!ops_[op].info) ++ok_left;
      Unlift(top.entry);
      entry = entries_[top.entry].next;
    }
    return {CheckOutcome::kOk, "", cache.size()};
  }

 private:
  int32_t Intern(const std::optional<std::string>& v) {
    if (!v) return kAbsent;
    auto [it, inserted] = ids_.try_emplace(*v, static_cast<int32_t>(values_.size()));
    if (inserted) values_.push_back(*v);
    return it->second;
  }

  // An unknown-outcome write or cas w of a value v that no operation observes (no completed
  // read saw v, no cas expects v) can only matter to a completed "not swapped" cas linearized
  // after it (any value but the expected one satisfies those), and those complete after w's
  // invoke. Without such a cas, removing w from a linearization leaves every operation up to the
  // next write satisfied, so w can be left out. Without this, each such write multiplies the
  // states to explore by the number of positions it could take.
  void DropUnobservedInfoWrites() {
    std::vector<bool> observed(values_.size(), false);
    uint64_t last_unswapped_complete = 0;
    bool any_unswapped = false;
    for (const ModelOp& m : ops_) {
      if (m.type == OpType::kRead) observed[m.read] = true;
      if (m.type == OpType::kCas) observed[m.expected] = true;
      if (m.type == OpType::kCas && !m.info && !m.swapped) {
        any_unswapped = true;
        last_unswapped_complete = std::max(last_unswapped_complete, m.source->complete_time);
      }
    }
    std::erase_if(ops_, [&](const ModelOp& m) {
      return m.info && m.type != OpType::kRead && !observed[m.value] &&
             (!any_unswapped || last_unswapped_complete < m.source->invoke_time);
    });
  }

  std::string ValueName(int32_t id) const {
    return id == kAbsent ? std::string("absent") : "'" + values_[id] + "'";
  }

  void BuildList() {
    struct Point {
      uint64_t time;
      bool is_return;
      int op;
    };
    std::vector<Point> points;
    for (size_t i = 0; i < ops_.size(); ++i) {
      points.push_back({ops_[i].source->invoke_time, false, static_cast<int>(i)});
      points.push_back({ops_[i].source->complete_time, true, static_cast<int>(i)});
    }
    // Times are distinct except the returns of unknown outcomes, all at UINT64_MAX; ordering
    // calls before returns at equal times keeps every call ahead of its own return.
    std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
      if (a.time != b.time) return a.time < b.time;
      if (a.is_return != b.is_return) return !a.is_return;
      return a.op < b.op;
    });
    entries_.assign(points.size() + 1, Entry{});
    std::vector<int> call_of(ops_.size(), -1);
    for (size_t i = 0; i < points.size(); ++i) {
      const int idx = static_cast<int>(i) + 1;
      Entry& e = entries_[idx];
      e.op = points[i].op;
      e.is_call = !points[i].is_return;
      e.prev = idx - 1;
      e.next = i + 1 < points.size() ? idx + 1 : -1;
      if (e.is_call) {
        call_of[e.op] = idx;
      } else {
        entries_[call_of[e.op]].match = idx;
      }
    }
    entries_[0].next = points.empty() ? -1 : 1;
  }

  void Unlink(int i) {
    Entry& e = entries_[i];
    entries_[e.prev].next = e.next;
    if (e.next >= 0) entries_[e.next].prev = e.prev;
  }

  void Relink(int i) {
    Entry& e = entries_[i];
    entries_[e.prev].next = i;
    if (e.next >= 0) entries_[e.next].prev = i;
  }

  void Lift(int call) {
    Unlink(call);
    Unlink(entries_[call].match);
  }

  // Exact reverse of Lift (dancing links): valid because lifts are undone in LIFO order.
  void Unlift(int call) {
    Relink(entries_[call].match);
    Relink(call);
  }

  std::string Explain(size_t depth, int op, int32_t state) const {
    size_t completed = 0;
    for (const ModelOp& m : ops_) completed += m.info ? 0 : 1;
    std::string s = "at most " + std::to_string(depth) + " of " + std::to_string(ops_.size()) +
                    " operations (" + std::to_string(completed) +
                    " completed) can be linearized; then " + DescribeOperation(*ops_[op].source) +
                    " cannot be placed before it completed (the register holds " +
                    ValueName(state) + ")";
    return s;
  }

  uint64_t max_states_;
  std::vector<ModelOp> ops_;
  std::vector<Entry> entries_;
  std::vector<std::string> values_;
  std::unordered_map<std::string, int32_t> ids_;
};

}  // namespace

std::string_view CheckOutcomeName(CheckOutcome outcome) {
  switch (outcome) {
    case CheckOutcome::kOk:
      return "ok";
    case CheckOutcome::kViolation:
      return "violation";
    case CheckOutcome::kUnknown:
      return "unknown";
  }
  return "?";
}

CheckResult CheckLinearizable(const History& history, const CheckOptions& options) {
  const std::vector<Operation> ops = history.Operations();
  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const Operation& o : ops) {
    // Failed operations never happened; a read with an unknown outcome changes nothing and
    // returned nothing, so neither constrains the search.
    if (o.outcome == EventType::kFail) continue;
    if (o.outcome != EventType::kOk && o.op.type == OpType::kRead) continue;
    by_key[o.op.key].push_back(&o);
  }
  CheckResult result;
  std::optional<CheckResult> unknown;
  for (const auto& [key, key_ops] : by_key) {
    KeyVerdict v = KeyChecker(key_ops, options.max_states_per_key).Run();
    result.states += v.states;
    if (v.outcome == CheckOutcome::kViolation) {
      result.outcome = CheckOutcome::kViolation;
      result.key = key;
      result.explanation = "key " + key + ": " + v.explanation;
      return result;
    }
    if (v.outcome == CheckOutcome::kUnknown && !unknown) {
      unknown = CheckResult{CheckOutcome::kUnknown, key, "key " + key + ": " + v.explanation, 0};
    }
  }
  if (unknown) {
    unknown->states = result.states;
    return *unknown;
  }
  return result;
}

}  // namespace dtx::check
