// dtxkv: one node of a replicated key-value cluster. See src/kv/node.h for the HTTP API and
// scripts/kv-cluster.sh for a local 3-node cluster.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "kv/node.h"

namespace {

// SIGINT/SIGTERM: a thread waits for them and stops the node cleanly.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dtxkv: one node of a replicated, linearizable key-value store (Raft)"};
  dtx::kv::NodeOptions o;
  std::vector<std::string> members;
  app.add_option("--id", o.id, "This node's member id")->required();
  app.add_option("--member", members,
                 "A member as ID,PEER_HOST:PORT,HTTP_HOST:PORT (repeat for every member, this "
                 "node included)")
      ->required();
  app.add_option("--data-dir", o.data_dir, "Directory for this node's Raft log")->required();
  app.add_option("--tick-ms", o.tick_ms, "Raft tick")->capture_default_str();
  app.add_option("--election-ticks", o.election_ticks,
                 "Election timeout in ticks (randomized "
                 "up to twice this)")
      ->capture_default_str();
  app.add_option("--heartbeat-ticks", o.heartbeat_ticks, "Heartbeat interval in ticks")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", o.request_timeout_ms,
                 "A write not applied by then is answered 504 (outcome unknown)")
      ->capture_default_str();
  app.add_option("--snapshot-min-bytes", o.snapshot_min_bytes,
                 "Persist the state and compact the log once the entries applied since the last "
                 "compaction hold more than this many bytes (bounds the log kept in memory)")
      ->capture_default_str();
  app.add_flag("--test-faults", o.test_faults,
               "Enable POST /v1/test/block|unblock?peer=ID (partition tests only)");
  CLI11_PARSE(app, argc, argv);

  for (const std::string& spec : members) {
    auto m = dtx::kv::ParseMember(spec);
    if (!m.ok()) {
      std::fprintf(stderr, "dtxkv: --member: %s\n", m.status().message().c_str());
      return 2;
    }
    o.members.push_back(*m);
  }
  if (dtx::Status s = o.Validate(); !s.ok()) {
    std::fprintf(stderr, "dtxkv: %s\n", s.message().c_str());
    return 2;
  }

  sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto node = dtx::kv::Node::Start(o);
  if (!node.ok()) {
    std::fprintf(stderr, "dtxkv: cannot start: %s\n", node.status().ToString().c_str());
    return 1;
  }
  std::string http_host;
  for (const auto& m : o.members) {
    if (m.id == o.id) http_host = m.http_host;
  }
  std::printf("dtxkv node %llu: http://%s:%u peer port %u data %s\n",
              static_cast<unsigned long long>(o.id), http_host.c_str(), (*node)->http_port(),
              (*node)->peer_port(), o.data_dir.c_str());
  std::fflush(stdout);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    (*node)->Stop();
  });
  waiter.detach();
  dtx::Status end = (*node)->Wait();
  if (!end.ok()) {
    std::fprintf(stderr, "dtxkv: stopped: %s\n", end.ToString().c_str());
    return 1;
  }
  return 0;
}
