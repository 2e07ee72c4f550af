// Closed-loop HTTP load for dtxbench: `concurrency` workers spread over `threads` client lanes
// (each lane one io_context, one thread and one runtime::HttpClient); every worker sends its next
// request as soon as the previous one completes, until a deadline or a request count is reached.
//
// Thread-safety: RunLoad() blocks the caller; the callbacks in LoadSpec are called from the lane
// threads concurrently and must be thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/http.h"

namespace dtx::bench {

struct LoadSpec {
  int threads = 2;
  int concurrency = 64;
  // Stop issuing at the deadline (if set) or once `count` requests were issued.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  uint64_t count = UINT64_MAX;
  // Builds request number `ticket` (0, 1, ...).
  std::function<runtime::HttpCallSpec(uint64_t ticket)> make;
  // Whether a completed call counts as a success (default: HTTP 200).
  std::function<bool(const runtime::HttpCallResult&)> ok;
  // Called with the number of completed calls after every completion. Optional.
  std::function<void(uint64_t completed)> on_complete;
};

struct LoadResult {
  uint64_t ok = 0;
  uint64_t errors = 0;
  double seconds = 0;                  // from the first request to the last completion
  std::vector<uint32_t> latencies_us;  // one per completed call, unordered
  std::string first_error;             // a sample failure, for the report

  double rate() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

// REQUIRES: threads >= 1, concurrency >= 1, make set, and a deadline or a finite count.
LoadResult RunLoad(const LoadSpec& spec);

// The q-quantile (0..1) of `values` (microseconds) in milliseconds; reorders `values`. 0 when
// empty.
double PercentileMs(std::vector<uint32_t>& values, double q);

}  // namespace dtx::bench
