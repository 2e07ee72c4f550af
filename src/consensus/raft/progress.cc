#include "consensus/raft/progress.h"

#include <algorithm>

namespace dtx::raft {

void Inflights::FreeLE(uint64_t index) {
  while (!last_indexes_.empty() && last_indexes_.front() <= index) last_indexes_.pop_front();
}

void Inflights::FreeFirstOne() {
  if (!last_indexes_.empty()) last_indexes_.pop_front();
}

bool Progress::IsPaused() const { return state == State::kProbe ? probe_sent : inflights.Full(); }

void Progress::BecomeProbe() {
  state = State::kProbe;
  probe_sent = false;
  inflights.Reset();
  next = match + 1;
}

void Progress::BecomeReplicate() {
  state = State::kReplicate;
  probe_sent = false;
  inflights.Reset();
  next = match + 1;
}

bool Progress::MaybeUpdate(uint64_t n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

void Progress::SentAppend(uint64_t last_index, size_t entries_sent) {
  if (state == State::kReplicate) {
    if (entries_sent > 0) {
      next = last_index + 1;
      inflights.Add(last_index);
    }
  } else {
    probe_sent = true;
  }
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t probe_hint) {
  if (state == State::kReplicate) {
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // In probe state only the answer to the latest probe (sent at next-1) counts.
  if (next == 0 || next - 1 != rejected) return false;
  next = std::max(std::min(rejected, probe_hint + 1), match + 1);
  probe_sent = false;
  return true;
}

}  // namespace dtx::raft
