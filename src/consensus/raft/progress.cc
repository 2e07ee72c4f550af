#include "consensus/raft/progress.h"

#include <algorithm>

namespace dtx::raft {

void Inflights::FreeLE(uint64_t index) {
  while (!last_indexes_.empty() && last_indexes_.front() <= index) last_indexes_.pop_front();
}

void Inflights::FreeFirstOne() {
  if (!last_indexes_.empty()) last_indexes_.pop_front();
}

bool Progress::IsPaused() const {
  switch (state) {
    case State::kProbe:
      return probe_sent;
    case State::kReplicate:
      return inflights.Full();
    case State::kSnapshot:
      return true;
  }
  return true;
}

void Progress::BecomeProbe() {
  const uint64_t after = state == State::kSnapshot ? std::max(match, pending_snapshot) : match;
  state = State::kProbe;
  probe_sent = false;
  inflights.Reset();
  pending_snapshot = 0;
  snapshot_elapsed = 0;
  next = after + 1;
}

void Progress::BecomeReplicate() {
  state = State::kReplicate;
  probe_sent = false;
  inflights.Reset();
  pending_snapshot = 0;
  snapshot_elapsed = 0;
  next = match + 1;
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  state = State::kSnapshot;
  probe_sent = false;
  inflights.Reset();
  pending_snapshot = snapshot_index;
  snapshot_elapsed = 0;
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
  if (state == State::kSnapshot) return false;
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
