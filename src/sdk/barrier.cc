#include "dtx/barrier.h"

#include <array>
#include <cstdio>
#include <exception>

namespace dtx::sdk {
namespace {

constexpr std::array<std::string_view, 8> kKnownOps = {
    kOpAction, kOpCompensate, kOpTry, kOpConfirm, kOpCancel, kOpCommit, kOpRollback, kOpMsg};

// Which ops each transaction type sends to a branch (DTM). Workflow may call any branch op.
bool OpAllowed(std::string_view trans_type, std::string_view op) {
  if (trans_type == kTransSaga) return op == kOpAction || op == kOpCompensate;
  if (trans_type == kTransTcc) return op == kOpTry || op == kOpConfirm || op == kOpCancel;
  if (trans_type == kTransMsg) return op == kOpAction || op == kOpMsg;
  if (trans_type == kTransXa) return op == kOpAction || op == kOpCommit || op == kOpRollback;
  return trans_type == kTransWorkflow && op != kOpMsg;
}

bool KnownTransType(std::string_view t) {
  return t == kTransSaga || t == kTransTcc || t == kTransMsg || t == kTransXa ||
         t == kTransWorkflow;
}

Status CheckValue(std::string_view name, std::string_view value, size_t max_len) {
  if (value.empty())
    return InvalidArgument("branch call: parameter '" + std::string(name) + "' is empty");
  if (value.size() > max_len) {
    return InvalidArgument("branch call: parameter '" + std::string(name) + "' is longer than " +
                           std::to_string(max_len) + " bytes");
  }
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return InvalidArgument("branch call: parameter '" + std::string(name) +
                             "' contains a control character");
    }
  }
  return Status::Ok();
}

// Runs business, converting an escaping exception into a Status so none leaves the SDK.
Status RunBusiness(const BusinessFn& business, LocalTx& tx) {
  if (!business) return InvalidArgument("barrier: business function is empty");
  try {
    return business(tx);
  } catch (const std::exception& e) {
    return Internal(std::string("barrier: business threw: ") + e.what());
  } catch (...) {
    return Internal("barrier: business threw a non-standard exception");
  }
}

// Runs business in tx and commits on OK; otherwise rolls back and returns the business status.
Status RunAndFinish(LocalTx& tx, const BusinessFn& business) {
  Status s = RunBusiness(business, tx);
  if (!s.ok()) {
    // The business error is what the caller needs; a rollback failure leaves nothing applied.
    (void)tx.Rollback();
    return s;
  }
  return tx.Commit();
}

BarrierRow MsgRow(std::string_view gid, std::string_view reason) {
  return BarrierRow{std::string(kTransMsg), std::string(gid),           std::string(kMsgBranchId),
                    std::string(kOpMsg),    std::string(kMsgBarrierId), std::string(reason)};
}

}  // namespace

Result<BranchCallInfo> BranchCallInfo::FromQuery(
    const std::vector<std::pair<std::string, std::string>>& query) {
  std::optional<std::string> values[4];
  static constexpr std::string_view kNames[4] = {"trans_type", "gid", "branch_id", "op"};
  for (const auto& [key, value] : query) {
    for (int i = 0; i < 4; ++i) {
      if (key != kNames[i]) continue;
      if (values[i].has_value()) {
        return InvalidArgument("branch call: parameter '" + key + "' is given more than once");
      }
      values[i] = value;
    }
  }
  for (int i = 0; i < 4; ++i) {
    if (!values[i].has_value()) {
      return InvalidArgument("branch call: parameter '" + std::string(kNames[i]) + "' is missing");
    }
  }
  BranchCallInfo info{*values[0], *values[1], *values[2], *values[3]};
  DTX_RETURN_IF_ERROR(CheckValue("trans_type", info.trans_type, 32));
  DTX_RETURN_IF_ERROR(CheckValue("gid", info.gid, kMaxGidLength));
  DTX_RETURN_IF_ERROR(CheckValue("branch_id", info.branch_id, kMaxBranchIdLength));
  DTX_RETURN_IF_ERROR(CheckValue("op", info.op, 32));
  if (!KnownTransType(info.trans_type)) {
    return InvalidArgument("branch call: unknown trans_type '" + info.trans_type + "'");
  }
  bool known_op = false;
  for (auto op : kKnownOps) known_op = known_op || op == info.op;
  if (!known_op) return InvalidArgument("branch call: unknown op '" + info.op + "'");
  if (!OpAllowed(info.trans_type, info.op)) {
    return InvalidArgument("branch call: op '" + info.op + "' is not an op of trans_type '" +
                           info.trans_type + "'");
  }
  return info;
}

std::string_view OriginOp(std::string_view op) {
  if (op == kOpCancel) return kOpTry;
  if (op == kOpCompensate || op == kOpRollback) return kOpAction;
  return {};
}

std::string Barrier::NextBarrierId() {
  ++barrier_counter_;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%02d", barrier_counter_);
  return buf;
}

Status Barrier::Call(BarrierStore& store, const BusinessFn& business) {
  const std::string bid = NextBarrierId();
  auto begun = store.Begin();
  if (!begun.ok()) return begun.status();
  LocalTx& tx = **begun;

  bool origin_inserted = false;
  std::string_view origin = OriginOp(info_.op);
  if (!origin.empty()) {
    auto r = tx.InsertBarrierIgnore(BarrierRow{info_.trans_type, info_.gid, info_.branch_id,
                                               std::string(origin), bid, info_.op});
    if (!r.ok()) return r.status();
    origin_inserted = *r;
  }
  auto current = tx.InsertBarrierIgnore(
      BarrierRow{info_.trans_type, info_.gid, info_.branch_id, info_.op, bid, info_.op});
  if (!current.ok()) return current.status();

  if (origin_inserted) return tx.Commit();  // Empty compensation: the record is the origin row.
  if (!*current) {
    auto reason = tx.BarrierReason(info_.gid, info_.branch_id, info_.op, bid);
    if (!reason.ok()) return reason.status();
    // The row exists; if a compensation wrote it (reason = cancel/compensate/rollback), this op is
    // a try/action arriving after its compensation: a hanging call.
    if (reason->has_value() && **reason != info_.op) {
      (void)tx.Rollback();
      return Aborted("barrier: hanging " + info_.op + " of gid '" + info_.gid + "' branch '" +
                     info_.branch_id + "': its " + **reason +
                     " already ran; refusing without running the business");
    }
    return tx.Commit();  // Duplicate: the business already ran and committed.
  }
  return RunAndFinish(tx, business);
}

Status CallMsgLocal(BarrierStore& store, std::string_view gid, const BusinessFn& business) {
  if (gid.empty()) return InvalidArgument("msg local transaction: gid is empty");
  auto begun = store.Begin();
  if (!begun.ok()) return begun.status();
  LocalTx& tx = **begun;
  auto inserted = tx.InsertBarrierIgnore(MsgRow(gid, kOpMsg));
  if (!inserted.ok()) return inserted.status();
  if (!*inserted) {
    auto reason = tx.BarrierReason(gid, kMsgBranchId, kOpMsg, kMsgBarrierId);
    (void)tx.Rollback();
    if (!reason.ok()) return reason.status();
    if (reason->has_value() && **reason == kOpRollback) {
      return Aborted(
          "msg '" + std::string(gid) +
          "': query_prepared already answered FAILURE; the local transaction is refused");
    }
    return AlreadyExists("msg '" + std::string(gid) + "': the local transaction already committed");
  }
  return RunAndFinish(tx, business);
}

Status QueryPrepared(BarrierStore& store, std::string_view gid) {
  if (gid.empty()) return InvalidArgument("query_prepared: gid is empty");
  auto begun = store.Begin();
  if (!begun.ok()) return begun.status();
  LocalTx& tx = **begun;
  auto inserted = tx.InsertBarrierIgnore(MsgRow(gid, kOpRollback));
  if (!inserted.ok()) return inserted.status();
  auto reason = tx.BarrierReason(gid, kMsgBranchId, kOpMsg, kMsgBarrierId);
  if (!reason.ok()) return reason.status();
  // The rollback row must be durable before FAILURE is answered, or a later local commit could win.
  DTX_RETURN_IF_ERROR(tx.Commit());
  if (!reason->has_value()) {
    return Internal("query_prepared: barrier row of msg '" + std::string(gid) + "' vanished");
  }
  if (**reason == kOpRollback) {
    return Aborted("msg '" + std::string(gid) + "': the local transaction did not commit");
  }
  return Status::Ok();
}

Result<size_t> PurgeBarriers(BarrierStore& store, int64_t older_than_seconds) {
  if (older_than_seconds < 0) {
    return InvalidArgument("purge barriers: age must be >= 0 seconds, got " +
                           std::to_string(older_than_seconds));
  }
  return store.PurgeOlderThan(older_than_seconds);
}

}  // namespace dtx::sdk
