// Small helpers on Raft configurations shared by the simulators (raft_sim, raft_cluster).
//
// Thread-safety: pure functions.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "consensus/raft/types.h"

namespace dtx::sim {

inline bool Contains(const std::vector<raft::NodeId>& v, raft::NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

// "voters { n1 n2 n3 } learners { n4 }"
inline std::string DescribeConf(const raft::ConfState& cs) {
  std::string out = "voters {";
  for (raft::NodeId id : cs.voters) out += fmt::format(" n{}", id);
  out += " } learners {";
  for (raft::NodeId id : cs.learners) out += fmt::format(" n{}", id);
  return out + " }";
}

// How many voters are in one configuration and not in the other (single-server steps: <= 1).
inline size_t VoterDistance(const raft::ConfState& a, const raft::ConfState& b) {
  size_t d = 0;
  for (raft::NodeId id : a.voters) d += Contains(b.voters, id) ? 0 : 1;
  for (raft::NodeId id : b.voters) d += Contains(a.voters, id) ? 0 : 1;
  return d;
}

}  // namespace dtx::sim
