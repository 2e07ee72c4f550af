#include "coord/request.h"

#include <nlohmann/json.hpp>

#include <set>

namespace dtx::coord {
namespace {

using nlohmann::json;

Status Bad(std::string message) { return InvalidArgument(std::move(message)); }

bool IsPrintableNoSpace(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

Result<std::string> OptString(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Bad(std::string("field '") + field + "' must be a string");
  return it->get<std::string>();
}

Result<int64_t> OptNonNegative(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return int64_t{0};
  if (!it->is_number_integer()) {
    return Bad(std::string("field '") + field + "' must be a non-negative integer");
  }
  if (it->is_number_unsigned()) {
    auto v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX / 1000)) {
      return Bad(std::string("field '") + field + "' is too large");
    }
    return static_cast<int64_t>(v);
  }
  auto v = it->get<int64_t>();
  if (v < 0) return Bad(std::string("field '") + field + "' must be a non-negative integer");
  if (v > INT64_MAX / 1000) return Bad(std::string("field '") + field + "' is too large");
  return v;
}

Status CheckUrl(std::string_view url, std::string_view what, const Limits& limits) {
  if (!IsValidBranchUrl(url, limits.max_url_bytes)) {
    return Bad(std::string(what) + " '" + std::string(url.substr(0, 200)) +
               "' is not an absolute http:// URL with a host");
  }
  if (url.substr(0, 8) == "https://") {
    return Bad(std::string(what) + " '" + std::string(url.substr(0, 200)) +
               "': https branch URLs are not supported yet (use http://)");
  }
  return Status::Ok();
}

// Saga custom_data: {"concurrent": bool, "orders": {"i": [j, ...]}} where step i runs after
// every step j; indices are 0-based.
Status ParseSagaCustom(const std::string& raw, size_t n, TxnDef& def) {
  if (raw.empty()) return Status::Ok();
  json custom = json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (custom.is_discarded() || !custom.is_object()) {
    return Bad("custom_data must be a JSON object encoded as a string");
  }
  if (auto it = custom.find("concurrent"); it != custom.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("custom_data.concurrent must be a boolean");
    def.concurrent = it->get<bool>();
  }
  auto orders = custom.find("orders");
  if (orders == custom.end() || orders->is_null()) return Status::Ok();
  if (!orders->is_object()) return Bad("custom_data.orders must be an object");
  for (const auto& [key, preds] : orders->items()) {
    size_t pos = 0;
    long idx = -1;
    try {
      idx = std::stol(key, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos != key.size() || key.empty() || idx < 0 || static_cast<size_t>(idx) >= n) {
      return Bad("custom_data.orders key '" + key.substr(0, 32) + "' is not a step index");
    }
    if (!preds.is_array()) return Bad("custom_data.orders values must be arrays of step indices");
    auto& list = def.orders[static_cast<int>(idx)];
    for (const auto& p : preds) {
      if (!p.is_number_integer() || p.get<int64_t>() < 0 ||
          static_cast<uint64_t>(p.get<int64_t>()) >= n) {
        return Bad("custom_data.orders['" + key + "'] holds a value that is not a step index");
      }
      int pred = static_cast<int>(p.get<int64_t>());
      if (pred == idx) return Bad("custom_data.orders: step " + key + " depends on itself");
      list.push_back(pred);
    }
  }
  // Kahn's algorithm: every step must become runnable, or the orders contain a cycle.
  std::vector<int> indegree(n, 0);
  std::vector<std::vector<int>> next(n);
  for (const auto& [step, preds] : def.orders) {
    std::set<int> unique(preds.begin(), preds.end());
    for (int p : unique) {
      next[p].push_back(step);
      ++indegree[step];
    }
  }
  std::vector<int> ready;
  for (size_t i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push_back(static_cast<int>(i));
  }
  size_t seen = 0;
  while (!ready.empty()) {
    int s = ready.back();
    ready.pop_back();
    ++seen;
    for (int t : next[s]) {
      if (--indegree[t] == 0) ready.push_back(t);
    }
  }
  if (seen != n) return Bad("custom_data.orders contains a cycle");
  return Status::Ok();
}

// registerBranch: {"gid", "branch_id", "trans_type": "tcc"|"xa", "data", "confirm", "cancel"}
// for TCC, {"gid", "branch_id", "trans_type": "xa", "data", "url"} for XA. DTM's SDKs send
// every value as a string.
Status ParseBranch(const json& j, TxnRequest& req, const Limits& limits) {
  const TransType type = req.def.type;
  if (!req.has_trans_type) return Bad("field 'trans_type' is required");
  if (type != TransType::kTcc && type != TransType::kXa) {
    return Bad("registerBranch is for tcc and xa transactions, not " +
               std::string(TransTypeName(type)));
  }
  RegisteredBranch& b = req.branch;
  auto branch_id = OptString(j, "branch_id");
  if (!branch_id.ok()) return branch_id.status();
  if (branch_id->empty()) return Bad("field 'branch_id' is required");
  if (branch_id->size() > 64 || !IsPrintableNoSpace(*branch_id)) {
    return Bad("field 'branch_id' must be 1..64 printable ASCII characters without spaces");
  }
  b.branch_id = std::move(*branch_id);
  auto data = OptString(j, "data");
  if (!data.ok()) return data.status();
  b.data = std::move(*data);
  const char* first = type == TransType::kTcc ? "confirm" : "url";
  auto url = OptString(j, first);
  if (!url.ok()) return url.status();
  if (url->empty()) return Bad(std::string("field '") + first + "' is required");
  DTX_RETURN_IF_ERROR(CheckUrl(*url, first, limits));
  b.confirm = std::move(*url);
  if (type == TransType::kTcc) {
    auto cancel = OptString(j, "cancel");
    if (!cancel.ok()) return cancel.status();
    if (cancel->empty()) return Bad("field 'cancel' is required");
    DTX_RETURN_IF_ERROR(CheckUrl(*cancel, "cancel", limits));
    b.cancel = std::move(*cancel);
  }
  return Status::Ok();
}

}  // namespace

std::string_view ApiOpName(ApiOp op) {
  switch (op) {
    case ApiOp::kPrepare:
      return "prepare";
    case ApiOp::kSubmit:
      return "submit";
    case ApiOp::kAbort:
      return "abort";
    case ApiOp::kForceStop:
      return "forceStop";
    case ApiOp::kRegisterBranch:
      return "registerBranch";
  }
  return "unknown";
}

bool IsValidBranchUrl(std::string_view url, size_t max_bytes) {
  if (url.size() > max_bytes) return false;
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
  } else {
    return false;
  }
  if (!IsPrintableNoSpace(url)) return false;
  size_t host_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, host_end);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  std::string_view host = authority;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':') return false;
    host = after.empty() ? std::string_view() : after.substr(1);
    if (after.empty()) return true;
    if (host.empty()) return false;
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      std::string_view port = host.substr(colon + 1);
      if (colon == 0) return false;
      host = port;
    } else {
      return true;
    }
  }
  // What is left in `host` is the port.
  if (host.empty() || host.size() > 5) return false;
  long port = 0;
  for (char c : host) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port > 0 && port <= 65535;
}

Result<TxnRequest> ParseTxnRequest(ApiOp op, std::string_view body, const Limits& limits) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("request body is not valid JSON");
  if (!j.is_object()) return Bad("request body must be a JSON object");

  TxnRequest req;
  req.op = op;
  TxnDef& def = req.def;

  auto gid = OptString(j, "gid");
  if (!gid.ok()) return gid.status();
  if (gid->empty()) return Bad("field 'gid' is required");
  if (gid->size() > limits.max_gid_bytes) {
    return Bad("field 'gid' is longer than " + std::to_string(limits.max_gid_bytes) + " bytes");
  }
  if (!IsPrintableNoSpace(*gid)) {
    return Bad("field 'gid' may hold only printable ASCII characters without spaces");
  }
  def.gid = std::move(*gid);

  auto type = OptString(j, "trans_type");
  if (!type.ok()) return type.status();
  if (!type->empty()) {
    auto parsed = ParseTransType(*type);
    if (!parsed) {
      if (*type == "workflow") return Bad("trans_type 'workflow' is not supported yet");
      return Bad("unknown trans_type '" + type->substr(0, 64) +
                 "' (expected saga, msg, tcc or xa)");
    }
    def.type = *parsed;
    req.has_trans_type = true;
  }
  if (op == ApiOp::kRegisterBranch) {
    DTX_RETURN_IF_ERROR(ParseBranch(j, req, limits));
    return req;
  }
  if (op == ApiOp::kAbort || op == ApiOp::kForceStop) return req;
  if (!req.has_trans_type) return Bad("field 'trans_type' is required");
  if (op == ApiOp::kPrepare && def.type == TransType::kSaga) {
    return Bad("a saga has no prepare phase: submit it directly");
  }

  auto steps = j.find("steps");
  if (steps != j.end() && !steps->is_null()) {
    if (!steps->is_array()) return Bad("field 'steps' must be an array");
    if (steps->size() > limits.max_steps) {
      return Bad("too many steps (limit " + std::to_string(limits.max_steps) + ")");
    }
    req.has_steps = true;
    for (size_t i = 0; i < steps->size(); ++i) {
      const json& s = (*steps)[i];
      std::string where = "steps[" + std::to_string(i) + "]";
      if (!s.is_object()) return Bad(where + " must be an object");
      Step step;
      auto action = OptString(s, "action");
      if (!action.ok()) return Bad(where + ": " + action.status().message());
      if (action->empty()) return Bad(where + ".action is required");
      DTX_RETURN_IF_ERROR(CheckUrl(*action, where + ".action", limits));
      step.action = std::move(*action);
      auto compensate = OptString(s, "compensate");
      if (!compensate.ok()) return Bad(where + ": " + compensate.status().message());
      if (!compensate->empty()) {
        if (def.type == TransType::kMsg) return Bad(where + ": a msg step has no compensate");
        DTX_RETURN_IF_ERROR(CheckUrl(*compensate, where + ".compensate", limits));
      }
      step.compensate = std::move(*compensate);
      def.steps.push_back(std::move(step));
    }
  }

  auto payloads = j.find("payloads");
  if (payloads != j.end() && !payloads->is_null()) {
    if (!payloads->is_array()) return Bad("field 'payloads' must be an array of strings");
    for (const auto& p : *payloads) {
      if (!p.is_string()) return Bad("field 'payloads' must be an array of strings");
      def.payloads.push_back(p.get<std::string>());
    }
  }
  if (def.payloads.size() != def.steps.size()) {
    return Bad("'steps' has " + std::to_string(def.steps.size()) + " entries but 'payloads' has " +
               std::to_string(def.payloads.size()));
  }
  const bool registers_branches = def.type == TransType::kTcc || def.type == TransType::kXa;
  if (registers_branches && !def.steps.empty()) {
    return Bad("a " + std::string(TransTypeName(def.type)) +
               " transaction has no 'steps': its branches come through registerBranch");
  }
  if (!registers_branches && (!req.has_steps || def.steps.empty())) {
    // A msg submitted after its prepare may omit the steps; sagas and msgs otherwise need them.
    if (!(def.type == TransType::kMsg && op == ApiOp::kSubmit)) {
      return Bad("field 'steps' must hold at least one step");
    }
  }

  auto query_prepared = OptString(j, "query_prepared");
  if (!query_prepared.ok()) return query_prepared.status();
  if (!query_prepared->empty()) {
    DTX_RETURN_IF_ERROR(CheckUrl(*query_prepared, "query_prepared", limits));
  }
  def.query_prepared = std::move(*query_prepared);
  if (def.type == TransType::kMsg && op == ApiOp::kPrepare && def.query_prepared.empty()) {
    return Bad("a msg prepare needs 'query_prepared' (the check-back URL)");
  }

  auto custom = OptString(j, "custom_data");
  if (!custom.ok()) return custom.status();
  def.custom_data = std::move(*custom);
  if (def.type == TransType::kSaga) {
    DTX_RETURN_IF_ERROR(ParseSagaCustom(def.custom_data, def.steps.size(), def));
  }

  if (auto it = j.find("wait_result"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("field 'wait_result' must be a boolean");
    def.options.wait_result = it->get<bool>();
  }
  struct NumField {
    const char* name;
    int64_t* out;
  };
  for (auto [name, out] : {NumField{"timeout_to_fail", &def.options.timeout_to_fail_s},
                           NumField{"request_timeout", &def.options.request_timeout_s},
                           NumField{"retry_interval", &def.options.retry_interval_s},
                           NumField{"retry_limit", &def.options.retry_limit}}) {
    auto v = OptNonNegative(j, name);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  if (auto it = j.find("branch_headers"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("field 'branch_headers' must be an object of strings");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return Bad("branch_headers['" + k.substr(0, 64) + "'] must be a string");
      if (k.empty() || !IsPrintableNoSpace(k) || k.find(':') != std::string::npos) {
        return Bad("branch_headers has an invalid header name");
      }
      std::string value = v.get<std::string>();
      for (unsigned char c : value) {
        if (c < 0x20 && c != '\t')
          return Bad("branch_headers['" + k + "'] has a control character");
      }
      def.options.branch_headers[k] = std::move(value);
    }
  }
  return req;
}

}  // namespace dtx::coord
