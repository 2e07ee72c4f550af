#include "participant/participant.h"

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>

namespace dtx::participant {
namespace {

using nlohmann::json;
using runtime::HttpRequest;
using runtime::HttpResponse;
using runtime::Responder;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse Json(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

HttpResponse Answer(const std::string& result) {
  if (result == "SUCCESS") return Json(200, {{"dtm_result", "SUCCESS"}});
  if (result == "FAILURE") return Json(409, {{"dtm_result", "FAILURE"}});
  if (result == "ONGOING") return Json(425, {{"dtm_result", "ONGOING"}});
  // The body must not contain the words dtxd classifies (ONGOING, FAILURE): this is a plain
  // temporary error.
  return Json(500, {{"message", "temporary error (flaky)"}});
}

// A decimal count 0..999999999, or nothing.
std::optional<int64_t> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

json ToJson(const CallRecord& r) {
  return {{"seq", r.seq},
          {"gid", r.gid},
          {"branch_id", r.branch_id},
          {"op", r.op},
          {"trans_type", r.trans_type},
          {"method", r.method},
          {"path", r.path},
          {"body", r.body},
          {"result", r.result},
          {"effect", r.effect}};
}

}  // namespace

Participant::Participant(boost::asio::io_context& io, ParticipantOptions options)
    : io_(io), options_(options), alive_(std::make_shared<bool>(true)) {}

Participant::~Participant() { *alive_ = false; }

void Participant::Handle(HttpRequest&& req, Responder respond) {
  const std::string& path = req.path;
  if (path == "/ping") return respond(Json(200, {{"msg", "pong"}}));
  if (path == "/calls") return HandleCalls(req, respond);

  // Business paths: "/name" or "/name/arg".
  std::string_view rest(path);
  if (rest.empty() || rest[0] != '/') {
    return respond(Json(404, {{"message", "no route for " + path.substr(0, 200)}}));
  }
  rest.remove_prefix(1);
  const size_t slash = rest.find('/');
  const std::string_view name = rest.substr(0, slash);
  const std::optional<std::string_view> arg =
      slash == std::string_view::npos ? std::nullopt
                                      : std::optional<std::string_view>(rest.substr(slash + 1));

  auto fixed = [&](const std::string& result) {
    CallRecord& r = Record(req);
    const uint64_t seq = r.seq;
    Finish(seq, result);
    respond(Answer(result));
  };
  auto counted = [&](const char* before) {
    auto n = ParseNumber(*arg);
    if (!n) {
      return respond(Json(400, {{"message", "bad count '" + std::string(arg->substr(0, 32)) +
                                                "' in " + path.substr(0, 200)}}));
    }
    CallRecord& r = Record(req);
    const uint64_t seq = r.seq;
    const std::string result = Count(r) <= static_cast<uint64_t>(*n) ? before : "SUCCESS";
    Finish(seq, result);
    respond(Answer(result));
  };

  if (!arg && name == "ok") return fixed("SUCCESS");
  if (!arg && name == "fail") return fixed("FAILURE");
  if (name == "query" && arg) {
    if (*arg == "ok") return fixed("SUCCESS");
    if (*arg == "fail") return fixed("FAILURE");
    if (*arg == "ongoing") return fixed("ONGOING");
  }
  if (name == "ongoing" && arg) return counted("ONGOING");
  if (name == "flaky" && arg) return counted("ERROR");
  if (name == "delay" && arg) {
    auto ms = ParseNumber(*arg);
    if (!ms || *ms > options_.max_delay_ms) {
      return respond(Json(
          400, {{"message", "delay must be 0.." + std::to_string(options_.max_delay_ms) + " ms"}}));
    }
    const uint64_t seq = Record(req).seq;
    auto timer = std::make_shared<boost::asio::steady_timer>(io_);
    timer->expires_after(std::chrono::milliseconds(*ms));
    timer->async_wait([this, alive = alive_, timer, seq,
                       respond = std::move(respond)](const boost::system::error_code&) {
      // The answer is given even when the timer was cancelled by shutdown: the responder
      // ignores it once the server is gone.
      if (!*alive) return;
      Finish(seq, "SUCCESS");
      respond(Answer("SUCCESS"));
    });
    return;
  }
  if (!arg && name == "timeout") {
    Record(req);
    if (held_.size() >= options_.max_held) held_.pop_front();  // answers 500 on destruction
    held_.push_back(std::move(respond));
    return;
  }
  respond(Json(404, {{"message", "no route for " + path.substr(0, 200)}}));
}

void Participant::HandleCalls(const HttpRequest& req, const Responder& respond) {
  if (req.method == "DELETE") {
    records_.clear();
    effects_.clear();
    counters_.clear();
    dropped_ = 0;
    return respond(Json(200, {{"message", "cleared"}}));
  }
  if (req.method != "GET") {
    HttpResponse r = Json(405, {{"message", "use GET or DELETE"}});
    r.headers.emplace_back("Allow", "GET, DELETE");
    return respond(std::move(r));
  }
  const auto gid = req.QueryParam("gid");
  json calls = json::array();
  for (const CallRecord& r : records_) {
    if (!gid || r.gid == *gid) calls.push_back(ToJson(r));
  }
  const size_t count = calls.size();
  respond(Json(200, {{"calls", std::move(calls)},
                     {"count", count},
                     {"total", records_.size()},
                     {"dropped", dropped_}}));
}

CallRecord& Participant::Record(const HttpRequest& req) {
  if (records_.size() >= options_.max_records && !records_.empty()) {
    records_.pop_front();
    ++dropped_;
  }
  CallRecord r;
  r.seq = next_seq_++;
  r.gid = req.QueryParam("gid").value_or("");
  r.branch_id = req.QueryParam("branch_id").value_or("");
  r.op = req.QueryParam("op").value_or("");
  r.trans_type = req.QueryParam("trans_type").value_or("");
  r.method = req.method;
  r.path = req.path;
  r.body = req.body;
  if (options_.log_calls) {
    std::fprintf(stderr, "call %llu %s %s gid=%s branch_id=%s op=%s\n",
                 static_cast<unsigned long long>(r.seq), r.method.c_str(), r.path.c_str(),
                 r.gid.c_str(), r.branch_id.c_str(), r.op.c_str());
  }
  records_.push_back(std::move(r));
  return records_.back();
}

void Participant::Finish(uint64_t seq, const std::string& result) {
  if (records_.empty() || seq < records_.front().seq) return;
  const uint64_t index = seq - records_.front().seq;
  if (index >= records_.size()) return;
  CallRecord& r = records_[index];
  r.result = result;
  if (result == "SUCCESS" && (r.op == "action" || r.op == "compensate")) {
    r.effect = effects_.emplace(r.gid, r.branch_id, r.op).second;
  }
}

uint64_t Participant::Count(const CallRecord& r) {
  return ++counters_[{r.gid, r.branch_id, r.op, r.path}];
}

}  // namespace dtx::participant
