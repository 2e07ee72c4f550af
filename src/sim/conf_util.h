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

}  // namespace dtx::sim
