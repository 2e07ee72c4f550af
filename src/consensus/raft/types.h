// The values the Raft core exchanges with its host: log entries, the persistent hard state,
// snapshots, and the messages between peers. Plain data: no I/O, no encoding (the transport owns
// the wire form).
//
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dtx::raft {

using NodeId = uint64_t;
// Id 0 means "nobody" (no vote, no known leader); real node ids are > 0.
inline constexpr NodeId kNoNode = 0;

enum class EntryType : uint8_t {
  kNormal = 0,      // application data (may be empty: a leader's no-op entry on election)
  kConfChange = 1,  // a membership change: data is EncodeConfChange(ConfChange)
};

// One membership change (one server at a time; see RawNode::ProposeConfChange).
enum class ConfChangeType : uint8_t {
  kAddVoter = 0,     // adds a new voter, or promotes the learner `node` to voter
  kRemoveVoter = 1,  // removes the member `node` (a voter or a learner)
  kAddLearner = 2,   // adds a new learner
};

struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddVoter;
  NodeId node = 0;

  bool operator==(const ConfChange&) const = default;
};

// The data of a kConfChange entry: one type byte, then the node id as 8 little-endian bytes.
std::string EncodeConfChange(const ConfChange& cc);
// False unless `data` is exactly what EncodeConfChange writes (a known type, an id > 0).
bool DecodeConfChange(std::string_view data, ConfChange* out);

// A membership: voters and learners, each sorted, disjoint. Empty voters means "none recorded"
// (a snapshot written without one: the node falls back to its bootstrap Config).
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  bool empty() const { return voters.empty() && learners.empty(); }
  bool operator==(const ConfState&) const = default;
};

struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// Approximate size of an entry, used for the byte bounds on messages and reads.
inline uint64_t EntrySize(const Entry& e) { return e.data.size() + 24; }

// What must be on stable storage before the node may answer anyone: the current term, the vote
// cast in it, and the highest index known committed.
struct HardState {
  uint64_t term = 0;
  NodeId vote = kNoNode;
  uint64_t commit = 0;

  bool operator==(const HardState&) const = default;
};

// Where a snapshot ends: it stands for every entry up to and including index, the last of which
// had term `term`; conf_state is the membership as of that index (empty: not recorded).
struct SnapshotMetadata {
  uint64_t index = 0;
  uint64_t term = 0;
  ConfState conf_state{};

  bool operator==(const SnapshotMetadata&) const = default;
};

// A state machine image covering the log up to metadata.index; data is opaque to the core.
struct Snapshot {
  SnapshotMetadata metadata;
  std::string data;

  bool empty() const { return metadata.index == 0; }
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : uint8_t {
  kPreVote,        // "would you vote for me at term m.term?" (m.term = candidate's term + 1)
  kPreVoteResp,    // reject = false grants
  kVote,           // RequestVote: index/log_term = candidate's last entry
  kVoteResp,       // reject = false grants
  kApp,            // AppendEntries: entries follow (index, log_term); commit = leader's commit
  kAppResp,        // index = last index matched; on reject: reject_hint/log_term = hint
  kHeartbeat,      // commit = min(leader's commit, follower's match); context for ReadIndex;
                   // index = the leader's tick count at sending (lease reads only, else 0)
  kHeartbeatResp,  // index = responder's last log index; context echoed; commit echoes the
                   // heartbeat's index (lease reads)
  kTimeoutNow,     // leadership transfer: the leader asks the target to campaign at once
  kSnap,           // InstallSnapshot: `snapshot` replaces the follower's log up to its index;
                   // the follower answers kAppResp (index = its last index, or its commit when
                   // the snapshot was stale)
};

std::string_view MessageTypeName(MessageType t);

struct Message {
  MessageType type = MessageType::kApp;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  uint64_t term = 0;
  // kApp: the index/term of the entry preceding `entries`. kVote/kPreVote: the candidate's last
  // entry. kAppResp: the index acknowledged (or the rejected index when reject).
  uint64_t log_term = 0;
  uint64_t index = 0;
  std::vector<Entry> entries;
  uint64_t commit = 0;
  bool reject = false;
  // kAppResp with reject: the follower's suggestion where the leader should probe next; log_term
  // then carries the term of the follower's entry at reject_hint (fast backtracking).
  uint64_t reject_hint = 0;
  // kHeartbeat/kHeartbeatResp: the ReadIndex request this round confirms (empty if none).
  std::string context;
  // kVote: the campaign was asked for by the leader (kTimeoutNow), so voters that heard from a
  // live leader lately vote anyway (leader stickiness does not apply).
  bool transfer = false;
  // kSnap: the snapshot to install (empty otherwise).
  Snapshot snapshot;

  bool operator==(const Message&) const = default;
};

// One line for logs and test failures: "kApp 1->2 t=3 i=4 lt=3 n=2 c=4".
std::string DescribeMessage(const Message& m);

}  // namespace dtx::raft
