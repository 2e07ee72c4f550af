#include "check/history.h"

#include <charconv>
#include <limits>
#include <utility>

namespace dtx::check {

namespace {

constexpr std::string_view kNil = "nil";

std::string_view TypeName(OpType t) {
  switch (t) {
    case OpType::kRead:
      return "read";
    case OpType::kWrite:
      return "write";
    case OpType::kCas:
      return "cas";
  }
  return "?";
}

std::string ValueText(const std::optional<std::string>& v) { return v ? *v : std::string(kNil); }

std::vector<std::string_view> Tokens(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::optional<std::string> ValueToken(std::string_view t) {
  if (t == kNil) return std::nullopt;
  return std::string(t);
}

bool Tokenable(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return false;
  }
  return true;
}

}  // namespace

Op Op::Read(std::string key) {
  Op op;
  op.type = OpType::kRead;
  op.key = std::move(key);
  return op;
}

Op Op::Write(std::string key, std::string value) {
  Op op;
  op.type = OpType::kWrite;
  op.key = std::move(key);
  op.value = std::move(value);
  return op;
}

Op Op::Cas(std::string key, std::optional<std::string> expected, std::string value) {
  Op op;
  op.type = OpType::kCas;
  op.key = std::move(key);
  op.expected = std::move(expected);
  op.value = std::move(value);
  return op;
}

std::string DescribeOperation(const Operation& o) {
  std::string s = "client " + std::to_string(o.client) + " ";
  s += TypeName(o.op.type);
  s += " " + o.op.key;
  if (o.op.type == OpType::kWrite) s += " " + o.op.value;
  if (o.op.type == OpType::kCas) s += " " + ValueText(o.op.expected) + " -> " + o.op.value;
  switch (o.outcome) {
    case EventType::kOk:
      if (o.op.type == OpType::kRead) s += " => " + ValueText(o.read_value);
      if (o.op.type == OpType::kCas) s += o.cas_swapped ? " => swapped" : " => not swapped";
      s += " [t=" + std::to_string(o.invoke_time) + ".." + std::to_string(o.complete_time) + "]";
      break;
    case EventType::kFail:
      s += " (fail) [t=" + std::to_string(o.invoke_time) + "]";
      break;
    default:
      s += " (unknown outcome) [t=" + std::to_string(o.invoke_time) + "..]";
      break;
  }
  return s;
}

Status History::Append(Event e) {
  if (!events_.empty() && e.time <= events_.back().time) {
    return InvalidArgument("event time " + std::to_string(e.time) +
                           " does not increase (previous " + std::to_string(events_.back().time) +
                           ")");
  }
  auto it = pending_.find(e.client);
  if (e.type == EventType::kInvoke) {
    if (it != pending_.end()) {
      return InvalidArgument("client " + std::to_string(e.client) +
                             " invokes while an operation is in flight");
    }
    if (e.op.key.empty()) return InvalidArgument("operation with an empty key");
    if (e.op.type != OpType::kCas) e.op.expected.reset();
    if (e.op.type == OpType::kRead) e.op.value.clear();
    e.read_value.reset();
    e.cas_swapped = false;
    pending_[e.client] = events_.size();
    events_.push_back(std::move(e));
    return Status::Ok();
  }
  if (it == pending_.end()) {
    return InvalidArgument("client " + std::to_string(e.client) +
                           " completes an operation it did not invoke");
  }
  e.op = events_[it->second].op;
  if (e.type != EventType::kOk || e.op.type != OpType::kRead) e.read_value.reset();
  if (e.type != EventType::kOk || e.op.type != OpType::kCas) e.cas_swapped = false;
  pending_.erase(it);
  events_.push_back(std::move(e));
  return Status::Ok();
}

Status History::Complete(EventType type, uint64_t client, std::optional<std::string> read_value,
                         bool cas_swapped, std::optional<OpType> must_be) {
  if (must_be) {
    auto it = pending_.find(client);
    if (it != pending_.end() && events_[it->second].op.type != *must_be) {
      return InvalidArgument("client " + std::to_string(client) + " completes a " +
                             std::string(TypeName(events_[it->second].op.type)) + " as a " +
                             std::string(TypeName(*must_be)));
    }
  }
  Event e;
  e.type = type;
  e.client = client;
  e.time = last_time() + 1;
  e.read_value = std::move(read_value);
  e.cas_swapped = cas_swapped;
  return Append(std::move(e));
}

Status History::Invoke(uint64_t client, Op op) {
  Event e;
  e.type = EventType::kInvoke;
  e.client = client;
  e.time = last_time() + 1;
  e.op = std::move(op);
  return Append(std::move(e));
}

Status History::OkRead(uint64_t client, std::optional<std::string> value) {
  return Complete(EventType::kOk, client, std::move(value), false, OpType::kRead);
}
Status History::OkWrite(uint64_t client) {
  return Complete(EventType::kOk, client, std::nullopt, false, OpType::kWrite);
}
Status History::OkCas(uint64_t client, bool swapped) {
  return Complete(EventType::kOk, client, std::nullopt, swapped, OpType::kCas);
}
Status History::Fail(uint64_t client) {
  return Complete(EventType::kFail, client, std::nullopt, false, std::nullopt);
}
Status History::Info(uint64_t client) {
  return Complete(EventType::kInfo, client, std::nullopt, false, std::nullopt);
}

std::optional<Op> History::PendingOp(uint64_t client) const {
  auto it = pending_.find(client);
  if (it == pending_.end()) return std::nullopt;
  return events_[it->second].op;
}

std::vector<Operation> History::Operations() const {
  std::vector<Operation> ops;
  std::unordered_map<uint64_t, size_t> open;  // client -> index in ops
  for (const Event& e : events_) {
    if (e.type == EventType::kInvoke) {
      Operation o;
      o.client = e.client;
      o.op = e.op;
      o.outcome = EventType::kInfo;
      o.invoke_time = e.time;
      o.complete_time = std::numeric_limits<uint64_t>::max();
      open[e.client] = ops.size();
      ops.push_back(std::move(o));
      continue;
    }
    auto it = open.find(e.client);
    if (it == open.end()) continue;  // Append forbids this; kept for robustness.
    Operation& o = ops[it->second];
    o.outcome = e.type;
    if (e.type != EventType::kInfo) o.complete_time = e.time;
    o.read_value = e.read_value;
    o.cas_swapped = e.cas_swapped;
    open.erase(it);
  }
  return ops;
}

Result<History> ParseHistory(std::string_view text) {
  History h;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    auto err = [&](const std::string& m) {
      return InvalidArgument("history line " + std::to_string(line_no) + ": " + m);
    };
    std::vector<std::string_view> t = Tokens(line);
    if (t.empty() || t[0][0] == '#') continue;

    Event e;
    e.time = h.last_time() + 1;
    size_t i = 0;
    if (t[0][0] == '@') {
      if (!ParseU64(t[0].substr(1), &e.time)) return err("bad time '" + std::string(t[0]) + "'");
      ++i;
    }
    if (t.size() < i + 2) return err("want '<event> <client> ...'");
    std::string_view kind = t[i];
    if (!ParseU64(t[i + 1], &e.client)) return err("bad client id '" + std::string(t[i + 1]) + "'");
    std::vector<std::string_view> rest(t.begin() + static_cast<std::ptrdiff_t>(i + 2), t.end());

    if (kind == "invoke") {
      e.type = EventType::kInvoke;
      if (rest.empty()) return err("invoke needs an operation (read, write or cas)");
      if (rest[0] == "read" && rest.size() == 2) {
        e.op = Op::Read(std::string(rest[1]));
      } else if (rest[0] == "write" && rest.size() == 3) {
        if (rest[2] == kNil) return err("write of nil (use a value)");
        e.op = Op::Write(std::string(rest[1]), std::string(rest[2]));
      } else if (rest[0] == "cas" && rest.size() == 4) {
        if (rest[3] == kNil) return err("cas to nil (use a value)");
        e.op = Op::Cas(std::string(rest[1]), ValueToken(rest[2]), std::string(rest[3]));
      } else {
        return err("want 'read K', 'write K V' or 'cas K EXPECTED NEW' after invoke C");
      }
    } else if (kind == "ok") {
      e.type = EventType::kOk;
      std::optional<Op> pending = h.PendingOp(e.client);
      if (!pending)
        return err("client " + std::to_string(e.client) + " has no operation in flight");
      if (!rest.empty()) {
        if (rest.size() < 2 || rest[0] != TypeName(pending->type) || rest[1] != pending->key) {
          return err("ok does not match the pending " + std::string(TypeName(pending->type)) +
                     " of " + pending->key);
        }
      }
      switch (pending->type) {
        case OpType::kRead:
          if (rest.size() != 3) return err("ok of a read needs 'read K V' (V may be nil)");
          e.read_value = ValueToken(rest[2]);
          break;
        case OpType::kWrite:
          if (!rest.empty() && (rest.size() != 3 || rest[2] != pending->value)) {
            return err("ok of a write wants 'ok C' or 'ok C write K " + pending->value + "'");
          }
          break;
        case OpType::kCas:
          if (rest.size() != 3 || (rest[2] != "true" && rest[2] != "false")) {
            return err("ok of a cas needs 'cas K true|false'");
          }
          e.cas_swapped = rest[2] == "true";
          break;
      }
    } else if (kind == "fail" || kind == "info") {
      e.type = kind == "fail" ? EventType::kFail : EventType::kInfo;
      if (!rest.empty()) return err(std::string(kind) + " takes only a client id");
    } else {
      return err("unknown event '" + std::string(kind) + "' (want invoke, ok, fail or info)");
    }
    Status s = h.Append(std::move(e));
    if (!s.ok()) return err(s.message());
  }
  return h;
}

Result<std::string> FormatHistory(const History& history) {
  std::string out;
  for (const Event& e : history.events()) {
    if (!Tokenable(e.op.key) || e.op.key.front() == '#') {
      return InvalidArgument("key '" + e.op.key + "' cannot be written as a token");
    }
    auto value_ok = [](const std::string& v) { return Tokenable(v) && v != kNil; };
    out += "@" + std::to_string(e.time) + " ";
    const std::string client = std::to_string(e.client);
    switch (e.type) {
      case EventType::kInvoke:
        out += "invoke " + client + " " + std::string(TypeName(e.op.type)) + " " + e.op.key;
        if (e.op.type != OpType::kRead) {
          if (!value_ok(e.op.value) || (e.op.expected && !value_ok(*e.op.expected))) {
            return InvalidArgument("a value of " + e.op.key + " cannot be written as a token");
          }
          if (e.op.type == OpType::kCas) out += " " + ValueText(e.op.expected);
          out += " " + e.op.value;
        }
        break;
      case EventType::kOk:
        out += "ok " + client + " " + std::string(TypeName(e.op.type)) + " " + e.op.key;
        if (e.op.type == OpType::kRead) {
          if (e.read_value && !value_ok(*e.read_value)) {
            return InvalidArgument("a value read from " + e.op.key +
                                   " cannot be written as a token");
          }
          out += " " + ValueText(e.read_value);
        } else if (e.op.type == OpType::kWrite) {
          out += " " + e.op.value;
        } else {
          out += e.cas_swapped ? " true" : " false";
        }
        break;
      case EventType::kFail:
        out += "fail " + client;
        break;
      case EventType::kInfo:
        out += "info " + client;
        break;
    }
    out += "\n";
  }
  return out;
}

}  // namespace dtx::check
