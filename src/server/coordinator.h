// dtxd's runtime: drives the I/O-free coord::Engine with real time, a durable TxnStore written by a
// dedicated thread (one synced batch per engine Ready: group commit), a keep-alive HTTP client for
// branch calls, and the DTM-compatible HTTP API.
//
// Thread-safety: everything runs on the io_context passed to Start(), which must be run by exactly
// one thread; the store writer is internal. Stop() must be called on that thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>

#include "base/status.h"
#include "server/config.h"

namespace dtx::server {

class Coordinator {
 public:
  // Opens (or creates) the store in config.data_dir, recovers its unfinished transactions and
  // starts listening. Fails with a clear Status if the directory is unusable or locked by another
  // dtxd, or the address is taken.
  static Result<std::unique_ptr<Coordinator>> Start(boost::asio::io_context& io,
                                                    const Config& config);
  virtual ~Coordinator() = default;

  virtual uint16_t port() const = 0;
  // Stops accepting requests and timers; in-flight store writes finish. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace dtx::server
