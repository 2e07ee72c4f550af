// Deterministic simulation of the coordinator engine (FoundationDB style).
//
// One run is a pure function of SimOptions (above all the seed): virtual time in milliseconds,
// one event queue ordered by (time, sequence), no threads, no real clock, no sleeps. The run
// drives a real dtx::coord::Engine exactly by its contract (persist a Ready's writes as one
// batch, only then issue its calls and replies and Advance()), with:
//   - a simulated disk: the durable record (def + latest state) per gid; a batch becomes durable
//     after a random delay; a crash loses the batch in flight;
//   - coordinator crashes at random moments (also inside the persist window and right after a
//     batch became durable but before its calls went out), a random downtime, then a new Engine
//     with a fresh seed Recover()ed from the durable records;
//   - participants with sub-transaction barrier semantics (idempotent actions, empty
//     compensation, refusal of hanging actions) and per-request faults: business FAILURE for
//     branches chosen to fail, ONGOING, HTTP 500, lost replies, late replies (after the call's
//     timeout), duplicate replies, network delay, requests that arrive after the timeout;
//   - clients submitting sagas (sequential and concurrent with random acyclic orders, some with
//     wait_result, timeout_to_fail, retry_limit, retry_interval, request_timeout, branch_headers)
//     and two-phase messages (prepare, a local transaction that commits or not, submit or a client
//     that dies before submitting, check-back answered from the simulated local database);
//   - clients running TCC and XA transactions with 1..4 branches: prepare, then per branch
//     registerBranch followed by the branch's try (modelled at the simulated participant: it
//     reserves under (gid, branch_id) unless that branch was already cancelled, the barrier's
//     hanging rule), then submit; a failed try makes the client abort; some clients die before
//     submitting (the engine's prepared timeout aborts them); some try to register one more
//     branch after the decision. Participants answer confirm/cancel (commit/rollback) with the
//     same fault menu plus business FAILURE answers, which the engine must retry.
//   Bodies go through ParseTxnRequest(). A request whose reply a crash lost (or, for TCC/XA,
//   the network lost) is resubmitted unchanged.
// A fault phase (faults and crashes on) is followed by a quiet phase (no new faults, no crashes;
// an operator calls resetNextCronTime periodically) that runs until every transaction is
// finished and nothing is in flight, or until a virtual deadline.
//
// Invariants checked on every run (violations are reported, never thrown):
//   1. every transaction a client created (SUCCESS reply to prepare/submit, or durably stored)
//      ends succeed or failed;
//   2. a saga that ended succeed has every action applied exactly once and no compensation;
//   3. a saga that ended failed has every applied action compensated (net effect zero);
//   4. a compensation that applies follows a durable abort decision and an applied action
//      (otherwise it must be an empty compensation); compensations respect reverse order/orders;
//   5. a msg that was submitted or confirmed by check-back has every step applied exactly once;
//      a msg whose local transaction did not commit has no step applied;
//   6. no saga action applies after the saga was recorded failed (or before it was durable),
//      except for steps without a compensate URL: nothing can refuse their late actions;
//   7. durable statuses only move forward (prepared->submitted->(succeed|aborting->failed),
//      prepared->failed for msg); step results never change once recorded; defs never change;
//   8. every request answered SUCCESS is durable when the reply leaves, and stays durable;
//   9. every tcc/xa transaction ends succeed or failed; succeed => every registered branch
//      confirmed (committed) exactly once in effect and none cancelled; failed => every branch
//      whose try applied is cancelled (rolled back) exactly once and none confirmed; never a mix
//      within one transaction; submit acknowledged => succeed, abort acknowledged => failed;
//  10. no confirm/commit arrives while the durable status is prepared or aborting, no
//      cancel/rollback while it is prepared or submitted;
//  11. a registerBranch answered SUCCESS is durable when the reply leaves and is never lost
//      across crashes; durable branches are never dropped or changed, only their status moves
//      prepared -> succeed; a branch registered after the decision is refused and never durable.
// Plus protocol checks: calls carry gid/trans_type/branch_id/op, the step's payload and the
// branch_headers; every request gets exactly one reply; wait_result answers match the outcome;
// saga actions respect sequential order / orders; the run does not livelock.
//
// Thread-safety: RunCoordSim() is reentrant; concurrent runs share nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/clock.h"

namespace dtx::sim {

struct SimOptions {
  uint64_t seed = 1;
  int txns = 20;  // transactions the clients create (sagas and msgs, mixed)
  // TCC and XA transactions, in addition to `txns`. Their workload comes from a separate random
  // stream, so the saga/msg workload of a seed does not depend on it; with 0 a run is exactly
  // what it was before TCC/XA existed.
  int branch_txns = 8;
  bool crashes = true;  // coordinator crash-restarts during the fault phase
  bool faults = true;   // participant and network faults during the fault phase
  bool trace = false;   // record the human-readable timeline in SimReport::trace
  TimeMs fault_phase_ms = 8'000;
  // Virtual-time bound of the whole run; unfinished work at this point is a violation.
  TimeMs deadline_ms = 180'000;
  int max_crashes = 5;

  // Deliberately broken variants, to prove the checker catches real bugs. Never set them
  // outside tests.
  bool break_persist_before_send = false;  // calls and replies leave before the batch is durable
  bool break_drop_writes = false;          // the disk silently drops some writes
  bool break_no_barrier = false;           // participants apply every request (no barrier)
  bool break_register_before_persist = false;  // registerBranch answered before it is durable
};

struct SimStats {
  int sagas = 0;
  int msgs = 0;
  int tccs = 0;
  int xas = 0;
  int branch_txns_succeeded = 0;  // tcc/xa among `succeeded`
  int branch_txns_failed = 0;     // tcc/xa among `failed`
  int branches_registered = 0;    // registerBranch requests the clients saw answered SUCCESS
  int succeeded = 0;              // final status in the durable store at the end
  int failed = 0;
  int unfinished = 0;
  int crashes = 0;
  int batches = 0;          // Ready batches made durable
  int branch_calls = 0;     // calls dispatched to participants (incl. check-backs)
  int faults = 0;           // injected network faults (500, lost/late/twice replies, slow requests)
  int client_requests = 0;  // API requests sent (incl. resubmits)
  int alerts = 0;
  uint64_t events = 0;
  TimeMs end_time_ms = 0;
};

struct SimReport {
  uint64_t seed = 0;
  // "gid: explanation" (or "run: explanation"), deduplicated, in discovery order.
  std::vector<std::string> violations;
  // "t=120ms engine#2 call 01/compensate saga-7", ...; empty unless SimOptions::trace.
  std::vector<std::string> trace;
  SimStats stats;
  bool ok() const { return violations.empty(); }
};

// Runs one simulation. Never throws on engine misbehaviour: everything wrong ends up in
// `violations`.
SimReport RunCoordSim(const SimOptions& options);

// One line of run statistics, e.g. "seed 7: 28 txns (12 saga, 8 msg, 5 tcc, 3 xa) ...".
std::string FormatStats(const SimReport& report);

// The command that replays `options`' seed with a trace, e.g. "dtxsim coord --seed 7 --trace".
std::string ReplayCommand(const SimOptions& options);

}  // namespace dtx::sim
