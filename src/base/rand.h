// Seeded, reproducible randomness (xoshiro256** seeded through splitmix64). Every random
// choice in a protocol core or the simulator comes from one of these, so a run is a pure
// function of its seed.
//
// Thread-safety: not thread-safe; give each thread or core its own instance.
#pragma once

#include <cstdint>

namespace dtx {

class Rand {
 public:
  explicit Rand(uint64_t seed);

  uint64_t Next();
  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n);
  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  int64_t Range(int64_t lo, int64_t hi);
  // True with probability p (clamped to [0, 1]).
  bool Chance(double p);
  // Uniform in [0, 1).
  double NextDouble();

 private:
  uint64_t s_[4];
};

}  // namespace dtx
