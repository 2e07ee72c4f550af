#include "dtxbench/util.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <utility>

namespace dtx::bench {

ProcMemory ReadMemory(int pid) {
  ProcMemory m;
  if (pid <= 0) return m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss_kb = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) m.hwm_kb = std::atol(line.c_str() + 6);
  }
  return m;
}

std::string Mb(long kb) {
  if (kb < 0) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(kb) / 1024.0);
  return buf;
}

runtime::HttpCallResult BlockingHttp::Call(const std::string& method, const std::string& url,
                                           std::string body, int64_t timeout_ms) {
  runtime::HttpCallSpec spec;
  spec.method = method;
  spec.url = url;
  spec.body = std::move(body);
  spec.timeout_ms = timeout_ms;
  std::optional<runtime::HttpCallResult> result;
  client_.Call(std::move(spec), [&result](runtime::HttpCallResult r) { result = std::move(r); });
  io_.restart();
  // Bounded by the call's own timeout: the callback always runs.
  while (!result && io_.run_one() > 0) {
  }
  if (!result) return {Internal("the HTTP client never completed the call"), 0, ""};
  return *result;
}

}  // namespace dtx::bench
