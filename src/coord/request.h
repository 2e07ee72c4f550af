// Parsing and validation of DTM-protocol request bodies (/api/dtmsvr/prepare, submit, abort,
// forceStop, registerBranch). Pure functions: bytes in, a validated request or an error out.
// Every check that can reject input lives here, so the engine only sees well-formed requests.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"
#include "coord/txn.h"

namespace dtx::coord {

enum class ApiOp { kPrepare, kSubmit, kAbort, kForceStop, kRegisterBranch };
std::string_view ApiOpName(ApiOp op);

struct Limits {
  size_t max_steps = 1000;
  size_t max_gid_bytes = 128;
  size_t max_url_bytes = 2048;
};

// A validated transaction request. For kAbort and kForceStop only gid (and trans_type, if sent)
// are meaningful.
struct TxnRequest {
  ApiOp op = ApiOp::kSubmit;
  TxnDef def;  // create_time is left 0; the engine stamps it
  bool has_trans_type = false;
  bool has_steps = false;   // the body carried "steps" (msg submit may omit it)
  RegisteredBranch branch;  // kRegisterBranch only
};

// Parses a JSON body for `op`. Errors are kInvalidArgument with a message naming the field.
// Checks: valid JSON object; gid present, non-empty, <= max_gid_bytes, printable ASCII without
// spaces; trans_type present and one of saga/msg/tcc/xa (abort/forceStop may omit it); tcc and xa
// carry no steps; registerBranch needs branch_id and confirm+cancel (tcc) or url (xa); steps an
// array of objects whose URLs are absolute http(s) URLs with a host; payloads an array of strings
// of the same length as steps; saga steps have "action" (compensate optional); msg steps have
// "action"; msg prepare needs query_prepared; custom_data (saga) is a JSON string holding
// {"concurrent": bool, "orders": {"i": [j, ...]}} with indices in range and no cycles; numeric
// options non-negative integers; branch_headers an object of strings.
Result<TxnRequest> ParseTxnRequest(ApiOp op, std::string_view body, const Limits& limits = {});

// True if `url` is an absolute http:// or https:// URL with a non-empty host, no whitespace or
// control characters, and at most max_bytes long.
bool IsValidBranchUrl(std::string_view url, size_t max_bytes = 2048);

}  // namespace dtx::coord
