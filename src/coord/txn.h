// The global-transaction data model shared by the engine, the stores and the HTTP layer.
//
// A transaction is a TxnDef (fixed when the transaction is created) plus a TxnState (changed by
// the engine and persisted after every change). Both are plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"

namespace dtx::coord {

enum class TransType { kSaga, kMsg, kTcc, kXa };
enum class GlobalStatus { kPrepared, kSubmitted, kAborting, kSucceed, kFailed };
enum class BranchStatus { kPrepared, kSucceed, kFailed };

// DTM's wire names: "saga", "msg", "tcc", "xa"; "prepared", "submitted", ...
std::string_view TransTypeName(TransType t);
std::optional<TransType> ParseTransType(std::string_view s);
std::string_view GlobalStatusName(GlobalStatus s);
std::optional<GlobalStatus> ParseGlobalStatus(std::string_view s);
std::string_view BranchStatusName(BranchStatus s);
std::optional<BranchStatus> ParseBranchStatus(std::string_view s);

inline bool IsFinal(GlobalStatus s) {
  return s == GlobalStatus::kSucceed || s == GlobalStatus::kFailed;
}

// One step of a saga (action + compensate) or of a msg (action only).
struct Step {
  std::string action;
  std::string compensate;  // empty for msg; an empty URL counts as an immediate success
  bool operator==(const Step&) const = default;
};

// Per-transaction options as DTM's TransOptions. Zero means "use the server default".
struct TxnOptions {
  bool wait_result = false;
  int64_t timeout_to_fail_s = 0;
  int64_t request_timeout_s = 0;
  int64_t retry_interval_s = 0;
  int64_t retry_limit = 0;
  std::map<std::string, std::string> branch_headers;
  bool operator==(const TxnOptions&) const = default;
};

// Fixed at creation.
struct TxnDef {
  std::string gid;
  TransType type = TransType::kSaga;
  std::vector<Step> steps;
  std::vector<std::string> payloads;  // one per step
  std::string query_prepared;         // msg check-back URL
  std::string custom_data;            // raw, as sent (saga: {"concurrent":..,"orders":..})
  TxnOptions options;
  // Parsed from custom_data for sagas: orders[i] lists the steps that must succeed before step i
  // runs (0-based). concurrent=false means strictly sequential.
  bool concurrent = false;
  std::map<int, std::vector<int>> orders;
  TimeMs create_time = 0;
};

// The outcome of one step's operations, as recorded durably.
struct StepState {
  BranchStatus action = BranchStatus::kPrepared;
  BranchStatus compensate = BranchStatus::kPrepared;
  TimeMs action_finish_time = 0;
  TimeMs compensate_finish_time = 0;
  bool operator==(const StepState&) const = default;
};

// A TCC or XA branch, registered by the application while the transaction is prepared. Its second
// phase is decided by the global status: confirm/commit when submitted, cancel/rollback when
// aborting; `status` is the outcome of that one operation.
struct RegisteredBranch {
  std::string branch_id;
  std::string data;     // body of the second-phase call
  std::string confirm;  // tcc: confirm URL; xa: the branch URL (called with op=commit|rollback)
  std::string cancel;   // tcc: cancel URL; xa: empty
  BranchStatus status = BranchStatus::kPrepared;
  TimeMs finish_time = 0;
  TimeMs register_time = 0;
  bool operator==(const RegisteredBranch&) const = default;
};

// Changes over the transaction's life; persisted after every change.
struct TxnState {
  GlobalStatus status = GlobalStatus::kPrepared;
  std::vector<StepState> steps;            // same length as TxnDef::steps
  std::vector<RegisteredBranch> branches;  // tcc and xa only, in registration order
  std::string rollback_reason;
  TimeMs update_time = 0;
  TimeMs finish_time = 0;    // set when status becomes succeed
  TimeMs rollback_time = 0;  // set when status becomes failed
  bool operator==(const TxnState&) const = default;
};

struct TxnRecord {
  TxnDef def;
  TxnState state;
};

// DTM's branch ids: "01", "02", ... (1-based, at least two digits).
std::string BranchId(size_t step_index);

}  // namespace dtx::coord
