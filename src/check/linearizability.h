// Linearizability checker for a key-value register (read, write, compare-and-set).
//
// A history is linearizable when every operation can be given a single point in time, between
// its invoke and its completion, such that the operations, applied in that order to one
// register per key (all keys start absent), return exactly what the clients saw. Failed
// operations never took effect and are dropped; operations with an unknown outcome (info, or
// still pending at the end) may take effect at any point after their invoke, or never, and
// constrain nothing about what they returned.
//
// Algorithm: Wing & Gong's backtracking search over the history's call/return entries, with
// Lowe's memoization (a cache of (set of linearized operations, register state) pairs already
// explored), run on each key separately (a register history is linearizable iff each key's
// sub-history is). Worst case exponential: the search is bounded by CheckOptions::max_states,
// after which the key's answer is "unknown" instead of a verdict. In practice the cost grows
// with (operations of a key) x (its unknown-outcome writes whose values someone observed, or
// that precede a completed cas that did not swap): a few thousand operations with a handful of
// those take milliseconds; 2,000 operations on one key with ~185 of them take seconds.
//
// Thread-safety: CheckLinearizable is a pure function; call it from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "check/history.h"

namespace dtx::check {

struct CheckOptions {
  // Upper bound on distinct (linearized set, state) pairs explored per key before giving up
  // with kUnknown. Each costs about (operations/8 + 40) bytes of memory.
  uint64_t max_states_per_key = 5'000'000;
};

enum class CheckOutcome { kOk, kViolation, kUnknown };

struct CheckResult {
  CheckOutcome outcome = CheckOutcome::kOk;
  // kViolation: the first key (in key order) whose history cannot be linearized; kUnknown: the
  // first key whose search ran out of budget (only reported when no key is a violation).
  std::string key;
  // kViolation: the deepest point the search reached: how many of the key's operations were
  // linearized, the register's value there, and the completed operation that could not be placed
  // before its completion. kUnknown: the budget that was exhausted.
  std::string explanation;
  // Distinct states explored over all keys.
  uint64_t states = 0;

  bool ok() const { return outcome == CheckOutcome::kOk; }
};

std::string_view CheckOutcomeName(CheckOutcome outcome);

// Checks `history` (see history.h for its meaning). Always terminates within the budget.
CheckResult CheckLinearizable(const History& history, const CheckOptions& options = {});

}  // namespace dtx::check
