#include "coord/txn.h"

#include <cstdio>

namespace dtx::coord {

std::string_view TransTypeName(TransType t) {
  switch (t) {
    case TransType::kSaga:
      return "saga";
    case TransType::kMsg:
      return "msg";
    case TransType::kTcc:
      return "tcc";
    case TransType::kXa:
      return "xa";
  }
  return "unknown";
}

std::optional<TransType> ParseTransType(std::string_view s) {
  if (s == "saga") return TransType::kSaga;
  if (s == "msg") return TransType::kMsg;
  if (s == "tcc") return TransType::kTcc;
  if (s == "xa") return TransType::kXa;
  if (s == "tcc") return TransType::kTcc;
  if (s == "xa") return TransType::kXa;
  return std::nullopt;
}

std::string_view GlobalStatusName(GlobalStatus s) {
  switch (s) {
    case GlobalStatus::kPrepared:
      return "prepared";
    case GlobalStatus::kSubmitted:
      return "submitted";
    case GlobalStatus::kAborting:
      return "aborting";
    case GlobalStatus::kSucceed:
      return "succeed";
    case GlobalStatus::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<GlobalStatus> ParseGlobalStatus(std::string_view s) {
  for (auto st : {GlobalStatus::kPrepared, GlobalStatus::kSubmitted, GlobalStatus::kAborting,
                  GlobalStatus::kSucceed, GlobalStatus::kFailed}) {
    if (GlobalStatusName(st) == s) return st;
  }
  return std::nullopt;
}

std::string_view BranchStatusName(BranchStatus s) {
  switch (s) {
    case BranchStatus::kPrepared:
      return "prepared";
    case BranchStatus::kSucceed:
      return "succeed";
    case BranchStatus::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<BranchStatus> ParseBranchStatus(std::string_view s) {
  for (auto st : {BranchStatus::kPrepared, BranchStatus::kSucceed, BranchStatus::kFailed}) {
    if (BranchStatusName(st) == s) return st;
  }
  return std::nullopt;
}

std::string BranchId(size_t step_index) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%02zu", step_index + 1);
  return buf;
}

}  // namespace dtx::coord
