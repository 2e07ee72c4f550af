#include <utility>

#include "dtxbench/kv.h"

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace dtx::bench {
namespace {

KvOptions Bench() {
  KvOptions o;
  o.dtxkv = "http://127.0.0.1:7001,http://127.0.0.1:7002/";
  o.etcd = "http://127.0.0.1:2379";
  return o;
}

KvOptions Failover() {
  KvOptions o;
  o.dtxkv = "http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003";
  o.pids = "100,200,300";
  o.restart_cmd = "scripts/kv-cluster.sh restart /tmp/d {id}";
  return o;
}

// The message of a failed validation, "" when it passed.
std::string Error(KvMode mode, const KvOptions& o) {
  auto p = ValidateKvOptions(mode, o);
  return p.ok() ? "" : p.status().message();
}

TEST(KvOptionsTest, AcceptsTheDocumentedCommandLines) {
  auto p = ValidateKvOptions(KvMode::kBench, Bench());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->dtxkv_urls,
            (std::vector<std::string>{"http://127.0.0.1:7001", "http://127.0.0.1:7002"}));
  EXPECT_EQ(p->etcd_urls, std::vector<std::string>{"http://127.0.0.1:2379"});
  EXPECT_TRUE(p->leader);
  EXPECT_TRUE(p->all);

  auto f = ValidateKvOptions(KvMode::kFailover, Failover());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->pids, (std::vector<int>{100, 200, 300}));

  KvOptions load = Failover();
  load.restart_cmd.clear();
  EXPECT_EQ(Error(KvMode::kLoad, load), "");
}

TEST(KvOptionsTest, EitherSystemMayBeOmittedButNotBoth) {
  KvOptions o = Bench();
  o.etcd.clear();
  EXPECT_EQ(Error(KvMode::kBench, o), "");
  o = Bench();
  o.dtxkv.clear();
  EXPECT_EQ(Error(KvMode::kBench, o), "");
  o.etcd.clear();
  EXPECT_NE(Error(KvMode::kBench, o).find("--dtxkv"), std::string::npos);
}

TEST(KvOptionsTest, RejectsOutOfRangeNumbersNamingTheFlag) {
  struct Case {
    KvMode mode;
    void (*change)(KvOptions&);
    std::string flag;
  };
  const std::vector<Case> cases = {
      {KvMode::kBench, [](KvOptions& o) { o.clients = 0; }, "--clients"},
      {KvMode::kBench, [](KvOptions& o) { o.clients = -3; }, "--clients"},
      {KvMode::kBench, [](KvOptions& o) { o.threads = 0; }, "--threads"},
      {KvMode::kBench, [](KvOptions& o) { o.seconds = 0; }, "--seconds"},
      {KvMode::kBench, [](KvOptions& o) { o.seconds = -1; }, "--seconds"},
      {KvMode::kBench, [](KvOptions& o) { o.warmup_seconds = -1; }, "--warmup-seconds"},
      {KvMode::kBench, [](KvOptions& o) { o.value_bytes = 0; }, "--value-bytes"},
      {KvMode::kBench, [](KvOptions& o) { o.value_bytes = 2 << 20; }, "--value-bytes"},
      {KvMode::kBench, [](KvOptions& o) { o.timeout_ms = 0; }, "--timeout-ms"},
      {KvMode::kBench, [](KvOptions& o) { o.targets = "leader,most"; }, "--targets"},
      {KvMode::kBench, [](KvOptions& o) { o.targets = ""; }, "--targets"},
      {KvMode::kFailover, [](KvOptions& o) { o.rounds = 0; }, "--rounds"},
      {KvMode::kFailover, [](KvOptions& o) { o.max_failover_seconds = 0; },
       "--max-failover-seconds"},
      {KvMode::kFailover, [](KvOptions& o) { o.settle_seconds = 0; }, "--settle-seconds"},
      {KvMode::kLoad, [](KvOptions& o) { o.keys = 0; }, "--keys"},
  };
  for (const Case& c : cases) {
    KvOptions o = c.mode == KvMode::kBench ? Bench() : Failover();
    c.change(o);
    const std::string error = Error(c.mode, o);
    EXPECT_NE(error.find(c.flag), std::string::npos) << c.flag << ": '" << error << "'";
  }
}

TEST(KvOptionsTest, PidsMustMatchTheNodes) {
  KvOptions o = Failover();
  o.pids = "100,200";
  EXPECT_NE(Error(KvMode::kFailover, o).find("2 pids for 3"), std::string::npos);
  o.pids = "";
  EXPECT_NE(Error(KvMode::kLoad, o).find("--pids"), std::string::npos);
  o.pids = "100,abc,300";
  EXPECT_NE(Error(KvMode::kLoad, o).find("'abc' is not a process id"), std::string::npos);
  o.pids = "100,0,300";
  EXPECT_NE(Error(KvMode::kLoad, o).find("not positive"), std::string::npos);
  o = Failover();
  o.dtxkv.clear();
  EXPECT_NE(Error(KvMode::kFailover, o).find("--dtxkv"), std::string::npos);
}

TEST(KvOptionsTest, SeveralFailoverRoundsNeedARestartCommand) {
  KvOptions o = Failover();
  o.restart_cmd.clear();
  o.rounds = 3;
  EXPECT_NE(Error(KvMode::kFailover, o).find("--restart-cmd"), std::string::npos);
  o.rounds = 1;
  EXPECT_EQ(Error(KvMode::kFailover, o), "");
}

TEST(KvOptionsTest, FailoverTakesOneSystemAndLoadOnlyDtxkv) {
  KvOptions o = Failover();
  o.etcd = "http://127.0.0.1:2379,http://127.0.0.1:2380,http://127.0.0.1:2381";
  EXPECT_NE(Error(KvMode::kFailover, o).find("not both"), std::string::npos);
  EXPECT_NE(Error(KvMode::kLoad, o).find("--etcd does not apply"), std::string::npos);
  o.dtxkv.clear();
  auto etcd = ValidateKvOptions(KvMode::kFailover, o);
  ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
  EXPECT_TRUE(etcd->dtxkv_urls.empty());
  EXPECT_EQ(etcd->etcd_urls.size(), 3u);
  o.pids = "1,2";
  EXPECT_NE(Error(KvMode::kFailover, o).find("2 pids for 3 --etcd URLs"), std::string::npos);
}

TEST(ParseBaseUrlsTest, NormalizesAndRejectsBadUrls) {
  auto ok = ParseBaseUrls("http://localhost/,http://127.0.0.1:1234", "--x");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, (std::vector<std::string>{"http://localhost:80", "http://127.0.0.1:1234"}));
  for (const char* bad :
       {"", "http://a:1,", ",http://a:1", "https://a:1", "ftp://a", "a:1", "http://a:99999",
        "http://a:1/v1/kv", "http://a:1?x=1", "http://a:1,http://a:1", "http:// a:1"}) {
    auto r = ParseBaseUrls(bad, "--etcd");
    EXPECT_FALSE(r.ok()) << "'" << bad << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().rfind("--etcd", 0), 0u) << r.status().message();
    }
  }
}

TEST(ParseKvStatusTest, ReadsTheDocumentedFields) {
  auto s = ParseKvStatus(
      R"({"id":2,"role":"follower","term":7,"leader":1,"commit":120,"applied":118,)"
      R"("members":[{"id":1,"http":"http://127.0.0.1:7001"},{"id":2,"http":"http://127.0.0.1:7002"}]})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->id, 2u);
  EXPECT_EQ(s->role, "follower");
  EXPECT_EQ(s->term, 7u);
  EXPECT_EQ(s->leader, 1u);
  EXPECT_EQ(s->commit, 120u);
  EXPECT_EQ(s->applied, 118u);
  ASSERT_EQ(s->members.size(), 2u);
  EXPECT_EQ(s->members[1].id, 2u);
  EXPECT_EQ(s->members[1].http, "http://127.0.0.1:7002");
}

TEST(ParseKvStatusTest, NoLeaderIsZero) {
  auto s = ParseKvStatus(R"({"id":3,"role":"candidate","term":9,"leader":null})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->leader, 0u);
  EXPECT_TRUE(s->members.empty());
  auto absent = ParseKvStatus(R"({"id":3,"role":"follower"})");
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(absent->leader, 0u);
}

TEST(ParseKvStatusTest, RejectsMalformedBodies) {
  for (const char* bad : {
           "",
           "not json",
           "[1,2]",
           R"({"role":"leader"})",
           R"({"id":0,"role":"leader"})",
           R"({"id":-1,"role":"leader"})",
           R"({"id":"x","role":"leader"})",
           R"({"id":1})",
           R"({"id":1,"role":5})",
           R"({"id":1,"role":"leader","term":-2})",
           R"({"id":1,"role":"leader","commit":1.5})",
           R"({"id":1,"role":"leader","members":{}})",
           R"({"id":1,"role":"leader","members":[{"id":2}]})",
           R"({"id":1,"role":"leader","members":[3]})",
       }) {
    auto s = ParseKvStatus(bad);
    EXPECT_FALSE(s.ok()) << bad;
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(ParseEtcdStatusTest, ReadsUint64Strings) {
  // A real etcd 3.4.23 answer to POST /v3/maintenance/status.
  auto s = ParseEtcdStatus(
      R"({"header":{"cluster_id":"12879890729031898877","member_id":"12261742684912561049",)"
      R"("revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480",)"
      R"("leader":"12261742684912561049","raftIndex":"11","raftTerm":"2"})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->member_id, 12261742684912561049ull);
  EXPECT_EQ(s->leader, 12261742684912561049ull);
  EXPECT_EQ(s->raft_term, 2u);
  for (const char* bad : {"{}", R"({"header":{}})", R"({"header":{"member_id":"12x"}})",
                          R"({"header":{"member_id":"99999999999999999999999"}})",
                          R"({"header":{"member_id":"1"},"leader":true})"}) {
    EXPECT_FALSE(ParseEtcdStatus(bad).ok()) << bad;
  }
}

TEST(SummarizeTest, PercentilesAndMaximum) {
  std::vector<uint32_t> us;
  for (uint32_t i = 100; i >= 1; --i) us.push_back(i * 1000);  // 1..100 ms, reversed
  const LatencySummary s = Summarize(us);
  EXPECT_EQ(s.count, 100u);
  EXPECT_DOUBLE_EQ(s.p50_ms, 51.0);
  EXPECT_DOUBLE_EQ(s.p99_ms, 100.0);
  EXPECT_DOUBLE_EQ(s.max_ms, 100.0);
  const LatencySummary one = Summarize({2500});
  EXPECT_DOUBLE_EQ(one.p50_ms, 2.5);
  EXPECT_DOUBLE_EQ(one.p99_ms, 2.5);
  EXPECT_DOUBLE_EQ(one.max_ms, 2.5);
  const LatencySummary none = Summarize({});
  EXPECT_EQ(none.count, 0u);
  EXPECT_DOUBLE_EQ(none.max_ms, 0.0);
}

TEST(RatioTest, UndefinedWithoutADenominator) {
  EXPECT_DOUBLE_EQ(*Ratio(6800, 3400), 2.0);
  EXPECT_FALSE(Ratio(100, 0).has_value());
  EXPECT_FALSE(Ratio(100, -1).has_value());
}

TEST(SubstituteIdTest, ReplacesEveryPlaceholderOrAppends) {
  EXPECT_EQ(SubstituteId("kv-cluster.sh restart /d {id}", 2), "kv-cluster.sh restart /d 2");
  EXPECT_EQ(SubstituteId("x {id} y {id}", 13), "x 13 y 13");
  EXPECT_EQ(SubstituteId("kv-cluster.sh restart /d", 3), "kv-cluster.sh restart /d 3");
  EXPECT_EQ(SubstituteId("{i}d {id", 1), "{i}d {id 1");
}

TEST(CommandLineTest, QuotesWhatTheShellWouldSplit) {
  const char* argv[] = {
      "dtxbench", "kv-failover", "--restart-cmd", "sh x.sh restart {id}", "--pids", "1,2",
      "",         "it's"};
  EXPECT_EQ(CommandLine(8, argv),
            "dtxbench kv-failover --restart-cmd 'sh x.sh restart {id}' --pids 1,2 '' 'it'\\''s'");
  const char* url[] = {"--dtxkv", "http://127.0.0.1:7001,http://127.0.0.1:7002"};
  EXPECT_EQ(CommandLine(2, url), "--dtxkv http://127.0.0.1:7001,http://127.0.0.1:7002");
}

TEST(FindPidInOutputTest, PicksTheLineOfTheNode) {
  const std::string out =
      "waiting...\nnode 1 http://127.0.0.1:7001 pid 111\nnode 2 http://127.0.0.1:7002 pid 222\n";
  EXPECT_EQ(*FindPidInOutput(out, 2), 222);
  EXPECT_EQ(*FindPidInOutput("etcd 3 http://127.0.0.1:2 pid 9", 3), 9);
  EXPECT_EQ(FindPidInOutput(out, 3).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(FindPidInOutput("node 2 http://x pid abc", 2).ok());
  EXPECT_FALSE(FindPidInOutput("node 2 http://x port 5", 2).ok());
  EXPECT_FALSE(FindPidInOutput("", 2).ok());
}

TEST(KvCommandsTest, ParsesIntoTheOptions) {
  CLI::App app;
  KvOptions o;
  const KvCommands c = AddKvCommands(app, o);
  std::vector<std::string> args = {
      "dtxbench", "kv-failover", "--dtxkv", "http://a:1,http://b:2", "--pids",
      "5,6",      "--rounds",    "4",       "--restart-cmd",         "restart {id}"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(c.failover->parsed());
  EXPECT_FALSE(c.bench->parsed());
  EXPECT_EQ(o.rounds, 4);
  EXPECT_EQ(o.pids, "5,6");
  EXPECT_EQ(o.restart_cmd, "restart {id}");
  EXPECT_TRUE(ValidateKvOptions(KvMode::kFailover, o).ok());
}

}  // namespace
}  // namespace dtx::bench
