// dtxsim: runs the deterministic coordinator simulation and prints its timeline and verdict.
//
//   dtxsim coord --seed N [--txns K] [--branch-txns K] [--trace] [--no-crashes] [--no-faults]
//   dtxsim coord --seeds A..B [--txns K] [--verbose]
//   dtxsim raft --seed N [--nodes 3|5] [--trace] [--no-crashes] [--no-faults] [--snapshot-every K]
//   dtxsim raft --seeds A..B [--verbose]
//
// Exit status: 0 all invariants held, 1 some run violated an invariant, 2 bad arguments.
#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "sim/coord_sim.h"
#include "sim/raft_sim.h"

namespace {

constexpr uint64_t kMaxRange = 10'000'000;

std::optional<uint64_t> ParseU64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// "A..B" with A <= B.
std::optional<std::pair<uint64_t, uint64_t>> ParseRange(std::string_view s) {
  size_t dots = s.find("..");
  if (dots == std::string_view::npos) return std::nullopt;
  auto a = ParseU64(s.substr(0, dots));
  auto b = ParseU64(s.substr(dots + 2));
  if (!a || !b || *a > *b) return std::nullopt;
  return std::make_pair(*a, *b);
}

// Runs one seed (printing its trace) or every seed of "A..B" (the stats of each with `verbose`).
// `run(seed)` returns a report with `seed`, `trace` and `ok()`; `stats` formats its statistics;
// `violations` prints what it broke. Returns the exit status.
template <typename Report>
int RunSeeds(std::optional<uint64_t> seed, const std::string& seeds, bool verbose,
             const std::function<Report(uint64_t)>& run,
             const std::function<std::string(const Report&)>& stats,
             const std::function<void(const Report&)>& violations) {
  if (seed) {
    Report r = run(*seed);
    for (const auto& line : r.trace) std::cout << line << "\n";
    std::cout << stats(r) << "\n";
    if (r.ok()) {
      std::cout << "seed " << r.seed << ": OK, all invariants hold\n";
      return 0;
    }
    violations(r);
    return 1;
  }
  auto range = ParseRange(seeds);
  if (!range) {
    std::cerr << "dtxsim: --seeds wants A..B with unsigned integers A <= B, got '" << seeds
              << "'\n";
    return 2;
  }
  if (range->second - range->first >= kMaxRange) {
    std::cerr << "dtxsim: --seeds covers more than " << kMaxRange << " seeds\n";
    return 2;
  }
  uint64_t failed = 0;
  uint64_t runs = 0;
  for (uint64_t s = range->first;; ++s) {
    Report r = run(s);
    ++runs;
    if (verbose) std::cout << stats(r) << "\n";
    if (!r.ok()) {
      ++failed;
      violations(r);
    }
    if (s == range->second) break;
  }
  std::cout << "seeds " << range->first << ".." << range->second << ": " << runs << " runs, "
            << failed << " with violations\n";
  return failed == 0 ? 0 : 1;
}

void PrintViolations(const dtx::sim::SimOptions& o, const dtx::sim::SimReport& r) {
  std::cout << "seed " << r.seed << ": " << r.violations.size() << " invariant violation(s)\n";
  for (const auto& v : r.violations) std::cout << "  " << v << "\n";
  std::cout << "  replay: " << dtx::sim::ReplayCommand(o) << "\n";
}

int RunRaft(dtx::sim::RaftSimOptions opts, std::optional<uint64_t> seed, const std::string& seeds,
            bool verbose) {
  auto print_violations = [&](const dtx::sim::RaftSimReport& r) {
    std::cout << "seed " << r.seed << ": " << r.violations.size() << " invariant violation(s)\n";
    for (const auto& v : r.violations) std::cout << "  " << v << "\n";
    dtx::sim::RaftSimOptions replay = opts;
    replay.seed = r.seed;
    std::cout << "  replay: " << dtx::sim::RaftReplayCommand(replay) << "\n";
  };
  return RunSeeds<dtx::sim::RaftSimReport>(
      seed, seeds, verbose,
      [&](uint64_t s) {
        opts.seed = s;
        return dtx::sim::RunRaftSim(opts);
      },
      dtx::sim::FormatRaftStats, print_violations);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dtxsim: deterministic simulations of dtx protocols"};
  app.require_subcommand(1);

  CLI::App* coord = app.add_subcommand(
      "coord", "simulate the transaction coordinator (sagas and msgs, faults, crash-restarts)");
  std::optional<uint64_t> seed;
  std::string seeds;
  dtx::sim::SimOptions opts;
  bool no_crashes = false;
  bool no_faults = false;
  bool verbose = false;
  auto* seed_opt = coord->add_option("--seed", seed, "run this one seed");
  auto* seeds_opt = coord->add_option("--seeds", seeds, "run the seeds A..B (inclusive)");
  seed_opt->excludes(seeds_opt);
  coord->add_option("--txns", opts.txns, "transactions per run")
      ->check(CLI::Range(0, 10'000))
      ->capture_default_str();
  coord->add_option("--branch-txns", opts.branch_txns, "TCC and XA transactions per run (extra)")
      ->check(CLI::Range(0, 10'000))
      ->capture_default_str();
  coord->add_option("--fault-phase-ms", opts.fault_phase_ms, "virtual ms of faults and crashes")
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}))
      ->capture_default_str();
  coord->add_flag("--trace", opts.trace, "print the timeline (single seed)")->excludes(seeds_opt);
  coord->add_flag("--no-crashes", no_crashes, "no coordinator crash-restarts");
  coord->add_flag("--no-faults", no_faults, "no participant or network faults");
  coord->add_flag("--verbose,-v", verbose, "print statistics of every run");
  coord->add_flag(
      "--break-persist-before-send", opts.break_persist_before_send,
      "deliberately broken driver: calls and replies leave before the batch is durable");
  coord->add_flag("--break-drop-writes", opts.break_drop_writes,
                  "deliberately broken disk: some durable writes are silently dropped");
  coord->add_flag("--break-no-barrier", opts.break_no_barrier,
                  "deliberately broken participants: no sub-transaction barrier");
  coord->add_flag("--break-register-before-persist", opts.break_register_before_persist,
                  "deliberately broken driver: registerBranch answered before it is durable");

  CLI::App* raft = app.add_subcommand(
      "raft", "simulate a Raft cluster over the WAL (network faults, partitions, crashes)");
  std::optional<uint64_t> raft_seed;
  std::string raft_seeds;
  dtx::sim::RaftSimOptions raft_opts;
  bool raft_no_crashes = false;
  bool raft_no_faults = false;
  bool raft_verbose = false;
  bool raft_break_unsynced = false;
  bool raft_break_local_reads = false;
  bool raft_break_snapshots = false;
  bool raft_break_reuse_ids = false;
  auto* raft_seed_opt = raft->add_option("--seed", raft_seed, "run this one seed");
  auto* raft_seeds_opt = raft->add_option("--seeds", raft_seeds, "run the seeds A..B (inclusive)");
  raft_seed_opt->excludes(raft_seeds_opt);
  raft->add_option("--nodes", raft_opts.nodes, "cluster size, 3 or 5 (default: from the seed)")
      ->check(CLI::IsMember({3, 5}));
  raft->add_option("--clients", raft_opts.clients, "concurrent clients")
      ->check(CLI::Range(1, 32))
      ->capture_default_str();
  int64_t raft_fault_ms = raft_opts.fault_phase_us / 1000;
  raft->add_option("--fault-phase-ms", raft_fault_ms, "virtual ms of faults and crashes")
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}))
      ->capture_default_str();
  raft->add_flag("--trace", raft_opts.trace, "print the timeline (single seed)")
      ->excludes(raft_seeds_opt);
  raft->add_flag("--no-crashes", raft_no_crashes, "no node crash-restarts");
  raft->add_flag("--no-faults", raft_no_faults, "no network faults or partitions");
  raft->add_flag("--lease-reads", raft_opts.lease_reads,
                 "gets answered from the leader's lease instead of a heartbeat round");
  raft->add_flag("--membership-changes", raft_opts.membership_changes,
                 "the workload also adds, promotes and removes nodes (one server at a time)");
  raft->add_flag("--leader-parallel-persist", raft_opts.leader_parallel_persist,
                 "leaders send appends before their own disk write (as dtxkv runs)");
  raft->add_option("--snapshot-every", raft_opts.snapshot_every,
                   "snapshot and compact every N applied entries (0: never; default: from the "
                   "seed)")
      ->check(CLI::Range(0, 1'000'000));
  raft->add_flag("--verbose,-v", raft_verbose, "print statistics of every run");
  auto* unsynced_opt =
      raft->add_flag("--break-unsynced-appends", raft_break_unsynced,
                     "deliberately broken storage: entries acknowledged without a sync");
  auto* local_reads_opt =
      raft->add_flag("--break-local-reads", raft_break_local_reads,
                     "deliberately broken reads: a leader answers gets locally, without ReadIndex")
          ->excludes(unsynced_opt);
  auto* snapshots_opt =
      raft->add_flag("--break-snapshots", raft_break_snapshots,
                     "deliberately broken snapshots: the image loses the first key")
          ->excludes(unsynced_opt)
          ->excludes(local_reads_opt);
  raft->add_flag("--break-reuse-removed-ids", raft_break_reuse_ids,
                 "deliberately broken membership changes (with --membership-changes): a removed "
                 "node rejoins under its old id with a wiped disk")
      ->excludes(unsynced_opt)
      ->excludes(local_reads_opt)
      ->excludes(snapshots_opt);

  try {
    app.parse(argc, argv);
    if (raft->parsed()) {
      if (!raft_seed && raft_seeds.empty()) {
        throw CLI::ValidationError("raft", "give --seed N or --seeds A..B");
      }
    } else if (!seed && seeds.empty()) {
      throw CLI::ValidationError("coord", "give --seed N or --seeds A..B");
    }
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "dtxsim: " << e.what() << "\n"
              << "run 'dtxsim coord --help' for usage\n";
    return 2;
  }
  if (raft->parsed()) {
    raft_opts.fault_phase_us = raft_fault_ms * 1000;
    raft_opts.crashes = !raft_no_crashes;
    raft_opts.faults = !raft_no_faults;
    if (raft_break_unsynced) raft_opts.break_mode = dtx::sim::RaftBreak::kUnsyncedAppends;
    if (raft_break_local_reads) raft_opts.break_mode = dtx::sim::RaftBreak::kLocalReads;
    if (raft_break_snapshots) raft_opts.break_mode = dtx::sim::RaftBreak::kBadSnapshots;
    if (raft_break_reuse_ids) raft_opts.break_mode = dtx::sim::RaftBreak::kReuseRemovedIds;
    return RunRaft(raft_opts, raft_seed, raft_seeds, raft_verbose);
  }
  opts.crashes = !no_crashes;
  opts.faults = !no_faults;

  return RunSeeds<dtx::sim::SimReport>(
      seed, seeds, verbose,
      [&](uint64_t s) {
        opts.seed = s;
        return dtx::sim::RunCoordSim(opts);
      },
      dtx::sim::FormatStats, [&](const dtx::sim::SimReport& r) { PrintViolations(opts, r); });
}
