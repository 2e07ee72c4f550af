// dtxkv as three real processes on loopback: the HTTP API, forwarding, a linearizable history
// through kill -9 of leaders and partitions, and no acknowledged write lost across a restart
// of the whole cluster. DTX_KV_SEED replays a fault schedule.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check/history.h"
#include "check/linearizability.h"
#include "harness.h"
#include "process.h"

namespace dtx::itest {
namespace {

using Clock = std::chrono::steady_clock;

class KvCluster {
 public:
  KvCluster(Http& http, std::string dir) : http_(http), dir_(std::move(dir)) {}

  Status Start() {
    for (int i = 0; i < 3; ++i) {
      auto peer = PickFreePort();
      auto web = PickFreePort();
      if (!peer.ok()) return peer.status();
      if (!web.ok()) return web.status();
      peer_ports_.push_back(*peer);
      http_ports_.push_back(*web);
    }
    for (int id = 1; id <= 3; ++id) procs_.emplace_back();
    for (int id = 1; id <= 3; ++id) DTX_RETURN_IF_ERROR(StartNode(id));
    return Status::Ok();
  }

  Status StartNode(int id) {
    // A small snapshot threshold, so compaction and InstallSnapshot happen in every test.
    std::vector<std::string> argv = {DTXKV_BIN,
                                     "--id=" + std::to_string(id),
                                     "--data-dir=" + Dir(id),
                                     "--tick-ms=10",
                                     "--election-ticks=10",
                                     "--request-timeout-ms=2000",
                                     "--snapshot-min-bytes=4096",
                                     "--test-faults"};
    for (int m = 1; m <= 3; ++m) {
      argv.push_back("--member");
      argv.push_back(std::to_string(m) + ",127.0.0.1:" + std::to_string(peer_ports_[m - 1]) +
                     ",127.0.0.1:" + std::to_string(http_ports_[m - 1]));
    }
    auto p = Subprocess::Start({argv, dir_ + "/node" + std::to_string(id) + ".log", false});
    if (!p.ok()) return p.status();
    procs_[id - 1] = std::move(*p);
    return WaitUntilAnswers(http_, Url(id, "/v1/status"), *procs_[id - 1], 500);
  }

  void Kill9(int id) {
    if (procs_[id - 1]) procs_[id - 1]->Kill();
    procs_[id - 1].reset();
  }
  bool Up(int id) const { return procs_[id - 1] != nullptr; }

  std::string Url(int id, const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(http_ports_[id - 1]) + path;
  }
  std::string Dir(int id) const { return dir_ + "/node" + std::to_string(id); }

  json NodeStatus(int id) {
    HttpReply r = http_.Call("GET", Url(id, "/v1/status"), "", 1'000);
    return r.transport.ok() && r.status == 200 ? r.Json() : json();
  }

  // The leader every running node agrees on, or 0 if they do not agree within the bound.
  int Leader(int64_t within_ms = 10'000) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(within_ms);
    while (Clock::now() < deadline) {
      int agreed = -1;
      for (int id = 1; id <= 3 && agreed != 0; ++id) {
        if (!Up(id)) continue;
        json s = NodeStatus(id);
        int lead = s.is_object() ? s.value("leader", 0) : 0;
        agreed = (agreed == -1 || agreed == lead) ? lead : 0;
      }
      if (agreed > 0) return agreed;
      // Elections take a few hundred ms; the status calls pace this loop.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 0;
  }

  // Cuts node `id` off from the other two (both directions), or heals it.
  void Partition(int id, bool cut) {
    for (int other = 1; other <= 3; ++other) {
      if (other == id) continue;
      const std::string verb = cut ? "/v1/test/block?peer=" : "/v1/test/unblock?peer=";
      if (Up(id)) (void)http_.Call("POST", Url(id, verb + std::to_string(other)), "", 1'000);
      if (Up(other)) (void)http_.Call("POST", Url(other, verb + std::to_string(id)), "", 1'000);
    }
  }

  std::string LogTails() const {
    std::string out;
    for (int id = 1; id <= 3; ++id) {
      std::string log = ReadFile(dir_ + "/node" + std::to_string(id) + ".log");
      if (log.size() > 1500) log = log.substr(log.size() - 1500);
      out += "--- node" + std::to_string(id) + ".log\n" + log;
    }
    return out;
  }

 private:
  Http& http_;
  std::string dir_;
  std::vector<uint16_t> peer_ports_, http_ports_;
  std::vector<std::unique_ptr<Subprocess>> procs_;
};

class KvClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start().ok()) << cluster_.LogTails();
    ASSERT_NE(cluster_.Leader(), 0) << cluster_.LogTails();
  }
  void TearDown() override {
    if (HasFailure()) std::printf("%s\n", cluster_.LogTails().c_str());
  }

  TempDir dir_;
  Http http_{/*retry_if_unanswered=*/false};
  KvCluster cluster_{http_, dir_.path()};
};

TEST_F(KvClusterTest, ApiWorksOnEveryNodeAndRefusesBadInput) {
  const int leader = cluster_.Leader();
  const int follower = leader % 3 + 1;
  HttpReply r = http_.Call("PUT", cluster_.Url(follower, "/v1/kv/a%2Fb"), "v1");
  ASSERT_EQ(r.status, 200) << r.body << r.transport.ToString();
  EXPECT_GT(r.Json().value("index", 0), 0) << "a follower forwards writes to the leader";
  for (int id = 1; id <= 3; ++id) {
    r = http_.Call("GET", cluster_.Url(id, "/v1/kv/a%2Fb"));
    EXPECT_EQ(r.status, 200) << id;
    EXPECT_EQ(r.body, "v1") << "a linearizable read on node " << id << " sees the write";
  }
  r = http_.Call("POST", cluster_.Url(leader, "/v1/cas/a%2Fb"), R"({"expect":"v0","value":"v2"})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.Json().value("current", ""), "v1");
  r = http_.Call("POST", cluster_.Url(follower, "/v1/cas/a%2Fb"),
                 R"({"expect":"v1","value":"v2"})");
  EXPECT_EQ(r.status, 200) << r.body;
  r = http_.Call("POST", cluster_.Url(follower, "/v1/cas/new"), R"({"expect":null,"value":"x"})");
  EXPECT_EQ(r.status, 200) << r.body;
  r = http_.Call("DELETE", cluster_.Url(follower, "/v1/kv/a%2Fb"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.Json().value("deleted", false));
  r = http_.Call("GET", cluster_.Url(leader, "/v1/kv/a%2Fb"));
  EXPECT_EQ(r.status, 404) << r.body;
  r = http_.Call("GET", cluster_.Url(follower, "/v1/kv/new?stale=true"));
  EXPECT_TRUE(r.status == 200 || r.status == 404) << "a stale read answers locally";

  // Bad input: clear errors, nothing changed.
  EXPECT_EQ(http_.Call("PUT", cluster_.Url(leader, "/v1/kv/"), "v").status, 400);
  EXPECT_EQ(http_.Call("PUT", cluster_.Url(leader, "/v1/kv/" + std::string(2000, 'k')), "v").status,
            400);
  EXPECT_EQ(http_.Call("POST", cluster_.Url(leader, "/v1/cas/k"), "{not json").status, 400);
  EXPECT_EQ(http_.Call("POST", cluster_.Url(leader, "/v1/cas/k"), R"({"value":"v"})").status, 400)
      << "expect must be given (null for absent)";
  EXPECT_EQ(
      http_.Call("POST", cluster_.Url(leader, "/v1/cas/k"), R"({"expect":1,"value":"v"})").status,
      400);
  EXPECT_EQ(http_.Call("POST", cluster_.Url(leader, "/v1/kv/k"), "v").status, 405);
  EXPECT_EQ(http_.Call("GET", cluster_.Url(leader, "/v2/x")).status, 404);
  EXPECT_EQ(http_.Call("POST", cluster_.Url(leader, "/v1/test/block?peer=9"), "").status, 400);
  EXPECT_EQ(http_.Call("GET", cluster_.Url(leader, "/v1/kv/k")).status, 404);

  json st = cluster_.NodeStatus(leader);
  EXPECT_EQ(st.value("role", ""), "leader");
  EXPECT_EQ(st.value("id", 0), leader);
  EXPECT_EQ(st["members"].size(), 3u);
  EXPECT_GE(st.value("applied", 0), 4);
}

TEST_F(KvClusterTest, NoQuorumIsA503AndTheClusterRecovers) {
  const int leader = cluster_.Leader();
  const int a = leader % 3 + 1, b = a % 3 + 1;
  cluster_.Kill9(a);
  cluster_.Kill9(b);
  // The leader steps down after an election timeout without a quorum (check-quorum); writes
  // are then refused at once, or time out (outcome unknown) while it still believes it leads.
  HttpReply r = http_.Call("PUT", cluster_.Url(leader, "/v1/kv/k"), "v", 5'000);
  EXPECT_TRUE(r.status == 503 || r.status == 504) << r.status << " " << r.body;
  bool refused = false;
  for (int i = 0; i < 50 && !refused; ++i) {
    r = http_.Call("PUT", cluster_.Url(leader, "/v1/kv/k"), "v", 5'000);
    refused = r.status == 503;
  }
  EXPECT_TRUE(refused) << r.status << " " << r.body;
  EXPECT_NE(r.Json().value("message", ""), "");
  ASSERT_TRUE(cluster_.StartNode(a).ok());
  ASSERT_TRUE(cluster_.StartNode(b).ok());
  ASSERT_NE(cluster_.Leader(), 0);
  bool written = false;
  for (int i = 0; i < 50 && !written; ++i) {
    written = http_.Call("PUT", cluster_.Url(a, "/v1/kv/k"), "after").status == 200;
  }
  EXPECT_TRUE(written);
}

// Clients on random nodes while a nemesis kill -9s leaders (and restarts them) and partitions
// nodes; the recorded history must be linearizable.
TEST_F(KvClusterTest, HistoryIsLinearizableThroughLeaderKillsAndPartitions) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("DTX_KV_SEED")) seed = std::strtoull(s, nullptr, 10);
  SCOPED_TRACE("DTX_KV_SEED=" + std::to_string(seed));
  std::mutex mu;
  check::History history;
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};

  auto client = [&](uint64_t id) {
    std::mt19937_64 rng(seed * 31 + id);
    int n = 0;
    while (!stop && n < 3000) {
      const std::string key = "k" + std::to_string(rng() % 3);
      const int node = static_cast<int>(rng() % 3) + 1;
      const std::string value = std::to_string(id) + "-" + std::to_string(n++);
      const int kind = static_cast<int>(rng() % 3);
      check::Op op =
          kind == 0 ? check::Op::Read(key)
          : kind == 1
              ? check::Op::Write(key, value)
              : check::Op::Cas(key, std::to_string(rng() % 4) + "-" + std::to_string(rng() % 10),
                               value);
      if (kind == 2 && rng() % 4 == 0) op.expected.reset();
      {
        std::lock_guard lock(mu);
        ASSERT_TRUE(history.Invoke(id, op).ok());
      }
      HttpReply r;
      if (kind == 0) {
        r = http_.Call("GET", cluster_.Url(node, "/v1/kv/" + key), "", 3'000);
      } else if (kind == 1) {
        r = http_.Call("PUT", cluster_.Url(node, "/v1/kv/" + key), value, 3'000);
      } else {
        json body{{"value", value}, {"expect", op.expected ? json(*op.expected) : json(nullptr)}};
        r = http_.Call("POST", cluster_.Url(node, "/v1/cas/" + key), body.dump(), 3'000);
      }
      std::lock_guard lock(mu);
      Status recorded;
      if (!r.transport.ok()) {
        // A request that never reached a node did nothing; anything else may have.
        recorded = r.request_sent || r.transport.code() == StatusCode::kDeadlineExceeded
                       ? history.Info(id)
                       : history.Fail(id);
      } else if (kind == 0 && (r.status == 200 || r.status == 404)) {
        recorded = history.OkRead(id, r.status == 200 ? std::optional(r.body) : std::nullopt);
      } else if (kind == 1 && r.status == 200) {
        recorded = history.OkWrite(id);
      } else if (kind == 2 && (r.status == 200 || r.status == 409)) {
        recorded = history.OkCas(id, r.status == 200);
      } else if (r.status == 503 || r.status == 400) {
        recorded = history.Fail(id);
      } else {
        recorded = history.Info(id);
      }
      ASSERT_TRUE(recorded.ok()) << recorded.ToString();
      if (r.transport.ok() && r.status == 200) ++acked;
    }
  };
  std::vector<std::thread> clients;
  for (uint64_t id = 1; id <= 4; ++id) clients.emplace_back(client, id);

  std::mt19937_64 nemesis(seed);
  int kills = 0, partitions = 0;
  const auto end = Clock::now() + std::chrono::seconds(12);
  while (Clock::now() < end && kills + partitions < 8) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + nemesis() % 600));
    const int leader = cluster_.Leader(3'000);
    if (nemesis() % 2 == 0 && leader != 0) {
      cluster_.Kill9(leader);
      ++kills;
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + nemesis() % 700));
      ASSERT_TRUE(cluster_.StartNode(leader).ok());
    } else {
      const int victim = static_cast<int>(nemesis() % 3) + 1;
      cluster_.Partition(victim, true);
      ++partitions;
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + nemesis() % 700));
      cluster_.Partition(victim, false);
    }
  }
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_NE(cluster_.Leader(), 0);

  std::printf("seed %llu: %zu events, %d acknowledged, %d leader kills, %d partitions\n",
              static_cast<unsigned long long>(seed), history.events().size(), acked.load(), kills,
              partitions);
  EXPECT_GT(acked.load(), 20) << "the cluster made progress";
  check::CheckResult result = check::CheckLinearizable(history);
  if (!result.ok()) {
    auto text = check::FormatHistory(history);
    ADD_FAILURE() << result.explanation << "\n" << (text.ok() ? *text : text.status().ToString());
  }
}

// The leader compacts its log while a follower is cut off; the follower then needs a snapshot:
// an image of the leader's state (built off its io thread from a pinned view) that the follower
// restores into its own database, durably - it keeps the data through a kill -9 right after.
TEST_F(KvClusterTest, ALaggingFollowerCatchesUpThroughASnapshotThatSurvivesItsCrash) {
  const int leader = cluster_.Leader();
  const int lagging = leader % 3 + 1;
  cluster_.Partition(lagging, true);
  const std::string value(100, 'x');
  std::vector<uint64_t> put_index;
  for (int i = 0; i < 300; ++i) {
    HttpReply r = http_.Call("PUT", cluster_.Url(leader, "/v1/kv/s" + std::to_string(i)),
                             value + std::to_string(i), 3'000);
    ASSERT_EQ(r.status, 200) << i << " " << r.body;
    put_index.push_back(r.Json().value("index", uint64_t{0}));
  }
  const uint64_t target = cluster_.NodeStatus(leader).value("applied", uint64_t{0});
  ASSERT_GT(cluster_.NodeStatus(leader).value("snapshot_index", uint64_t{0}),
            cluster_.NodeStatus(lagging).value("applied", uint64_t{0}))
      << "the leader compacted past what the follower has";
  cluster_.Partition(lagging, false);

  json st;
  for (int i = 0; i < 500; ++i) {
    st = cluster_.NodeStatus(lagging);
    if (st.value("applied", uint64_t{0}) >= target) break;
    // Catching up takes a heartbeat, an image build and a restore; the calls pace this loop.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(st.value("applied", uint64_t{0}), target) << st.dump();
  EXPECT_GE(st.value("snapshots_installed", 0), 1) << st.dump();
  EXPECT_EQ(st.value("keys", 0), 300) << st.dump();

  const uint64_t snapshot_index = st.value("snapshot_index", uint64_t{0});
  cluster_.Kill9(lagging);
  ASSERT_TRUE(cluster_.StartNode(lagging).ok());
  // Cut off from both peers, the restarted node shows only what it stored itself: the state up
  // to its applied index, which must reach at least its snapshot. Entries applied after the
  // snapshot wait for a leader to confirm the commit index again.
  cluster_.Partition(lagging, true);
  st = cluster_.NodeStatus(lagging);
  const uint64_t applied = st.value("applied", uint64_t{0});
  EXPECT_GE(applied, snapshot_index) << st.dump();
  for (int i = 0; i < 300; ++i) {
    HttpReply r =
        http_.Call("GET", cluster_.Url(lagging, "/v1/kv/s" + std::to_string(i) + "?stale=true"));
    if (put_index[i] <= applied) {
      EXPECT_EQ(r.status, 200) << i << " " << r.body;
      EXPECT_EQ(r.body, value + std::to_string(i)) << i;
    } else {
      EXPECT_EQ(r.status, 404) << i << ": written at " << put_index[i] << ", after " << applied;
    }
  }
}

TEST_F(KvClusterTest, FullClusterRestartLosesNoAcknowledgedWrite) {
  std::map<std::string, std::string> acknowledged;
  std::mutex mu;
  std::atomic<bool> crashed{false};
  std::atomic<int> in_flight_at_crash{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 5'000 && !crashed; ++i) {
        const std::string key = "w" + std::to_string(w) + "-" + std::to_string(i);
        HttpReply r = http_.Call("PUT", cluster_.Url(w % 3 + 1, "/v1/kv/" + key), "v" + key, 3'000);
        if (r.transport.ok() && r.status == 200) {
          std::lock_guard lock(mu);
          acknowledged[key] = "v" + key;
        } else if (crashed) {
          ++in_flight_at_crash;
        }
      }
    });
  }
  // The crash hits while writes are in flight: wait for some acknowledgements first.
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(mu);
      if (acknowledged.size() >= 200) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  crashed = true;
  for (int id = 1; id <= 3; ++id) cluster_.Kill9(id);
  for (auto& t : writers) t.join();
  ASSERT_FALSE(acknowledged.empty()) << "nothing was acknowledged before the crash";
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(cluster_.StartNode(id).ok());
  ASSERT_NE(cluster_.Leader(), 0);
  EXPECT_GT(cluster_.NodeStatus(1).value("snapshot_index", 0), 0)
      << "the restart went through a snapshot";
  size_t missing = 0;
  for (const auto& [key, value] : acknowledged) {
    HttpReply r = http_.Call("GET", cluster_.Url(1, "/v1/kv/" + key), "", 5'000);
    if (r.status != 200 || r.body != value) {
      ++missing;
      ADD_FAILURE() << key << ": " << r.status << " " << r.body;
      if (missing > 5) break;
    }
  }
  std::printf("%zu acknowledged writes (%d cut off by the crash), all present after a restart\n",
              acknowledged.size(), in_flight_at_crash.load());
}

}  // namespace
}  // namespace dtx::itest
