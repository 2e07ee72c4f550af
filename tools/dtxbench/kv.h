// dtxbench kv, kv-failover and kv-load: dtxkv measured side by side with etcd 3.4 (issue 4,
// section 7).
//
//   kv           closed-loop writes of distinct keys with fixed-size values for --seconds against
//                each system given (dtxkv's PUT /v1/kv/<key>, etcd's JSON gateway POST
//                /v3/kv/put), once against the leader and once round-robin over every node (a
//                follower forwards to the leader); writes/s, p50, p99, errors and dtxkv/etcd;
//                sampled keys are read back afterwards.
//   kv-failover  (dtxkv or etcd) continuous writes round-robin over the nodes while the leader
//                is killed with SIGKILL; the failover time is from the kill to the first
//                acknowledgement of a write issued after the kill. The caller's --restart-cmd
//                brings the node back and the next round waits until the cluster is whole again.
//   kv-load      loads --keys keys into dtxkv through the leader, waits until every node
//                applied them and prints each node's current and peak RSS (VmRSS, VmHWM).
//
// The parsing helpers below are pure functions, tested without servers (kv_test.cc).
// Thread-safety: everything here is called from main's thread; RunKv starts and joins its own
// client threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace CLI {
class App;
}

namespace dtx::bench {

enum class KvMode { kBench, kFailover, kLoad };

// The command-line options of the three subcommands, as given (lists still comma-separated).
struct KvOptions {
  std::string dtxkv;  // base URLs of the dtxkv nodes, "http://127.0.0.1:7001,http://..."
  std::string etcd;   // client URLs of the etcd members (kv, kv-failover)
  std::string pids;   // kv-failover, kv-load: pids of the nodes, in the order of the URLs
  int clients = 16;   // requests in flight
  int threads = 2;    // client io threads
  double seconds = 10;
  double warmup_seconds = 1;
  int value_bytes = 256;
  std::string targets = "leader,all";  // kv: which runs per system
  int64_t timeout_ms = 10'000;         // per request
  // kv-failover
  int rounds = 5;
  std::string restart_cmd;  // "{id}" is replaced by the killed node's id
  double max_failover_seconds = 30;
  double settle_seconds = 60;  // bound on waiting for a whole cluster (and on --restart-cmd)
  // kv-load
  uint64_t keys = 1'000'000;
};

// The validated form of KvOptions.
struct KvPlan {
  KvMode mode = KvMode::kBench;
  std::vector<std::string> dtxkv_urls;  // normalized: "http://host:port", no trailing slash
  std::vector<std::string> etcd_urls;
  std::vector<int> pids;  // empty unless given
  bool leader = true;     // kv: run against the leader
  bool all = true;        // kv: run round-robin over all nodes
};

struct KvCommands {
  CLI::App* bench = nullptr;
  CLI::App* failover = nullptr;
  CLI::App* load = nullptr;
};

// Adds the subcommands kv, kv-failover and kv-load to `app`; parsing fills `o`.
// REQUIRES: `o` outlives the parse.
KvCommands AddKvCommands(CLI::App& app, KvOptions& o);

// Checks every option of `mode` and returns the plan. Errors (kInvalidArgument) name the flag:
// no system given, malformed or duplicate URLs, --pids not matching --dtxkv, counts or
// durations out of range, kv-failover with several rounds but no --restart-cmd.
Result<KvPlan> ValidateKvOptions(KvMode mode, const KvOptions& o);

// Runs the plan, printing the report to stdout and problems to stderr. Returns the exit code:
// 0, or 1 when a measurement could not be taken (no leader, no write acknowledged, a restart
// failed, ...). `command_line` is printed at the end.
int RunKv(const KvPlan& plan, const KvOptions& o, const std::string& command_line);

// ---- helpers, exposed for the tests ----

// Splits a comma-separated list of base URLs. Each must be an absolute http URL without a path
// (a single trailing "/" is accepted and dropped), query or fragment; duplicates are refused.
// Returns them as "http://host:port". `flag` names the option in errors. An empty list is an
// error.
Result<std::vector<std::string>> ParseBaseUrls(std::string_view list, std::string_view flag);

// Splits a comma-separated list of positive decimal process ids.
Result<std::vector<int>> ParsePids(std::string_view list);

struct KvMember {
  uint64_t id = 0;
  std::string http;
};

// GET /v1/status of a dtxkv node.
struct KvNodeStatus {
  uint64_t id = 0;
  std::string role;  // "leader", "follower", ...
  uint64_t term = 0;
  uint64_t leader = 0;  // 0: none known (the field may also be null or absent)
  uint64_t commit = 0;
  uint64_t applied = 0;
  std::vector<KvMember> members;
};

// Parses a dtxkv status body. Errors (kInvalidArgument): not JSON, not an object, id missing or
// not a positive integer, role missing or not a string, a number field of the wrong type,
// members not an array of {id, http}.
Result<KvNodeStatus> ParseKvStatus(std::string_view body);

// POST /v3/maintenance/status of an etcd 3.4 member (uint64 fields arrive as JSON strings).
struct EtcdStatus {
  uint64_t member_id = 0;
  uint64_t leader = 0;  // 0: no leader
  uint64_t raft_term = 0;
};

// Parses an etcd status body; errors (kInvalidArgument) as for ParseKvStatus.
Result<EtcdStatus> ParseEtcdStatus(std::string_view body);

struct LatencySummary {
  uint64_t count = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// The 50th and 99th percentile (as PercentileMs in load.h) and the maximum of `latencies_us`.
// All zero when empty.
LatencySummary Summarize(std::vector<uint32_t> latencies_us);

// a / b, or nothing when b is not positive.
std::optional<double> Ratio(double a, double b);

// Replaces every "{id}" in `command` by `id`; without a placeholder, appends " <id>".
std::string SubstituteId(std::string_view command, uint64_t id);

// argv joined with spaces, each argument that is empty or holds anything but
// [A-Za-z0-9_./:,=@%+-] single-quoted for a POSIX shell, so the printed line can be pasted back.
std::string CommandLine(int argc, const char* const* argv);

// Finds the pid a restart command printed for node `id`: a line "<word> <id> <url> pid <pid>"
// (the format of scripts/kv-cluster.sh and scripts/etcd-cluster.sh). kNotFound when no line
// matches.
Result<int> FindPidInOutput(std::string_view output, uint64_t id);

}  // namespace dtx::bench
