// The test participant: a DTM branch service whose answer is chosen by the URL path, so that a
// test, a README example or a benchmark can describe a branch's behaviour in its URL alone.
//
// Business paths (any method; dtxd sends POST for actions and compensations, GET for check-backs):
//   /ok              200 {"dtm_result":"SUCCESS"}
//   /fail            409 {"dtm_result":"FAILURE"}
//   /ongoing/N       425 {"dtm_result":"ONGOING"} for the first N calls of one (gid, branch_id, op,
//                    path), SUCCESS afterwards
//   /flaky/N         500 (a temporary error) for the first N calls per (gid, branch_id, op, path),
//                    SUCCESS afterwards
//   /delay/MS        SUCCESS after MS milliseconds (an asio timer; the service keeps serving)
//   /timeout         never answers; the connection stays open
//   /query/ok, /query/fail, /query/ongoing   msg check-back answers SUCCESS / FAILURE / ONGOING
// Every business call is recorded, in arrival order, with the gid, branch_id, op and trans_type
// query parameters, the path, the method, the body and the answer. The first call per
// (gid, branch_id, op) with op "action" or "compensate" that is answered SUCCESS is marked as the
// "effect": what a participant guarded by the sub-transaction barrier would have applied.
//
// Service paths:
//   GET /calls[?gid=G]   {"calls":[...], "count":n, "total":t, "dropped":d}; without gid, all
//   DELETE /calls        forgets every record, effect and counter
//   /ping                200 {"msg":"pong"}
// Anything else is 404, a bad N or MS is 400, a wrong method on /calls is 405; all JSON.
//
// Thread-safety: none. Handle() must run on the single thread that runs the io_context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>

#include <boost/asio/io_context.hpp>

#include "runtime/http.h"

namespace dtx::participant {

struct CallRecord {
  uint64_t seq = 0;  // 1, 2, ... in arrival order, never reused (not even after DELETE)
  std::string gid;
  std::string branch_id;
  std::string op;
  std::string trans_type;
  std::string method;
  std::string path;
  std::string body;
  // "SUCCESS", "FAILURE", "ONGOING", "ERROR" (a 500), or "PENDING" while /delay or /timeout has
  // not answered.
  std::string result = "PENDING";
  bool effect = false;
};

struct ParticipantOptions {
  // Records beyond this are dropped oldest-first (counted in "dropped"); effects are kept.
  size_t max_records = 1'000'000;
  // /timeout requests held open at most; beyond this the oldest is answered 500.
  size_t max_held = 10'000;
  int64_t max_delay_ms = 600'000;
  // Writes one line per business call to stderr.
  bool log_calls = false;
};

class Participant {
 public:
  // REQUIRES: `io` outlives the participant and is run by one thread.
  explicit Participant(boost::asio::io_context& io, ParticipantOptions options = {});
  ~Participant();
  Participant(const Participant&) = delete;
  Participant& operator=(const Participant&) = delete;

  // The runtime::HttpHandler of the service.
  void Handle(runtime::HttpRequest&& req, runtime::Responder respond);

  // For tests of the participant itself.
  const std::deque<CallRecord>& records() const { return records_; }

 private:
  using OpKey = std::tuple<std::string, std::string, std::string>;  // gid, branch_id, op

  void HandleCalls(const runtime::HttpRequest& req, const runtime::Responder& respond);
  CallRecord& Record(const runtime::HttpRequest& req);
  // Sets the answer of the record `seq` (if still held) and decides whether it is the effect.
  void Finish(uint64_t seq, const std::string& result);
  // How many calls with this key came before (the current one included).
  uint64_t Count(const CallRecord& r);

  boost::asio::io_context& io_;
  ParticipantOptions options_;
  std::deque<CallRecord> records_;
  uint64_t next_seq_ = 1;
  uint64_t dropped_ = 0;
  std::set<OpKey> effects_;
  std::map<std::tuple<std::string, std::string, std::string, std::string>, uint64_t> counters_;
  std::deque<runtime::Responder> held_;
  // Shared with pending /delay timers, which must not touch a destroyed participant.
  std::shared_ptr<bool> alive_;
};

}  // namespace dtx::participant
