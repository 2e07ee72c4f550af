// Small helpers shared by dtxbench's subcommands: a process's memory, and one blocking HTTP call.
//
// Thread-safety: ReadMemory and Mb are thread-safe; a BlockingHttp is used by one thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <string>

#include "runtime/http.h"

namespace dtx::bench {

// Resident and peak resident memory of a process in kB (-1 when unknown).
struct ProcMemory {
  long rss_kb = -1;
  long hwm_kb = -1;
};
ProcMemory ReadMemory(int pid);

// "12.3 MB", or "n/a" for a negative value.
std::string Mb(long kb);

// One blocking HTTP call at a time on a private io_context.
class BlockingHttp {
 public:
  runtime::HttpCallResult Call(const std::string& method, const std::string& url,
                               std::string body = "", int64_t timeout_ms = 5'000);

 private:
  boost::asio::io_context io_{1};
  runtime::HttpClient client_{io_};
};

}  // namespace dtx::bench
