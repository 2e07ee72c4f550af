// libFuzzer target: the DTM request-body parser must never crash, hang or accept an inconsistent
// request, whatever the bytes. The first byte picks the API operation.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "coord/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dtx::coord;
  if (size == 0) return 0;
  auto op = static_cast<ApiOp>(data[0] % 5);
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto parsed = ParseTxnRequest(op, body);
  if (!parsed.ok()) {
    if (parsed.status().code() != dtx::StatusCode::kInvalidArgument) std::abort();
    if (parsed.status().message().empty()) std::abort();
    return 0;
  }
  const TxnDef& def = parsed->def;
  if (op == ApiOp::kRegisterBranch) {
    const RegisteredBranch& b = parsed->branch;
    if (b.branch_id.empty() || !IsValidBranchUrl(b.confirm)) std::abort();
    if (def.type == TransType::kTcc && !IsValidBranchUrl(b.cancel)) std::abort();
    if (def.type != TransType::kTcc && def.type != TransType::kXa) std::abort();
    return 0;
  }
  if (def.gid.empty() || def.steps.size() != def.payloads.size()) std::abort();
  for (const auto& step : def.steps) {
    if (!IsValidBranchUrl(step.action)) std::abort();
    if (!step.compensate.empty() && !IsValidBranchUrl(step.compensate)) std::abort();
  }
  for (const auto& [step, preds] : def.orders) {
    if (step < 0 || static_cast<size_t>(step) >= def.steps.size()) std::abort();
    for (int p : preds) {
      if (p < 0 || static_cast<size_t>(p) >= def.steps.size() || p == step) std::abort();
    }
  }
  return 0;
}
