// Injected time. Protocol cores never read a clock: the runtime reads a Clock and passes the
// reading in with each event; the simulator passes virtual time.
//
// Thread-safety: SystemClock is thread-safe; ManualClock is not (drive it from one thread).
#pragma once

#include <cstdint>

namespace dtx {

// Milliseconds since the Unix epoch (wall time) or since simulation start (virtual time).
using TimeMs = int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs NowMs() const = 0;
};

// Wall-clock time from std::chrono::system_clock.
class SystemClock final : public Clock {
 public:
  TimeMs NowMs() const override;
};

// Time that moves only when told to; for tests and simulation.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start = 0) : now_(start) {}
  TimeMs NowMs() const override { return now_; }
  void Advance(TimeMs delta) { now_ += delta; }
  void Set(TimeMs now) { now_ = now; }

 private:
  TimeMs now_;
};

}  // namespace dtx
