#include <utility>

#include "dtxbench/kv.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "coord/txn_codec.h"
#include "dtxbench/load.h"
#include "dtxbench/util.h"
#include "runtime/http.h"

extern char** environ;

namespace dtx::bench {
namespace {

using Steady = std::chrono::steady_clock;
using nlohmann::json;

Steady::time_point After(double seconds) {
  return Steady::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

double SecondsSince(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

std::vector<std::string_view> SplitComma(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string_view::npos) j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// A uint64 field that may arrive as a JSON number or, as etcd's gateway renders uint64, a string
// of digits. Absent or null gives `absent`.
Result<uint64_t> U64Field(const json& obj, const char* name, std::optional<uint64_t> absent) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    if (absent) return *absent;
    return InvalidArgument(std::string("status: field '") + name + "' is missing");
  }
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer() && it->get<int64_t>() >= 0) {
    return static_cast<uint64_t>(it->get<int64_t>());
  }
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (!s.empty() && s.size() <= 20 &&
        std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      errno = 0;
      const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
      if (errno == 0) return static_cast<uint64_t>(v);
    }
  }
  return InvalidArgument(std::string("status: field '") + name +
                         "' is not a non-negative integer: " + it->dump());
}

Result<json> ParseObject(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("status: the body is not JSON");
  if (!j.is_object()) return InvalidArgument("status: the body is not a JSON object");
  return j;
}

// ---- processes ----

// Runs `command` with /bin/sh under coreutils' timeout and returns its stdout. The output goes
// to a file, not a pipe, so that a server the command leaves running cannot hold our read open.
Result<std::string> RunShell(const std::string& command, double timeout_seconds) {
  char path[] = "/tmp/dtxbench-cmd-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return Internal(std::string("mkstemp: ") + std::strerror(errno));
  ::unlink(path);
  std::vector<std::string> args = {"timeout",
                                   "--kill-after=5",
                                   std::to_string(static_cast<int>(timeout_seconds + 0.999)),
                                   "/bin/sh",
                                   "-c",
                                   command};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fd, 1);
  pid_t pid;
  const int rc = posix_spawnp(&pid, "timeout", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ::close(fd);
    return Internal(std::string("cannot run timeout(1): ") + std::strerror(rc));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string out;
  char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return Unavailable("'" + command + "' failed (exit " + std::to_string(code) +
                       (code == 124 ? ", timed out" : "") + "); its output: " + out);
  }
  return out;
}

// ---- HTTP ----

std::string Describe(const runtime::HttpCallResult& r) {
  if (!r.status.ok()) return r.status.ToString();
  return "HTTP " + std::to_string(r.http_status) + ": " + r.body.substr(0, 200);
}

// ---- the two systems ----

enum class Kind { kDtxkv, kEtcd };

struct NodeView {
  uint64_t id = 0;
  uint64_t leader = 0;
  uint64_t term = 0;
  bool is_leader = false;
  uint64_t commit = 0;
  uint64_t applied = 0;
};

struct System {
  Kind kind;
  std::string name;
  std::vector<std::string> urls;

  runtime::HttpCallSpec Put(const std::string& base, const std::string& key, std::string_view value,
                            int64_t timeout_ms) const {
    runtime::HttpCallSpec s;
    s.timeout_ms = timeout_ms;
    if (kind == Kind::kDtxkv) {
      s.method = "PUT";
      s.url = base + "/v1/kv/" + key;
      s.headers["Content-Type"] = "application/octet-stream";
      s.body = std::string(value);
    } else {
      s.method = "POST";
      s.url = base + "/v3/kv/put";
      s.body = "{\"key\":\"" + coord::Base64Encode(key) + "\",\"value\":\"" +
               coord::Base64Encode(value) + "\"}";
    }
    return s;
  }

  // The stored value of `key` read through `base` (linearizable on both systems), or nothing
  // when the key is missing or the read failed.
  std::optional<std::string> Read(BlockingHttp& http, const std::string& base,
                                  const std::string& key, int64_t timeout_ms) const {
    if (kind == Kind::kDtxkv) {
      auto r = http.Call("GET", base + "/v1/kv/" + key, "", timeout_ms);
      if (!r.status.ok() || r.http_status != 200) return std::nullopt;
      return r.body;
    }
    auto r = http.Call("POST", base + "/v3/kv/range",
                       "{\"key\":\"" + coord::Base64Encode(key) + "\"}", timeout_ms);
    if (!r.status.ok() || r.http_status != 200) return std::nullopt;
    const json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("kvs") || !j["kvs"].is_array() || j["kvs"].empty()) {
      return std::nullopt;
    }
    const json& v = j["kvs"][0];
    if (!v.is_object() || !v.contains("value") || !v["value"].is_string()) return std::nullopt;
    // Compared in base64 by the caller's encoding of the expected value.
    return v["value"].get<std::string>();
  }

  // Whether `stored` (as Read returns it) is `value`.
  bool Matches(const std::optional<std::string>& stored, std::string_view value) const {
    if (!stored) return false;
    return kind == Kind::kDtxkv ? *stored == value : *stored == coord::Base64Encode(value);
  }

  Result<NodeView> Probe(BlockingHttp& http, const std::string& base) const {
    if (kind == Kind::kDtxkv) {
      auto r = http.Call("GET", base + "/v1/status");
      if (!r.status.ok() || r.http_status != 200) return Unavailable(base + ": " + Describe(r));
      auto st = ParseKvStatus(r.body);
      if (!st.ok()) return Status(st.status().code(), base + ": " + st.status().message());
      return NodeView{st->id, st->leader, st->term, st->role == "leader", st->commit, st->applied};
    }
    auto r = http.Call("POST", base + "/v3/maintenance/status", "{}");
    if (!r.status.ok() || r.http_status != 200) return Unavailable(base + ": " + Describe(r));
    auto st = ParseEtcdStatus(r.body);
    if (!st.ok()) return Status(st.status().code(), base + ": " + st.status().message());
    return NodeView{st->member_id, st->leader, st->raft_term, st->member_id == st->leader, 0, 0};
  }
};

struct Leader {
  size_t index = 0;  // into System::urls
  uint64_t id = 0;
  uint64_t term = 0;
};

// Polls every node until one of the given URLs is leader and, with `whole`, every node answers
// and all agree on that leader and term. Bounded by `seconds`.
Result<Leader> WaitForLeader(const System& sys, BlockingHttp& http, bool whole, double seconds) {
  const auto deadline = After(seconds);
  std::string last_problem = "no node answered";
  for (int attempt = 0; attempt < 100'000; ++attempt) {
    std::optional<Leader> found;
    bool agree = true;
    std::optional<uint64_t> seen_leader, seen_term;
    for (size_t i = 0; i < sys.urls.size(); ++i) {
      auto v = sys.Probe(http, sys.urls[i]);
      if (!v.ok()) {
        agree = false;
        last_problem = v.status().message();
        continue;
      }
      if (v->is_leader && (!found || v->term > found->term)) found = Leader{i, v->id, v->term};
      if (seen_leader && (*seen_leader != v->leader || *seen_term != v->term)) agree = false;
      seen_leader = v->leader;
      seen_term = v->term;
      if (v->leader == 0) {
        agree = false;
        last_problem = sys.urls[i] + " knows no leader";
      }
    }
    if (found && (!whole || (agree && *seen_leader == found->id))) return *found;
    if (found && whole) last_problem = "the nodes do not agree on the leader yet";
    if (Steady::now() >= deadline) break;
    // Nothing to wait on but the servers' own progress.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Unavailable(sys.name + ": no " + (whole ? "whole cluster with a " : "") +
                     "leader within " + std::to_string(static_cast<int>(seconds)) + " s (" +
                     last_problem + ")");
}

// Distinct keys, and values cut from a random alphanumeric pool so that they do not compress to
// nothing.
class Payload {
 public:
  explicit Payload(int value_bytes) : bytes_(static_cast<size_t>(value_bytes)) {
    std::random_device rd;
    const uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    std::mt19937_64 rng(seed);
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    pool_.resize(bytes_ + kSpread);
    for (char& c : pool_) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
    char id[32];
    std::snprintf(id, sizeof id, "kvb-%08llx-", static_cast<unsigned long long>(seed >> 32));
    prefix_ = id;
  }

  std::string Key(uint64_t ticket) const { return prefix_ + std::to_string(ticket); }
  std::string_view Value(uint64_t ticket) const {
    return std::string_view(pool_).substr(ticket % kSpread, bytes_);
  }
  // A fresh key space for the next run.
  void NextRun() { prefix_ += "r"; }

 private:
  static constexpr size_t kSpread = 4093;
  size_t bytes_;
  std::string pool_;
  std::string prefix_;
};

LoadSpec WriteSpec(const System& sys, std::vector<std::string> urls, const Payload& payload,
                   const KvOptions& o) {
  LoadSpec spec;
  spec.threads = o.threads;
  spec.concurrency = o.clients;
  const int64_t timeout = o.timeout_ms;
  spec.make = [&sys, urls = std::move(urls), &payload, timeout](uint64_t ticket) {
    return sys.Put(urls[ticket % urls.size()], payload.Key(ticket), payload.Value(ticket), timeout);
  };
  return spec;
}

// Reads up to `samples` keys spread over tickets [0, issued) back through `base`; returns how
// many were wrong or missing. A write that failed may legitimately be missing, so the caller
// only treats a mismatch as a fault when every write succeeded.
int ReadBack(const System& sys, BlockingHttp& http, const std::string& base, const Payload& payload,
             uint64_t issued, int samples, int64_t timeout_ms, int* checked) {
  int wrong = 0;
  *checked = 0;
  const uint64_t n = std::min<uint64_t>(issued, static_cast<uint64_t>(samples));
  for (uint64_t i = 0; i < n; ++i) {
    // "+ i" keeps the sample from aliasing with the round-robin over the nodes.
    const uint64_t ticket = std::min(issued - 1, i * (issued / n) + i);
    ++*checked;
    if (!sys.Matches(sys.Read(http, base, payload.Key(ticket), timeout_ms),
                     payload.Value(ticket))) {
      ++wrong;
    }
  }
  return wrong;
}

struct Row {
  std::string system;
  std::string target;
  double rate = 0;
  LatencySummary lat;
  uint64_t ok = 0;
  uint64_t errors = 0;
  std::string first_error;
};

void PrintRow(const Row& r) {
  std::printf("%-6s %-24s %9.0f writes/s  p50 %7.2f ms  p99 %7.2f ms  %9llu ok  %llu errors\n",
              r.system.c_str(), r.target.c_str(), r.rate, r.lat.p50_ms, r.lat.p99_ms,
              static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors));
  if (!r.first_error.empty()) std::printf("%31s first error: %s\n", "", r.first_error.c_str());
  std::fflush(stdout);
}

// ---- kv ----

int RunBench(const KvPlan& plan, const KvOptions& o) {
  std::vector<System> systems;
  if (!plan.etcd_urls.empty()) systems.push_back({Kind::kEtcd, "etcd", plan.etcd_urls});
  if (!plan.dtxkv_urls.empty()) systems.push_back({Kind::kDtxkv, "dtxkv", plan.dtxkv_urls});
  std::printf(
      "dtxbench kv: %d clients over %d client threads (keep-alive), %.0f s per run after a %.0f s "
      "warm-up, distinct keys, %d-byte values\n"
      "  etcd:  POST /v3/kv/put (JSON gateway), members %s\n"
      "  dtxkv: PUT /v1/kv/<key>, nodes %s\n"
      "  'leader' = every write to the current leader; 'all' = round-robin over every node "
      "(followers forward to the leader)\n",
      o.clients, o.threads, o.seconds, o.warmup_seconds, o.value_bytes,
      o.etcd.empty() ? "(none)" : o.etcd.c_str(), o.dtxkv.empty() ? "(none)" : o.dtxkv.c_str());
  BlockingHttp http;
  Payload payload(o.value_bytes);
  std::vector<Row> rows;
  int rc = 0;
  for (const bool to_leader : {true, false}) {
    if ((to_leader && !plan.leader) || (!to_leader && !plan.all)) continue;
    for (const System& sys : systems) {
      std::vector<std::string> urls = sys.urls;
      std::string target = "all (round-robin)";
      if (to_leader) {
        auto leader = WaitForLeader(sys, http, /*whole=*/false, o.settle_seconds);
        if (!leader.ok()) {
          std::fprintf(stderr, "dtxbench kv: %s\n", leader.status().message().c_str());
          rc = 1;
          continue;
        }
        urls = {sys.urls[leader->index]};
        target = "leader " + urls[0].substr(urls[0].find("//") + 2);
      }
      if (o.warmup_seconds > 0) {
        LoadSpec warm = WriteSpec(sys, urls, payload, o);
        warm.deadline = After(o.warmup_seconds);
        (void)RunLoad(warm);
        payload.NextRun();
      }
      LoadSpec spec = WriteSpec(sys, urls, payload, o);
      spec.deadline = After(o.seconds);
      LoadResult r = RunLoad(spec);
      Row row{sys.name, target,   r.rate(),     Summarize(std::move(r.latencies_us)),
              r.ok,     r.errors, r.first_error};
      PrintRow(row);
      if (r.ok == 0) rc = 1;
      // Read back through the leader: a write acknowledged but stored wrongly is a fault, not a
      // figure.
      if (auto leader = WaitForLeader(sys, http, false, o.settle_seconds); leader.ok()) {
        int checked = 0;
        const int wrong = ReadBack(sys, http, sys.urls[leader->index], payload, r.ok + r.errors, 20,
                                   o.timeout_ms, &checked);
        std::printf("%31s read back %d sampled keys through the leader: %d wrong or missing\n", "",
                    checked, wrong);
        if (wrong > 0 && r.errors == 0) rc = 1;
      }
      payload.NextRun();
      rows.push_back(std::move(row));
    }
  }
  std::printf("\n");
  for (const Row& d : rows) {
    if (d.system != "dtxkv") continue;
    for (const Row& e : rows) {
      if (e.system != "etcd" ||
          (d.target.rfind("all", 0) == 0) != (e.target.rfind("all", 0) == 0)) {
        continue;
      }
      auto ratio = Ratio(d.rate, e.rate);
      const char* kind = d.target.rfind("all", 0) == 0 ? "round-robin" : "leader";
      if (ratio) {
        std::printf("ratio dtxkv/etcd (%s, %d clients): %.2f   (target >= 2)\n", kind, o.clients,
                    *ratio);
      }
    }
  }
  return rc;
}

// ---- kv-failover ----

// Writes round-robin over every node, noting the first acknowledgement of a write issued after
// the kill. Two sources: `clients` closed-loop workers keep the leader as busy as a real load
// would (a failed write waits 10 ms before the next, so refused connections and 503s do not
// become a busy loop), and a prober issues one more write every 5 ms whatever is in flight (at
// most 2,000 of its own), so writes stuck on a dead or leaderless node cannot hide the moment a
// new leader starts to commit.
class FailoverWriters {
 public:
  FailoverWriters(const System& sys, const Payload& payload, const KvOptions& o)
      : sys_(sys),
        payload_(payload),
        timeout_ms_(o.timeout_ms),
        workers_left_(o.clients + 1),
        work_(boost::asio::make_work_guard(io_)) {
    client_ = std::make_unique<runtime::HttpClient>(io_);
    for (int i = 0; i < o.clients; ++i) boost::asio::post(io_, [this] { Next(); });
    boost::asio::post(io_, [this] { Probe(); });
    thread_ = std::thread([this] { io_.run(); });
  }

  ~FailoverWriters() { Stop(); }

  // Waits until a write was acknowledged; false after `seconds`.
  bool WaitFirstOk(double seconds) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, After(seconds), [this] { return ok_ > 0; });
  }

  void MarkKill(Steady::time_point t) {
    std::lock_guard lock(mu_);
    kill_ = t;
  }

  // The acknowledgement time of the first write issued after the kill, or nothing after
  // `seconds`.
  std::optional<Steady::time_point> WaitAckAfterKill(double seconds, std::string* via) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, After(seconds), [this] { return ack_.has_value(); });
    if (ack_ && via) *via = ack_url_;
    return ack_;
  }

  // Stops issuing, aborts the writes in flight and joins the thread. Idempotent.
  void Stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    boost::asio::post(io_, [this] {
      client_.reset();
      probe_timer_.cancel();
    });
    thread_.join();
  }

  uint64_t errors_after_kill() {
    std::lock_guard lock(mu_);
    return errors_after_kill_;
  }

 private:
  // Issues one write; `then` runs after its completion was recorded, with whether it succeeded.
  template <typename Then>
  void Write(Then then) {
    const uint64_t ticket = ticket_++;
    const std::string& url = sys_.urls[ticket % sys_.urls.size()];
    const auto start = Steady::now();
    client_->Call(sys_.Put(url, payload_.Key(ticket), payload_.Value(ticket), timeout_ms_),
                  [this, start, &url, then](runtime::HttpCallResult r) {
                    const auto end = Steady::now();
                    const bool good = r.status.ok() && r.http_status == 200;
                    {
                      std::lock_guard lock(mu_);
                      const bool after_kill = kill_ && start >= *kill_;
                      if (good) {
                        ++ok_;
                        if (after_kill && !ack_) {
                          ack_ = end;
                          ack_url_ = url;
                        }
                      } else if (after_kill) {
                        ++errors_after_kill_;
                      }
                    }
                    cv_.notify_all();
                    then(good);
                  });
  }

  void Next() {
    if (stopping_) return Retire();
    Write([this](bool good) {
      if (good) return Next();
      auto timer = std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(10));
      timer->async_wait([this, timer](boost::system::error_code) { Next(); });
    });
  }

  void Probe() {
    if (stopping_) return Retire();
    if (probes_in_flight_ < 2'000) {
      ++probes_in_flight_;
      Write([this](bool) { --probes_in_flight_; });
    }
    probe_timer_.expires_after(std::chrono::milliseconds(5));
    probe_timer_.async_wait([this](boost::system::error_code) { Probe(); });
  }

  void Retire() {
    if (--workers_left_ > 0) return;
    boost::asio::post(io_, [this] { work_.reset(); });
  }

  const System& sys_;
  const Payload& payload_;
  const int64_t timeout_ms_;
  int workers_left_;          // io thread only
  uint64_t ticket_ = 0;       // io thread only
  int probes_in_flight_ = 0;  // io thread only
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t ok_ = 0;
  uint64_t errors_after_kill_ = 0;
  std::optional<Steady::time_point> kill_;
  std::optional<Steady::time_point> ack_;
  std::string ack_url_;
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer probe_timer_{io_};
  std::unique_ptr<runtime::HttpClient> client_;
  std::thread thread_;
};

bool Alive(int pid) { return pid > 0 && ::kill(pid, 0) == 0; }

std::string JoinPids(const std::vector<int>& pids) {
  std::string s;
  for (int p : pids) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

int RunFailover(const KvPlan& plan, const KvOptions& o) {
  const System sys = plan.dtxkv_urls.empty() ? System{Kind::kEtcd, "etcd", plan.etcd_urls}
                                             : System{Kind::kDtxkv, "dtxkv", plan.dtxkv_urls};
  std::vector<int> pids = plan.pids;
  std::printf(
      "dtxbench kv-failover (%s): %d rounds; %d writers round-robin over every node; SIGKILL of "
      "the leader; failover = kill -> first acknowledged write issued after the kill\n",
      sys.name.c_str(), o.rounds, o.clients);
  std::fflush(stdout);
  BlockingHttp http;
  Payload payload(o.value_bytes);
  std::vector<uint32_t> times_us;
  int failures = 0;
  for (int round = 1; round <= o.rounds; ++round) {
    auto leader = WaitForLeader(sys, http, /*whole=*/true, o.settle_seconds);
    if (!leader.ok()) {
      std::fprintf(stderr, "dtxbench kv-failover: round %d: %s\n", round,
                   leader.status().message().c_str());
      return 1;
    }
    const int pid = pids[leader->index];
    if (!Alive(pid)) {
      std::fprintf(stderr,
                   "dtxbench kv-failover: round %d: the leader %s (node %llu) should be pid %d, "
                   "which does not run\n",
                   round, sys.urls[leader->index].c_str(),
                   static_cast<unsigned long long>(leader->id), pid);
      return 1;
    }
    double failover_ms = -1;
    std::string via;
    uint64_t errors = 0;
    {
      FailoverWriters writers(sys, payload, o);
      if (!writers.WaitFirstOk(10)) {
        std::fprintf(stderr, "dtxbench kv-failover: round %d: no write acknowledged in 10 s\n",
                     round);
        return 1;
      }
      if (::kill(pid, SIGKILL) != 0) {
        std::fprintf(stderr, "dtxbench kv-failover: kill(%d): %s\n", pid, std::strerror(errno));
        return 1;
      }
      // After kill() returns the process runs no more user code: any write issued from now on
      // can only be committed by a new leader.
      const auto killed = Steady::now();
      writers.MarkKill(killed);
      auto ack = writers.WaitAckAfterKill(o.max_failover_seconds, &via);
      if (ack) failover_ms = std::chrono::duration<double, std::milli>(*ack - killed).count();
      writers.Stop();
      errors = writers.errors_after_kill();
    }
    payload.NextRun();
    if (failover_ms >= 0) {
      times_us.push_back(static_cast<uint32_t>(failover_ms * 1000));
      std::printf(
          "round %d: killed the leader %s (pid %d, term %llu): first write acknowledged "
          "after %.1f ms via %s (%llu failed writes meanwhile)\n",
          round, sys.urls[leader->index].c_str(), pid,
          static_cast<unsigned long long>(leader->term), failover_ms, via.c_str(),
          static_cast<unsigned long long>(errors));
    } else {
      ++failures;
      std::printf("round %d: killed the leader %s (pid %d): NO write acknowledged within %.0f s\n",
                  round, sys.urls[leader->index].c_str(), pid, o.max_failover_seconds);
    }
    std::fflush(stdout);
    if (o.restart_cmd.empty()) break;
    // A restart script may refuse while the old process still exists (until it is reaped).
    for (int i = 0; i < 100 && Alive(pid); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // etcd's member ids are 64-bit hashes; scripts/etcd-cluster.sh numbers its members 1..3 in
    // the order of their URLs.
    const uint64_t restart_id = sys.kind == Kind::kEtcd ? leader->index + 1 : leader->id;
    const std::string cmd = SubstituteId(o.restart_cmd, restart_id);
    const auto restart_start = Steady::now();
    auto out = RunShell(cmd, o.settle_seconds);
    if (!out.ok()) {
      std::fprintf(stderr, "dtxbench kv-failover: restart: %s\n", out.status().message().c_str());
      return 1;
    }
    auto new_pid = FindPidInOutput(*out, restart_id);
    if (!new_pid.ok()) {
      std::fprintf(stderr, "dtxbench kv-failover: restart: %s\n",
                   new_pid.status().message().c_str());
      return 1;
    }
    pids[leader->index] = *new_pid;
    std::printf("         restarted node %llu as pid %d in %.2f s\n",
                static_cast<unsigned long long>(restart_id), *new_pid, SecondsSince(restart_start));
  }
  const LatencySummary s = Summarize(times_us);
  std::printf(
      "failover over %llu rounds: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d rounds without "
      "an acknowledged write   (target p99 < 1000 ms)\n",
      static_cast<unsigned long long>(s.count), s.p50_ms, s.p99_ms, s.max_ms, failures);
  std::printf("pids now: %s\n", JoinPids(pids).c_str());
  return failures == 0 && s.count > 0 ? 0 : 1;
}

// ---- kv-load ----

int RunKvLoad(const KvPlan& plan, const KvOptions& o) {
  System sys{Kind::kDtxkv, "dtxkv", plan.dtxkv_urls};
  BlockingHttp http;
  auto leader = WaitForLeader(sys, http, /*whole=*/true, o.settle_seconds);
  if (!leader.ok()) {
    std::fprintf(stderr, "dtxbench kv-load: %s\n", leader.status().message().c_str());
    return 1;
  }
  const std::string& leader_url = sys.urls[leader->index];
  std::printf("dtxbench kv-load: %llu keys of %d bytes through the leader %s, %d clients\n",
              static_cast<unsigned long long>(o.keys), o.value_bytes, leader_url.c_str(),
              o.clients);
  for (size_t i = 0; i < sys.urls.size(); ++i) {
    const ProcMemory m = ReadMemory(plan.pids[i]);
    std::printf("  before: %-24s pid %-7d RSS %s\n", sys.urls[i].c_str(), plan.pids[i],
                Mb(m.rss_kb).c_str());
  }
  std::fflush(stdout);
  Payload payload(o.value_bytes);
  // Progress of all passes, for the reporter.
  std::atomic<uint64_t> completed{0};
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  const auto start = Steady::now();
  std::thread reporter([&] {
    uint64_t last = 0;
    auto last_time = start;
    std::unique_lock lock(mu);
    while (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return finished; })) {
      const uint64_t done = completed.load();
      const auto now = Steady::now();
      long rss = -1, hwm = -1;
      for (int pid : plan.pids) {
        const ProcMemory m = ReadMemory(pid);
        rss = std::max(rss, m.rss_kb);
        hwm = std::max(hwm, m.hwm_kb);
      }
      std::printf(
          "  %6.0f s %10llu written %8.0f /s   largest RSS %s, largest peak %s\n",
          std::chrono::duration<double>(now - start).count(), static_cast<unsigned long long>(done),
          static_cast<double>(done - last) / std::chrono::duration<double>(now - last_time).count(),
          Mb(rss).c_str(), Mb(hwm).c_str());
      std::fflush(stdout);
      last = done;
      last_time = now;
    }
  });
  // A write refused during an election is written again, under a new key, in a further pass
  // through the new leader, so that --keys keys end up stored.
  uint64_t loaded = 0, errors = 0, last_issued = 0, last_errors = 0;
  double seconds = 0;
  std::vector<uint32_t> latencies;
  std::string first_error;
  std::string url = leader_url;
  for (int pass = 1; pass <= 5 && loaded < o.keys; ++pass) {
    if (pass > 1) {
      auto now_leader = WaitForLeader(sys, http, /*whole=*/false, o.settle_seconds);
      if (!now_leader.ok()) {
        std::printf("pass %d: %s\n", pass, now_leader.status().message().c_str());
        break;
      }
      url = sys.urls[now_leader->index];
      payload.NextRun();
    }
    LoadSpec spec = WriteSpec(sys, {url}, payload, o);
    spec.count = o.keys - loaded;
    const uint64_t base = completed.load();
    spec.on_complete = [&completed, base](uint64_t done) {
      completed.store(base + done, std::memory_order_relaxed);
    };
    LoadResult r = RunLoad(spec);
    loaded += r.ok;
    errors += r.errors;
    seconds += r.seconds;
    latencies.insert(latencies.end(), r.latencies_us.begin(), r.latencies_us.end());
    if (first_error.empty()) first_error = r.first_error;
    last_issued = spec.count;
    last_errors = r.errors;
    if (r.errors > 0) {
      std::printf("  pass %d through %s: %llu writes failed (%s)\n", pass, url.c_str(),
                  static_cast<unsigned long long>(r.errors), r.first_error.c_str());
    }
  }
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_all();
  reporter.join();
  const LatencySummary lat = Summarize(std::move(latencies));
  std::printf(
      "loaded %llu of %llu keys in %.1f s: %.0f writes/s, p50 %.2f ms, p99 %.2f ms, %llu "
      "failed writes%s%s\n",
      static_cast<unsigned long long>(loaded), static_cast<unsigned long long>(o.keys), seconds,
      seconds > 0 ? static_cast<double>(loaded) / seconds : 0.0, lat.p50_ms, lat.p99_ms,
      static_cast<unsigned long long>(errors),
      first_error.empty() ? "" : ", first: ", first_error.c_str());
  int rc = loaded == o.keys ? 0 : 1;

  // Every node applies everything the leader committed before memory is read.
  auto final_leader = WaitForLeader(sys, http, /*whole=*/false, o.settle_seconds);
  if (final_leader.ok()) url = sys.urls[final_leader->index];
  uint64_t target = 0;
  if (auto v = sys.Probe(http, url); v.ok()) target = v->commit;
  const auto deadline = After(o.settle_seconds);
  std::string lagging;
  for (int attempt = 0; attempt < 100'000; ++attempt) {
    lagging.clear();
    for (const auto& u : sys.urls) {
      auto v = sys.Probe(http, u);
      if (!v.ok() || v->applied < target) lagging += " " + u;
    }
    if (lagging.empty() || Steady::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the followers' progress
  }
  if (!lagging.empty()) {
    std::printf("not every node applied index %llu within %.0f s:%s\n",
                static_cast<unsigned long long>(target), o.settle_seconds, lagging.c_str());
    rc = 1;
  }

  // The keys of the last pass, read back through the current leader.
  int checked = 0;
  const int wrong = ReadBack(sys, http, url, payload, last_issued, 100, o.timeout_ms, &checked);
  std::printf(
      "read back %d sampled keys of the last pass through the leader: %d wrong or "
      "missing\n",
      checked, wrong);
  if (wrong > 0 && last_errors == 0) rc = 1;

  long max_hwm = -1;
  for (size_t i = 0; i < sys.urls.size(); ++i) {
    const ProcMemory m = ReadMemory(plan.pids[i]);
    max_hwm = std::max(max_hwm, m.hwm_kb);
    std::printf("  after:  %-24s pid %-7d RSS %s, peak (VmHWM) %s\n", sys.urls[i].c_str(),
                plan.pids[i], Mb(m.rss_kb).c_str(), Mb(m.hwm_kb).c_str());
  }
  std::printf("largest peak RSS: %s   (target <= 512 MB)\n", Mb(max_hwm).c_str());
  return rc;
}

Status CheckRange(std::string_view flag, double v, double lo, double hi, bool lo_open) {
  if (v < lo || (lo_open && v == lo) || v > hi || v != v) {
    std::ostringstream m;
    m << flag << " must be " << (lo_open ? "> " : ">= ") << lo << " and <= " << hi << " (got " << v
      << ")";
    return InvalidArgument(m.str());
  }
  return Status::Ok();
}

}  // namespace

// ---- public helpers ----

Result<std::vector<std::string>> ParseBaseUrls(std::string_view list, std::string_view flag) {
  std::vector<std::string> out;
  const std::string f(flag);
  if (list.empty()) return InvalidArgument(f + ": no URL given");
  for (std::string_view item : SplitComma(list)) {
    if (item.empty()) return InvalidArgument(f + ": empty URL in '" + std::string(list) + "'");
    auto url = runtime::ParseUrl(item);
    if (!url.ok()) {
      return InvalidArgument(f + ": '" + std::string(item) + "': " + url.status().message());
    }
    if (url->target != "/") {
      return InvalidArgument(f + ": '" + std::string(item) +
                             "' must be a base URL without a path or query (http://host:port)");
    }
    std::string base = "http://" + url->HostPort();
    if (std::find(out.begin(), out.end(), base) != out.end()) {
      return InvalidArgument(f + ": " + base + " is given twice");
    }
    out.push_back(std::move(base));
  }
  return out;
}

Result<std::vector<int>> ParsePids(std::string_view list) {
  std::vector<int> out;
  if (list.empty()) return InvalidArgument("--pids: no pid given");
  for (std::string_view item : SplitComma(list)) {
    if (item.empty() || item.size() > 9 ||
        !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return InvalidArgument("--pids: '" + std::string(item) + "' is not a process id");
    }
    const int pid = std::stoi(std::string(item));
    if (pid <= 0) return InvalidArgument("--pids: '" + std::string(item) + "' is not positive");
    out.push_back(pid);
  }
  return out;
}

Result<KvNodeStatus> ParseKvStatus(std::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  KvNodeStatus s;
  auto id = U64Field(*j, "id", std::nullopt);
  if (!id.ok()) return id.status();
  if (*id == 0) return InvalidArgument("status: field 'id' must be positive");
  s.id = *id;
  auto role = j->find("role");
  if (role == j->end() || !role->is_string()) {
    return InvalidArgument("status: field 'role' is missing or not a string");
  }
  s.role = role->get<std::string>();
  for (auto [name, field] : {std::pair{"term", &s.term}, std::pair{"leader", &s.leader},
                             std::pair{"commit", &s.commit}, std::pair{"applied", &s.applied}}) {
    auto v = U64Field(*j, name, uint64_t{0});
    if (!v.ok()) return v.status();
    *field = *v;
  }
  auto members = j->find("members");
  if (members != j->end() && !members->is_null()) {
    if (!members->is_array()) return InvalidArgument("status: 'members' is not an array");
    for (const json& m : *members) {
      if (!m.is_object()) return InvalidArgument("status: a member is not an object");
      auto mid = U64Field(m, "id", std::nullopt);
      if (!mid.ok()) return mid.status();
      auto http = m.find("http");
      if (http == m.end() || !http->is_string()) {
        return InvalidArgument("status: a member's 'http' is missing or not a string");
      }
      s.members.push_back({*mid, http->get<std::string>()});
    }
  }
  return s;
}

Result<EtcdStatus> ParseEtcdStatus(std::string_view body) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  auto header = j->find("header");
  if (header == j->end() || !header->is_object()) {
    return InvalidArgument("status: field 'header' is missing or not an object");
  }
  EtcdStatus s;
  auto member = U64Field(*header, "member_id", std::nullopt);
  if (!member.ok()) return member.status();
  if (*member == 0) return InvalidArgument("status: field 'member_id' must be positive");
  auto leader = U64Field(*j, "leader", uint64_t{0});
  if (!leader.ok()) return leader.status();
  auto term = U64Field(*header, "raft_term", uint64_t{0});
  if (!term.ok()) return term.status();
  s.member_id = *member;
  s.leader = *leader;
  s.raft_term = *term;
  return s;
}

LatencySummary Summarize(std::vector<uint32_t> latencies_us) {
  LatencySummary s;
  s.count = latencies_us.size();
  if (latencies_us.empty()) return s;
  s.max_ms = *std::max_element(latencies_us.begin(), latencies_us.end()) / 1000.0;
  s.p50_ms = PercentileMs(latencies_us, 0.5);
  s.p99_ms = PercentileMs(latencies_us, 0.99);
  return s;
}

std::optional<double> Ratio(double a, double b) {
  if (!(b > 0)) return std::nullopt;
  return a / b;
}

std::string SubstituteId(std::string_view command, uint64_t id) {
  const std::string ids = std::to_string(id);
  std::string out;
  bool substituted = false;
  for (size_t i = 0; i < command.size();) {
    if (command.substr(i, 4) == "{id}") {
      out += ids;
      substituted = true;
      i += 4;
    } else {
      out += command[i++];
    }
  }
  if (!substituted) out += " " + ids;
  return out;
}

std::string CommandLine(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (i > 0) out += ' ';
    const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("_./:,=@%+-").find(c) != std::string_view::npos;
    });
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

Result<int> FindPidInOutput(std::string_view output, uint64_t id) {
  std::istringstream lines{std::string(output)};
  std::string line;
  for (int n = 0; n < 10'000 && std::getline(lines, line); ++n) {
    std::istringstream words(line);
    std::string word, node, url, pid_word, pid;
    if (!(words >> word >> node >> url >> pid_word >> pid)) continue;
    if (node != std::to_string(id) || pid_word != "pid") continue;
    auto pids = ParsePids(pid);
    if (pids.ok() && pids->size() == 1) return pids->front();
  }
  return NotFound("no line 'node " + std::to_string(id) +
                  " URL pid PID' in the output: " + std::string(output.substr(0, 500)));
}

Result<KvPlan> ValidateKvOptions(KvMode mode, const KvOptions& o) {
  KvPlan p;
  p.mode = mode;
  if (!o.etcd.empty()) {
    if (mode == KvMode::kLoad) return InvalidArgument("--etcd does not apply to kv-load");
    if (mode == KvMode::kFailover && !o.dtxkv.empty()) {
      return InvalidArgument("kv-failover measures one system: give --dtxkv or --etcd, not both");
    }
    auto urls = ParseBaseUrls(o.etcd, "--etcd");
    if (!urls.ok()) return urls.status();
    p.etcd_urls = std::move(*urls);
  }
  if (!o.dtxkv.empty() || (mode != KvMode::kBench && p.etcd_urls.empty())) {
    auto urls = ParseBaseUrls(o.dtxkv, "--dtxkv");
    if (!urls.ok()) return urls.status();
    p.dtxkv_urls = std::move(*urls);
  }
  if (mode == KvMode::kBench && p.dtxkv_urls.empty() && p.etcd_urls.empty()) {
    return InvalidArgument("give --dtxkv URLs, --etcd URLs or both");
  }
  if (mode != KvMode::kBench) {
    const bool etcd = p.dtxkv_urls.empty();
    const size_t nodes = etcd ? p.etcd_urls.size() : p.dtxkv_urls.size();
    auto pids = ParsePids(o.pids);
    if (!pids.ok()) return pids.status();
    if (pids->size() != nodes) {
      return InvalidArgument("--pids: " + std::to_string(pids->size()) + " pids for " +
                             std::to_string(nodes) + (etcd ? " --etcd" : " --dtxkv") +
                             " URLs (give one per node, in the same order)");
    }
    p.pids = std::move(*pids);
  }
  DTX_RETURN_IF_ERROR(CheckRange("--clients", o.clients, 1, 10'000, false));
  DTX_RETURN_IF_ERROR(CheckRange("--threads", o.threads, 1, 64, false));
  DTX_RETURN_IF_ERROR(CheckRange("--value-bytes", o.value_bytes, 1, 1 << 20, false));
  DTX_RETURN_IF_ERROR(
      CheckRange("--timeout-ms", static_cast<double>(o.timeout_ms), 1, 600'000, false));
  DTX_RETURN_IF_ERROR(CheckRange("--settle-seconds", o.settle_seconds, 0, 3'600, true));
  if (mode == KvMode::kBench) {
    DTX_RETURN_IF_ERROR(CheckRange("--seconds", o.seconds, 0, 86'400, true));
    DTX_RETURN_IF_ERROR(CheckRange("--warmup-seconds", o.warmup_seconds, 0, 3'600, false));
    p.leader = p.all = false;
    for (std::string_view t : SplitComma(o.targets)) {
      if (t == "leader") {
        p.leader = true;
      } else if (t == "all") {
        p.all = true;
      } else {
        return InvalidArgument("--targets: '" + std::string(t) + "' is neither 'leader' nor 'all'");
      }
    }
  }
  if (mode == KvMode::kFailover) {
    DTX_RETURN_IF_ERROR(CheckRange("--rounds", o.rounds, 1, 1'000, false));
    DTX_RETURN_IF_ERROR(CheckRange("--max-failover-seconds", o.max_failover_seconds, 0, 600, true));
    if (o.rounds > 1 && o.restart_cmd.empty()) {
      return InvalidArgument("--rounds " + std::to_string(o.rounds) +
                             " needs --restart-cmd to bring the killed leader back");
    }
  }
  if (mode == KvMode::kLoad) {
    DTX_RETURN_IF_ERROR(CheckRange("--keys", static_cast<double>(o.keys), 1, 1e9, false));
  }
  return p;
}

KvCommands AddKvCommands(CLI::App& app, KvOptions& o) {
  KvCommands c;
  auto common = [&o](CLI::App* sub) {
    sub->add_option("--clients", o.clients, "Requests in flight")->capture_default_str();
    sub->add_option("--threads", o.threads, "Client io threads")->capture_default_str();
    sub->add_option("--value-bytes", o.value_bytes, "Bytes per value")->capture_default_str();
    sub->add_option("--timeout-ms", o.timeout_ms, "Timeout of one request")->capture_default_str();
    sub->add_option("--settle-seconds", o.settle_seconds,
                    "Bound on waiting for a leader / a whole cluster / a restart")
        ->capture_default_str();
  };
  c.bench = app.add_subcommand(
      "kv", "Writes against dtxkv and etcd 3.4 side by side: writes/s, p50, p99, ratio");
  c.bench->add_option("--dtxkv", o.dtxkv, "dtxkv node URLs, comma-separated");
  c.bench->add_option("--etcd", o.etcd, "etcd client URLs, comma-separated");
  c.bench->add_option("--seconds", o.seconds, "Measured duration per run")->capture_default_str();
  c.bench->add_option("--warmup-seconds", o.warmup_seconds, "Unmeasured writes before each run")
      ->capture_default_str();
  c.bench->add_option("--targets", o.targets, "Runs per system: leader, all (round-robin)")
      ->capture_default_str();
  common(c.bench);

  c.failover = app.add_subcommand(
      "kv-failover", "Leader failover time: kill -9 of the leader to the next acknowledged write");
  c.failover->add_option("--dtxkv", o.dtxkv, "dtxkv node URLs, comma-separated");
  c.failover->add_option("--etcd", o.etcd, "Or etcd client URLs, comma-separated");
  c.failover->add_option("--pids", o.pids, "Their pids, in the same order")->required();
  c.failover->add_option("--rounds", o.rounds, "Kills")->capture_default_str();
  c.failover->add_option("--restart-cmd", o.restart_cmd,
                         "Shell command that restarts the killed node ({id} = its id) and prints "
                         "'node ID URL pid PID'");
  c.failover
      ->add_option("--max-failover-seconds", o.max_failover_seconds,
                   "Give up on a round after this long without an ack")
      ->capture_default_str();
  common(c.failover);

  c.load = app.add_subcommand("kv-load", "Load keys into dtxkv, then print each node's RSS");
  c.load->add_option("--dtxkv", o.dtxkv, "dtxkv node URLs, comma-separated")->required();
  c.load->add_option("--pids", o.pids, "Their pids, in the same order")->required();
  c.load->add_option("--keys", o.keys, "Keys to write")->capture_default_str();
  common(c.load);
  return c;
}

int RunKv(const KvPlan& plan, const KvOptions& o, const std::string& command_line) {
  std::signal(SIGPIPE, SIG_IGN);
  int rc = 1;
  switch (plan.mode) {
    case KvMode::kBench:
      rc = RunBench(plan, o);
      break;
    case KvMode::kFailover:
      rc = RunFailover(plan, o);
      break;
    case KvMode::kLoad:
      rc = RunKvLoad(plan, o);
      break;
  }
  std::printf("command: %s\n", command_line.c_str());
  return rc;
}

}  // namespace dtx::bench
