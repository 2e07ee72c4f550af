#include <utility>

#include "dtxbench/load.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

namespace dtx::bench {
namespace {

using Steady = std::chrono::steady_clock;

struct Shared {
  explicit Shared(const LoadSpec& s) : spec(s) {}
  const LoadSpec& spec;
  std::atomic<uint64_t> next_ticket{0};
  std::atomic<uint64_t> completed{0};
  std::mutex mu;
  std::string first_error;
};

// One io_context, its thread, and the workers it runs.
class Lane {
 public:
  Lane(Shared& shared, int workers)
      : shared_(shared), workers_left_(workers), work_(boost::asio::make_work_guard(io_)) {
    client_ = std::make_unique<runtime::HttpClient>(io_);
    latencies_.reserve(1 << 16);
  }

  void Start() {
    for (int i = workers_left_; i > 0; --i) boost::asio::post(io_, [this] { Next(); });
    if (workers_left_ == 0) Finish();
    thread_ = std::thread([this] { io_.run(); });
  }

  void Join() { thread_.join(); }

  uint64_t ok = 0;
  uint64_t errors = 0;
  std::vector<uint32_t> latencies_;
  Steady::time_point last_completion{};

 private:
  // Runs on the lane's thread: issues the next request or retires the worker.
  void Next() {
    const LoadSpec& spec = shared_.spec;
    if (spec.deadline && Steady::now() >= *spec.deadline) return Retire();
    const uint64_t ticket = shared_.next_ticket.fetch_add(1, std::memory_order_relaxed);
    if (ticket >= spec.count) return Retire();
    const auto start = Steady::now();
    client_->Call(spec.make(ticket), [this, start](runtime::HttpCallResult r) {
      const auto end = Steady::now();
      latencies_.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(end - start).count()));
      last_completion = end;
      const bool good =
          shared_.spec.ok ? shared_.spec.ok(r) : (r.status.ok() && r.http_status == 200);
      if (good) {
        ++ok;
      } else {
        ++errors;
        std::lock_guard lock(shared_.mu);
        if (shared_.first_error.empty()) {
          shared_.first_error =
              r.status.ok() ? "HTTP " + std::to_string(r.http_status) + ": " + r.body.substr(0, 200)
                            : r.status.ToString();
        }
      }
      const uint64_t done = shared_.completed.fetch_add(1, std::memory_order_relaxed) + 1;
      if (shared_.spec.on_complete) shared_.spec.on_complete(done);
      Next();
    });
  }

  void Retire() {
    if (--workers_left_ == 0) Finish();
  }

  // Closes the client's connections on this thread; run() returns once nothing is left.
  void Finish() {
    boost::asio::post(io_, [this] {
      client_.reset();
      work_.reset();
    });
  }

  Shared& shared_;
  int workers_left_;
  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<runtime::HttpClient> client_;
  std::thread thread_;
};

}  // namespace

LoadResult RunLoad(const LoadSpec& spec) {
  Shared shared(spec);
  const int threads = std::max(1, spec.threads);
  const int concurrency = std::max(1, spec.concurrency);
  std::vector<std::unique_ptr<Lane>> lanes;
  for (int i = 0; i < threads; ++i) {
    const int workers = concurrency / threads + (i < concurrency % threads ? 1 : 0);
    lanes.push_back(std::make_unique<Lane>(shared, workers));
  }
  const auto start = Steady::now();
  for (auto& lane : lanes) lane->Start();
  LoadResult result;
  Steady::time_point last = start;
  for (auto& lane : lanes) {
    lane->Join();
    result.ok += lane->ok;
    result.errors += lane->errors;
    result.latencies_us.insert(result.latencies_us.end(), lane->latencies_.begin(),
                               lane->latencies_.end());
    last = std::max(last, lane->last_completion);
  }
  result.seconds = std::chrono::duration<double>(last - start).count();
  result.first_error = shared.first_error;
  return result;
}

double PercentileMs(std::vector<uint32_t>& values, double q) {
  if (values.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(q * values.size()));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
  return values[index] / 1000.0;
}

}  // namespace dtx::bench
