// dtxbench: load and memory benchmarks of dtxd against in-process no-op participants.
//
//   dtxbench saga     [--concurrency 64] [--seconds 10]   throughput and latency of two-branch
//                                                          sagas with wait_result, and the raw
//                                                          HTTP rate of the participant
//   dtxbench hold     [--count 100000]                     dtxd's peak RSS with unfinished sagas
//   dtxbench finished [--count 1000000]                    dtxd's RSS while finished sagas pile up
//   dtxbench kv | kv-failover | kv-load                    dtxkv beside etcd (see kv.h); these
//                                                          three spawn nothing
//
// dtxd is spawned on a temporary data dir (or --data-dir) unless --dtxd URL points at a running
// one. Results go to stdout, followed by the exact command line.
#include <utility>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dtxbench/kv.h"
#include "dtxbench/load.h"
#include "dtxbench/util.h"
#include "runtime/http.h"

extern char** environ;

namespace dtx::bench {
namespace {

using Steady = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string dtxd_bin = DTXD_BIN;
  std::string dtxd_url;
  int dtxd_pid = 0;
  std::string data_dir;
  std::vector<std::string> dtxd_args;
  bool keep = false;
  int concurrency = 64;
  int threads = 2;
  int participant_threads = 1;
  double seconds = 10;
  double raw_seconds = 5;
  double warmup_seconds = 1;
  uint64_t count = 0;
  double report_seconds = 10;
  double observe_seconds = 12;
  // transfer mode
  std::string bank_url;
  std::string transfer_modes = "direct,saga,tcc,xa,msg";
  int accounts = 1000;
};

// ---- small helpers ----

// User + system CPU seconds of a process, -1 if unknown.
double CpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may contain spaces.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

uint16_t PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  if (fd >= 0) ::close(fd);
  return port;
}

// The value of an unlabelled metric in Prometheus text, or -1.
double Metric(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name + " ", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return std::atof(text.c_str() + pos + name.size() + 1);
    pos += name.size();
  }
  return -1;
}

// ---- the in-process participant ----

// /ok answers SUCCESS, /ongoing answers ONGOING, anything else 404. Runs on its own threads.
class NoopParticipant {
 public:
  explicit NoopParticipant(int threads) : work_(boost::asio::make_work_guard(io_)) {
    auto server = runtime::HttpServer::Start(
        io_, {}, [this](runtime::HttpRequest&& req, runtime::Responder respond) {
          calls_.fetch_add(1, std::memory_order_relaxed);
          runtime::HttpResponse r;
          if (req.path == "/ok") {
            r.body = R"({"dtm_result":"SUCCESS"})";
          } else if (req.path == "/ongoing") {
            r.status = 425;
            r.body = R"({"dtm_result":"ONGOING"})";
          } else {
            r.status = 404;
            r.body = R"({"message":"no route"})";
          }
          respond(std::move(r));
        });
    if (!server.ok()) {
      std::fprintf(stderr, "dtxbench: participant: %s\n", server.status().ToString().c_str());
      std::exit(1);
    }
    server_ = std::move(*server);
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { io_.run(); });
  }

  ~NoopParticipant() {
    server_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  uint64_t calls() const { return calls_.load(); }
  uint64_t connections() const { return server_->connections_accepted(); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpServer> server_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> calls_{0};
};

// ---- dtxd ----

class Dtxd {
 public:
  ~Dtxd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (!keep_ && !root_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
  }

  // Spawns dtxd, or adopts --dtxd URL. Exits the program on failure.
  void Start(const Options& o) {
    if (!o.dtxd_url.empty()) {
      url_ = o.dtxd_url;
      pid_ = 0;
      external_pid_ = o.dtxd_pid;
      WaitReady();
      return;
    }
    keep_ = o.keep;
    std::string tmpl = (std::filesystem::temp_directory_path() / "dtxbench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
    root_ = tmpl;
    data_dir_ = o.data_dir.empty() ? root_ + "/data" : o.data_dir;
    log_ = root_ + "/dtxd.log";
    const uint16_t port = PickFreePort();
    if (port == 0) Die("no free port");
    url_ = "http://127.0.0.1:" + std::to_string(port);
    std::vector<std::string> args = {o.dtxd_bin,   "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--data-dir", data_dir_,  "--log-level",
                                     "warn"};
    for (const auto& a : o.dtxd_args) args.push_back(a);
    command_ = Join(args);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) Die("cannot start " + o.dtxd_bin + ": " + std::strerror(rc));
    pid_ = pid;
    WaitReady();
  }

  std::string Url(const std::string& path) const { return url_ + path; }
  int pid() const { return pid_ > 0 ? pid_ : external_pid_; }
  const std::string& command() const { return command_; }
  const std::string& data_dir() const { return data_dir_; }

  std::string Metrics() {
    auto r = client_.Call("GET", Url("/api/metrics"));
    return r.status.ok() ? r.body : "";
  }

  static std::string Join(const std::vector<std::string>& args) {
    std::string s;
    for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
    return s;
  }

 private:
  [[noreturn]] void Die(const std::string& message) {
    std::fprintf(stderr, "dtxbench: %s\n", message.c_str());
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (!log_.empty()) {
      std::ifstream in(log_);
      std::fprintf(stderr, "--- %s ---\n%s\n", log_.c_str(),
                   std::string((std::istreambuf_iterator<char>(in)), {}).c_str());
    }
    std::exit(1);
  }

  void WaitReady() {
    // Polls with a pause: a starting server offers nothing to wait on. Bounded to about 30 s.
    for (int i = 0; i < 1500; ++i) {
      auto r = client_.Call("GET", Url("/api/ping"), "", 1'000);
      if (r.status.ok() && r.http_status == 200) return;
      if (pid_ > 0) {
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = 0;
          Die("dtxd exited during start-up");
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Die("dtxd at " + url_ + " does not answer /api/ping");
  }

  BlockingHttp client_;
  std::string url_;
  pid_t pid_ = 0;
  int external_pid_ = 0;
  bool keep_ = false;
  std::string root_;
  std::string data_dir_;
  std::string log_;
  std::string command_;
};

// ---- request builders ----

// A submit body for a saga with two steps whose actions and compensations are `url`.
class SagaBodies {
 public:
  SagaBodies(const std::string& url, bool wait_result) {
    std::random_device rd;
    char run[20];
    std::snprintf(run, sizeof run, "%08x", rd());
    prefix_ = std::string(R"({"gid":"bench-)") + run + "-";
    suffix_ = R"(","trans_type":"saga","steps":[{"action":")" + url + R"(","compensate":")" + url +
              R"("},{"action":")" + url + R"(","compensate":")" + url +
              R"("}],"payloads":["{}","{}"],"wait_result":)" + (wait_result ? "true" : "false") +
              "}";
  }
  std::string Body(uint64_t ticket) const { return prefix_ + std::to_string(ticket) + suffix_; }

 private:
  std::string prefix_;
  std::string suffix_;
};

LoadSpec Spec(const Options& o) {
  LoadSpec spec;
  spec.threads = o.threads;
  spec.concurrency = o.concurrency;
  return spec;
}

// Submits one saga of `bodies` per ticket to `submit_url`; both must outlive the load run.
LoadSpec SubmitSpec(const Options& o, const std::string& submit_url, const SagaBodies& bodies) {
  LoadSpec spec = Spec(o);
  spec.make = [&submit_url, &bodies](uint64_t ticket) {
    runtime::HttpCallSpec s;
    s.url = submit_url;
    s.body = bodies.Body(ticket);
    s.timeout_ms = 30'000;
    return s;
  };
  return spec;
}

std::chrono::steady_clock::time_point After(double seconds) {
  return Steady::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

void PrintLine(const char* what, LoadResult& r) {
  const double p50 = PercentileMs(r.latencies_us, 0.50);
  const double p99 = PercentileMs(r.latencies_us, 0.99);
  std::printf("%-28s %10.0f /s   p50 %7.2f ms   p99 %7.2f ms   (%llu ok, %llu errors, %.1f s)\n",
              what, r.rate(), p50, p99, static_cast<unsigned long long>(r.ok),
              static_cast<unsigned long long>(r.errors), r.seconds);
  if (r.errors > 0) std::printf("%-28s first error: %s\n", "", r.first_error.c_str());
}

void PrintSetup(const Options& o, Dtxd& dtxd) {
  std::printf("dtxbench %s: concurrency %d over %d client threads, participant threads %d\n",
              o.mode.c_str(), o.concurrency, o.threads, o.participant_threads);
  if (dtxd.command().empty()) {
    std::printf("dtxd: %s (not spawned)\n", dtxd.Url("").c_str());
  } else {
    std::printf("dtxd: %s\n", dtxd.command().c_str());
  }
}

// ---- modes ----

int RunSaga(const Options& o, Dtxd& dtxd, NoopParticipant& participant) {
  PrintSetup(o, dtxd);
  const std::string submit_url = dtxd.Url("/api/dtmsvr/submit");

  LoadSpec raw = Spec(o);
  raw.deadline = After(o.raw_seconds);
  const std::string ok_url = participant.Url("/ok");
  raw.make = [&](uint64_t) {
    runtime::HttpCallSpec s;
    s.url = ok_url;
    s.body = "{}";
    return s;
  };
  LoadResult raw_result = RunLoad(raw);
  PrintLine("raw participant HTTP", raw_result);

  SagaBodies bodies(participant.Url("/ok"), /*wait_result=*/true);
  LoadSpec saga = SubmitSpec(o, submit_url, bodies);
  if (o.warmup_seconds > 0) {
    saga.deadline = After(o.warmup_seconds);
    LoadResult warm = RunLoad(saga);
    std::printf("%-28s %10.0f /s   (%llu sagas, not counted)\n", "warm-up", warm.rate(),
                static_cast<unsigned long long>(warm.ok));
  }
  // Tickets restart at 0 in every run; a new run id keeps the gids distinct from the warm-up's.
  SagaBodies measured(participant.Url("/ok"), true);
  saga.make = SubmitSpec(o, submit_url, measured).make;
  const double dtxd_cpu0 = CpuSeconds(dtxd.pid());
  const double self_cpu0 = SelfCpuSeconds();
  saga.deadline = After(o.seconds);
  LoadResult saga_result = RunLoad(saga);
  const double dtxd_cpu = CpuSeconds(dtxd.pid()) - dtxd_cpu0;
  const double self_cpu = SelfCpuSeconds() - self_cpu0;
  PrintLine("sagas (2 branches, wait)", saga_result);
  if (raw_result.rate() > 0) {
    std::printf("%-28s %10.3f   (a saga needs >= 3 HTTP exchanges: ceiling about 0.33)\n",
                "ratio sagas / raw requests", saga_result.rate() / raw_result.rate());
  }
  if (saga_result.seconds > 0) {
    std::printf("%-28s dtxd %.0f%%, dtxbench (clients + participant) %.0f%% of one core\n",
                "CPU during sagas", dtxd_cpu >= 0 ? 100 * dtxd_cpu / saga_result.seconds : -1.0,
                100 * self_cpu / saga_result.seconds);
  }
  const std::string metrics = dtxd.Metrics();
  const double batches = Metric(metrics, "dtx_store_batches_total");
  const double records = Metric(metrics, "dtx_store_records_total");
  const double write_s = Metric(metrics, "dtx_store_write_seconds_total");
  if (batches > 0) {
    std::printf("%-28s %.0f synced batches, %.1f records/batch, %.3f ms/batch\n", "dtxd store",
                batches, records / batches, 1000 * write_s / batches);
  }
  ProcMemory m = ReadMemory(dtxd.pid());
  std::printf("%-28s RSS %s, peak %s\n", "dtxd memory", Mb(m.rss_kb).c_str(), Mb(m.hwm_kb).c_str());
  return saga_result.ok > 0 ? 0 : 1;
}

int RunHold(const Options& o, Dtxd& dtxd, NoopParticipant& participant) {
  PrintSetup(o, dtxd);
  const uint64_t count = o.count > 0 ? o.count : 100'000;
  ProcMemory before = ReadMemory(dtxd.pid());
  std::printf("%-28s RSS %s\n", "dtxd before", Mb(before.rss_kb).c_str());
  const std::string submit_url = dtxd.Url("/api/dtmsvr/submit");
  SagaBodies bodies(participant.Url("/ongoing"), /*wait_result=*/false);
  LoadSpec spec = SubmitSpec(o, submit_url, bodies);
  spec.count = count;
  LoadResult r = RunLoad(spec);
  PrintLine("submits (branches ONGOING)", r);

  // Every acknowledged saga is held; check that dtxd agrees before reading memory.
  double active = -1;
  for (int i = 0; i < 600; ++i) {
    active = Metric(dtxd.Metrics(), "dtx_transactions_active");
    if (active >= static_cast<double>(r.ok)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("%-28s %.0f unfinished transactions held\n", "dtxd", active);
  // dtxd keeps polling the ONGOING branches (every ongoing_interval_ms, 10 s by default); the
  // peak is read after at least one full round of polls.
  const uint64_t answers_before = participant.calls();
  std::this_thread::sleep_for(
      std::chrono::milliseconds(static_cast<int64_t>(o.observe_seconds * 1000)));
  std::printf(
      "%-28s %llu ONGOING answers in the %.0f s after the submits; %llu connections "
      "accepted in all\n",
      "participant", static_cast<unsigned long long>(participant.calls() - answers_before),
      o.observe_seconds, static_cast<unsigned long long>(participant.connections()));
  ProcMemory m = ReadMemory(dtxd.pid());
  std::printf("%-28s RSS %s, peak (VmHWM) %s, per held transaction %.2f KB above start\n",
              "dtxd memory", Mb(m.rss_kb).c_str(), Mb(m.hwm_kb).c_str(),
              r.ok > 0 && m.hwm_kb >= 0
                  ? static_cast<double>(m.hwm_kb - before.rss_kb) / static_cast<double>(r.ok)
                  : 0.0);
  return r.ok > 0 ? 0 : 1;
}

int RunFinished(const Options& o, Dtxd& dtxd, NoopParticipant& participant) {
  PrintSetup(o, dtxd);
  const uint64_t count = o.count > 0 ? o.count : 1'000'000;
  const std::string submit_url = dtxd.Url("/api/dtmsvr/submit");
  SagaBodies bodies(participant.Url("/ok"), /*wait_result=*/true);
  LoadSpec spec = SubmitSpec(o, submit_url, bodies);
  spec.count = count;
  std::atomic<uint64_t> completed{0};
  spec.on_complete = [&](uint64_t done) { completed.store(done, std::memory_order_relaxed); };

  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  const auto start = Steady::now();
  std::thread reporter([&] {
    std::printf("%8s %12s %10s %12s %12s %10s\n", "seconds", "finished", "rate/s", "RSS",
                "peak RSS", "active");
    uint64_t last = 0;
    auto last_time = start;
    std::unique_lock lock(mu);
    for (;;) {
      const bool stop = cv.wait_for(
          lock, std::chrono::milliseconds(static_cast<int64_t>(o.report_seconds * 1000)),
          [&] { return finished; });
      const auto now = Steady::now();
      const uint64_t done = completed.load();
      ProcMemory m = ReadMemory(dtxd.pid());
      const double active = Metric(dtxd.Metrics(), "dtx_transactions_active");
      const double dt = std::chrono::duration<double>(now - last_time).count();
      std::printf("%8.0f %12llu %10.0f %12s %12s %10.0f\n",
                  std::chrono::duration<double>(now - start).count(),
                  static_cast<unsigned long long>(done),
                  dt > 0 ? static_cast<double>(done - last) / dt : 0.0, Mb(m.rss_kb).c_str(),
                  Mb(m.hwm_kb).c_str(), active);
      std::fflush(stdout);
      last = done;
      last_time = now;
      if (stop) return;
    }
  });
  LoadResult r = RunLoad(spec);
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_all();
  reporter.join();
  PrintLine("sagas (2 branches, wait)", r);
  return r.ok > 0 ? 0 : 1;
}

// ---- transfer: the bank example's two-database transfer, with and without dtxd ----

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Waits until dtxd holds no unfinished transaction (confirms, commits and deliveries that the
// previous mode left running), at most `seconds`. Returns the seconds it took, or -1 on timeout.
double Drain(Dtxd& dtxd, double seconds) {
  const auto start = Steady::now();
  const auto deadline = After(seconds);
  while (Steady::now() < deadline) {
    if (Metric(dtxd.Metrics(), "dtx_transactions_active") == 0) {
      return std::chrono::duration<double>(Steady::now() - start).count();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling dtxd's progress
  }
  return -1;
}

int RunTransfer(const Options& o, Dtxd& dtxd) {
  if (o.bank_url.empty()) {
    std::fprintf(stderr, "dtxbench transfer: --bank is required (see scripts/bank-bench.sh)\n");
    return 2;
  }
  const std::vector<std::string> modes = SplitComma(o.transfer_modes);
  for (const auto& m : modes) {
    if (m != "direct" && m != "saga" && m != "tcc" && m != "xa" && m != "msg") {
      std::fprintf(stderr, "dtxbench transfer: unknown mode '%s'\n", m.c_str());
      return 2;
    }
  }
  std::printf("dtxbench transfer: concurrency %d over %d client threads, %d accounts per bank\n",
              o.concurrency, o.threads, o.accounts);
  std::printf("initiating bank: %s, dtxd: %s\n", o.bank_url.c_str(), dtxd.Url("").c_str());
  const std::string url = o.bank_url + "/transfer";
  double direct_rate = 0;
  int rc = 0;
  for (const auto& mode : modes) {
    auto make = [&url, &mode, &o](uint64_t ticket) {
      // Accounts spread the row locks; amount 1 never exhausts the seeded balances.
      const uint64_t from = 1 + (ticket * 7919) % o.accounts;
      const uint64_t to = 1 + (ticket * 104729) % o.accounts;
      runtime::HttpCallSpec s;
      s.url = url;
      s.body = "{\"mode\":\"" + mode + "\",\"from\":" + std::to_string(from) +
               ",\"to\":" + std::to_string(to) + ",\"amount\":1}";
      s.timeout_ms = 30'000;
      return s;
    };
    if (o.warmup_seconds > 0) {
      LoadSpec warm = Spec(o);
      warm.make = make;
      warm.deadline = After(o.warmup_seconds);
      (void)RunLoad(warm);
      Drain(dtxd, 60);
    }
    LoadSpec spec = Spec(o);
    spec.make = make;
    spec.deadline = After(o.seconds);
    LoadResult r = RunLoad(spec);
    const double drain_s = Drain(dtxd, 60);
    const std::string label = mode == "direct" ? "direct (no dtx)" : mode + " via dtxd";
    PrintLine(label.c_str(), r);
    if (drain_s < 0) {
      std::printf("%-28s dtxd still had unfinished transactions 60 s after the run\n", "");
      rc = 1;
    } else if (mode != "direct" && mode != "saga") {
      // Confirms/commits/deliveries run after /transfer answered; count them in the rate.
      const double rate = r.ok / (r.seconds + drain_s);
      std::printf("%-28s %10.0f /s   including %.2f s to finish the second phase\n", "", rate,
                  drain_s);
      r.seconds += drain_s;
    }
    if (mode == "direct") direct_rate = r.rate();
    if (mode != "direct" && direct_rate > 0) {
      std::printf("%-28s %10.3f\n", ("ratio " + mode + " / direct").c_str(),
                  r.rate() / direct_rate);
    }
    if (r.ok == 0) rc = 1;
  }
  return rc;
}

}  // namespace
}  // namespace dtx::bench

int main(int argc, char** argv) {
  using dtx::bench::Options;
  Options o;
  CLI::App app("dtxbench: load and memory benchmarks of dtxd with in-process no-op participants",
               "dtxbench");
  app.require_subcommand(1);
  auto common = [&o](CLI::App* sub) {
    sub->add_option("--dtxd-bin", o.dtxd_bin, "dtxd binary to spawn")->capture_default_str();
    sub->add_option("--dtxd", o.dtxd_url, "Use a running dtxd at this URL instead of spawning");
    sub->add_option("--dtxd-pid", o.dtxd_pid, "PID of that dtxd, to read its memory and CPU");
    sub->add_option("--data-dir", o.data_dir, "Data dir of the spawned dtxd (default: temporary)");
    sub->add_option("--dtxd-arg", o.dtxd_args, "Extra argument for the spawned dtxd (repeatable)")
        ->allow_extra_args(false);
    sub->add_flag("--keep", o.keep, "Keep the temporary directory (data and dtxd.log)");
    sub->add_option("--concurrency", o.concurrency, "Requests in flight")->capture_default_str();
    sub->add_option("--threads", o.threads, "Client io threads")->capture_default_str();
    sub->add_option("--participant-threads", o.participant_threads,
                    "io threads of the in-process participant")
        ->capture_default_str();
  };
  auto* saga = app.add_subcommand("saga", "Two-branch sagas with wait_result: rate and latency");
  common(saga);
  saga->add_option("--seconds", o.seconds, "Measured duration")->capture_default_str();
  saga->add_option("--raw-seconds", o.raw_seconds, "Duration of the raw HTTP measurement")
      ->capture_default_str();
  saga->add_option("--warmup-seconds", o.warmup_seconds, "Unmeasured sagas first")
      ->capture_default_str();
  auto* hold = app.add_subcommand("hold", "Peak RSS of dtxd holding unfinished sagas");
  common(hold);
  hold->add_option("--count", o.count, "Sagas to hold (default 100000)");
  hold->add_option("--observe-seconds", o.observe_seconds,
                   "How long to keep them held (and polled) before reading the peak")
      ->capture_default_str();
  auto* finished = app.add_subcommand("finished", "RSS of dtxd while finished sagas accumulate");
  common(finished);
  finished->add_option("--count", o.count, "Sagas to run (default 1000000)");
  finished->add_option("--report-seconds", o.report_seconds, "Reporting interval")
      ->capture_default_str();
  auto* transfer = app.add_subcommand(
      "transfer", "The bank example's transfer with and without dtx (needs running services)");
  common(transfer);
  transfer->add_option("--bank", o.bank_url, "Base URL of the initiating bank-service")->required();
  transfer->add_option("--modes", o.transfer_modes, "Comma-separated: direct,saga,tcc,xa,msg")
      ->capture_default_str();
  transfer->add_option("--accounts", o.accounts, "Accounts per bank (as seeded)")
      ->capture_default_str();
  transfer->add_option("--seconds", o.seconds, "Measured duration per mode")->capture_default_str();
  transfer->add_option("--warmup-seconds", o.warmup_seconds, "Unmeasured transfers per mode first")
      ->capture_default_str();
  dtx::bench::KvOptions kv_options;
  const dtx::bench::KvCommands kv = dtx::bench::AddKvCommands(app, kv_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (kv.bench->parsed() || kv.failover->parsed() || kv.load->parsed()) {
    const auto mode = kv.bench->parsed()      ? dtx::bench::KvMode::kBench
                      : kv.failover->parsed() ? dtx::bench::KvMode::kFailover
                                              : dtx::bench::KvMode::kLoad;
    auto plan = dtx::bench::ValidateKvOptions(mode, kv_options);
    if (!plan.ok()) {
      std::fprintf(stderr, "dtxbench: %s\n", plan.status().message().c_str());
      return 2;
    }
    return dtx::bench::RunKv(*plan, kv_options, dtx::bench::CommandLine(argc, argv));
  }
  o.mode = saga->parsed()       ? "saga"
           : hold->parsed()     ? "hold"
           : transfer->parsed() ? "transfer"
                                : "finished";
  if (o.mode == "transfer" && (o.accounts < 1 || o.dtxd_url.empty())) {
    std::fprintf(stderr, "dtxbench transfer: --dtxd URL and a positive --accounts are required\n");
    return 2;
  }
  if (o.concurrency < 1 || o.threads < 1 || o.participant_threads < 1 || o.seconds <= 0) {
    std::fprintf(stderr, "dtxbench: --concurrency, --threads and --seconds must be positive\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);

  int rc;
  {
    dtx::bench::NoopParticipant participant(o.participant_threads);
    dtx::bench::Dtxd dtxd;
    dtxd.Start(o);
    if (o.mode == "saga") {
      rc = dtx::bench::RunSaga(o, dtxd, participant);
    } else if (o.mode == "transfer") {
      rc = dtx::bench::RunTransfer(o, dtxd);
    } else if (o.mode == "hold") {
      rc = dtx::bench::RunHold(o, dtxd, participant);
    } else {
      rc = dtx::bench::RunFinished(o, dtxd, participant);
    }
  }
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  std::printf("command: %s\n", command.c_str());
  return rc;
}
