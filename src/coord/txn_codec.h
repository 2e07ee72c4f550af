// Encodings of transactions.
//
// 1. The durable record format used by the stores: versioned JSON for a TxnDef and a TxnState.
//    It round-trips every field exactly, including strings that are not valid UTF-8 (those are
//    stored as {"b64": "..."}). Decoding never throws and never crashes: malformed, truncated,
//    wrongly typed, unknown-version or internally inconsistent input (payload count differs
//    from step count, an order index out of range, a negative option, ...) yields kDataLoss
//    with a message naming the problem.
// 2. DTM-compatible JSON for the query API (/api/dtmsvr/query and /all): the field names of
//    DTM's TransGlobalStore and TransBranchStore, times as RFC 3339 UTC with milliseconds.
//    Strings that are not valid UTF-8 have their bad bytes replaced by U+FFFD there, so the
//    returned json can always be dump()ed.
// 3. Scan position tokens (decimal sequence numbers) shared by the store implementations.
//
// Thread-safety: pure functions; safe to call from any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "coord/txn.h"

namespace dtx::coord {

// Durable record format (format version 1).
std::string EncodeDef(const TxnDef& def);
Result<TxnDef> DecodeDef(std::string_view data);
std::string EncodeState(const TxnState& state);
Result<TxnState> DecodeState(std::string_view data);

// DTM's TransGlobalStore: gid, trans_type, status, query_prepared, protocol ("http"),
// create_time, update_time, finish_time and rollback_time (both omitted when 0, like DTM's nil
// pointers), rollback_reason, custom_data, steps ([{"action","compensate"}]; msg: action only),
// payloads, wait_result, timeout_to_fail, request_timeout, retry_interval, retry_limit,
// branch_headers. Tolerates a state whose step count differs from the def's.
nlohmann::json TransactionToDtmJson(const TxnRecord& rec);

// DTM's branch list: for a saga, per step the compensate op then the action op; for a msg, the
// action op only. Each element: gid, branch_id ("01", ...), op, url, bin_data (base64 of the
// payload, as Go renders []byte), status, finish_time (omitted when 0), create_time.
nlohmann::json BranchesToDtmJson(const TxnRecord& rec);

// "2026-11-26T10:00:00.123Z". Defined for every TimeMs (years outside 0..9999 print as
// more or fewer digits, never crash).
std::string FormatRfc3339Ms(TimeMs t);

// Standard base64 with padding (RFC 4648), as Go's encoding/json renders []byte.
std::string Base64Encode(std::string_view bytes);

// Scan positions: the decimal form of a creation sequence number. Parsing rejects anything
// but 1..20 ASCII digits fitting in uint64_t, with kInvalidArgument.
std::string FormatScanPosition(uint64_t seq);
Result<uint64_t> ParseScanPosition(std::string_view position);
// Validates a Scan() request: limit > 0 and a well-formed position. Returns the exclusive upper
// bound of creation sequence numbers to list ("" = from the newest).
Result<uint64_t> ScanUpperBound(std::string_view position, size_t limit);

}  // namespace dtx::coord
