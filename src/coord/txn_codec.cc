#include "coord/txn_codec.h"

#include <charconv>
#include <cstdio>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

namespace dtx::coord {
namespace {

using nlohmann::json;

constexpr int64_t kFormatVersion = 1;

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 if it is invalid. This must be at least as strict as
// nlohmann's dump(), which throws on anything it rejects.
size_t Utf8SeqLen(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const size_t left = s.size() - i;
  auto cont = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(i + 1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SeqLen(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SeqLen(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = val(c);
      if (v[k] < 0) return std::nullopt;
    }
    const uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>((n >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

// Writes the durable format directly rather than through nlohmann::json: states are encoded on
// every transition, and building a json tree first costs several times more.
class Writer {
 public:
  explicit Writer(size_t reserve) { out_.reserve(reserve); }

  Writer& Raw(std::string_view s) {
    out_.append(s);
    return *this;
  }
  Writer& Key(std::string_view k) {
    if (out_.back() != '{' && out_.back() != '[') out_.push_back(',');
    out_.push_back('"');
    out_.append(k);
    out_.append("\":");
    return *this;
  }
  Writer& Sep() {
    if (out_.back() != '{' && out_.back() != '[') out_.push_back(',');
    return *this;
  }
  Writer& Int(int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
    return *this;
  }
  Writer& Bool(bool v) { return Raw(v ? "true" : "false"); }
  // Strings are stored as JSON strings when they are valid UTF-8 and as {"b64": ...}
  // otherwise, because JSON text cannot carry arbitrary bytes.
  Writer& Str(std::string_view s) {
    if (!IsValidUtf8(s)) {
      out_.append("{\"b64\":\"");
      out_.append(Base64Encode(s));
      out_.append("\"}");
      return *this;
    }
    out_.push_back('"');
    for (char c : s) {
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
            out_.append(buf);
          } else {
            out_.push_back(c);
          }
      }
    }
    out_.push_back('"');
    return *this;
  }

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Collects the first decoding error; every accessor returns a harmless default after it.
class Decoder {
 public:
  explicit Decoder(std::string_view what) : what_(what) {}

  bool failed() const { return !error_.empty(); }
  Status status() const { return DataLoss(std::string(what_) + " record: " + error_); }

  void Fail(std::string msg) {
    if (error_.empty()) error_ = std::move(msg);
  }

  const json* Field(const json& obj, const char* name) {
    if (failed()) return nullptr;
    auto it = obj.find(name);
    if (it == obj.end()) {
      Fail(std::string("missing field '") + name + "'");
      return nullptr;
    }
    return &*it;
  }

  std::string Str(const json& j, const std::string& name) {
    if (failed()) return {};
    if (j.is_string()) return j.get<std::string>();
    if (j.is_object() && j.size() == 1 && j.contains("b64") && j["b64"].is_string()) {
      auto bytes = Base64Decode(j["b64"].get_ref<const std::string&>());
      if (bytes) return std::move(*bytes);
      Fail("field '" + name + "' has invalid base64");
      return {};
    }
    Fail("field '" + name + "' is not a string");
    return {};
  }
  std::string StrField(const json& obj, const char* name) {
    const json* j = Field(obj, name);
    return j ? Str(*j, name) : std::string();
  }

  int64_t Int(const json& j, const std::string& name) {
    if (failed()) return 0;
    if (j.is_number_unsigned()) {
      const auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return static_cast<int64_t>(u);
      }
      Fail("field '" + name + "' is out of range");
      return 0;
    }
    if (j.is_number_integer()) return j.get<int64_t>();
    Fail("field '" + name + "' is not an integer");
    return 0;
  }
  int64_t IntField(const json& obj, const char* name) {
    const json* j = Field(obj, name);
    return j ? Int(*j, name) : 0;
  }
  int64_t NonNegField(const json& obj, const char* name) {
    const int64_t v = IntField(obj, name);
    if (v < 0) Fail(std::string("field '") + name + "' is negative");
    return v;
  }

  bool BoolField(const json& obj, const char* name) {
    const json* j = Field(obj, name);
    if (!j) return false;
    if (!j->is_boolean()) {
      Fail(std::string("field '") + name + "' is not a boolean");
      return false;
    }
    return j->get<bool>();
  }

  const json* Array(const json& obj, const char* name) {
    const json* j = Field(obj, name);
    if (j && !j->is_array()) {
      Fail(std::string("field '") + name + "' is not an array");
      return nullptr;
    }
    return j;
  }
  const json* Object(const json& obj, const char* name) {
    const json* j = Field(obj, name);
    if (j && !j->is_object()) {
      Fail(std::string("field '") + name + "' is not an object");
      return nullptr;
    }
    return j;
  }

  // Parses `data` as an object and checks the format version.
  std::optional<json> Open(std::string_view data) {
    json doc = json::parse(data.begin(), data.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      Fail("not valid JSON (" + std::to_string(data.size()) + " bytes)");
      return std::nullopt;
    }
    if (!doc.is_object()) {
      Fail("not a JSON object");
      return std::nullopt;
    }
    const int64_t v = IntField(doc, "v");
    if (failed()) return std::nullopt;
    if (v != kFormatVersion) {
      Fail("unsupported format version " + std::to_string(v));
      return std::nullopt;
    }
    return doc;
  }

 private:
  std::string_view what_;
  std::string error_;
};

Result<TxnDef> DecodeDefImpl(std::string_view data) {
  Decoder d("txn def");
  auto doc = d.Open(data);
  if (!doc) return d.status();
  const json& o = *doc;
  TxnDef def;
  def.gid = d.StrField(o, "gid");
  if (!d.failed() && def.gid.empty()) d.Fail("empty gid");
  const std::string type = d.StrField(o, "trans_type");
  if (!d.failed()) {
    auto t = ParseTransType(type);
    if (!t) d.Fail("unknown trans_type '" + SanitizeUtf8(type) + "'");
    def.type = t.value_or(TransType::kSaga);
  }
  if (const json* steps = d.Array(o, "steps")) {
    for (const json& s : *steps) {
      if (d.failed()) break;
      if (!s.is_object()) {
        d.Fail("a step is not an object");
        break;
      }
      Step st;
      st.action = d.StrField(s, "action");
      st.compensate = d.StrField(s, "compensate");
      def.steps.push_back(std::move(st));
    }
  }
  if (const json* payloads = d.Array(o, "payloads")) {
    for (const json& p : *payloads) {
      if (d.failed()) break;
      def.payloads.push_back(d.Str(p, "payloads[]"));
    }
  }
  if (!d.failed() && def.payloads.size() != def.steps.size()) {
    d.Fail(std::to_string(def.payloads.size()) + " payloads for " +
           std::to_string(def.steps.size()) + " steps");
  }
  def.query_prepared = d.StrField(o, "query_prepared");
  def.custom_data = d.StrField(o, "custom_data");
  if (const json* opt = d.Object(o, "options")) {
    def.options.wait_result = d.BoolField(*opt, "wait_result");
    def.options.timeout_to_fail_s = d.NonNegField(*opt, "timeout_to_fail");
    def.options.request_timeout_s = d.NonNegField(*opt, "request_timeout");
    def.options.retry_interval_s = d.NonNegField(*opt, "retry_interval");
    def.options.retry_limit = d.NonNegField(*opt, "retry_limit");
    if (const json* hs = d.Array(*opt, "branch_headers")) {
      for (const json& h : *hs) {
        if (d.failed()) break;
        if (!h.is_array() || h.size() != 2) {
          d.Fail("a branch header is not a [name, value] pair");
          break;
        }
        std::string k = d.Str(h[0], "branch_headers[].name");
        std::string v = d.Str(h[1], "branch_headers[].value");
        if (d.failed()) break;
        if (!def.options.branch_headers.emplace(k, std::move(v)).second) {
          d.Fail("duplicate branch header '" + SanitizeUtf8(k) + "'");
        }
      }
    }
  }
  def.concurrent = d.BoolField(o, "concurrent");
  if (const json* orders = d.Array(o, "orders")) {
    const auto n = static_cast<int64_t>(def.steps.size());
    for (const json& e : *orders) {
      if (d.failed()) break;
      if (!e.is_array() || e.size() != 2 || !e[1].is_array()) {
        d.Fail("an orders entry is not a [step, [steps...]] pair");
        break;
      }
      const int64_t i = d.Int(e[0], "orders[].step");
      if (!d.failed() && (i < 0 || i >= n))
        d.Fail("orders step " + std::to_string(i) + " out of range");
      std::vector<int> before;
      for (const json& x : e[1]) {
        const int64_t j = d.Int(x, "orders[].before");
        if (d.failed()) break;
        if (j < 0 || j >= n) {
          d.Fail("orders index " + std::to_string(j) + " out of range");
          break;
        }
        before.push_back(static_cast<int>(j));
      }
      if (d.failed()) break;
      if (!def.orders.emplace(static_cast<int>(i), std::move(before)).second) {
        d.Fail("duplicate orders entry for step " + std::to_string(i));
      }
    }
  }
  def.create_time = d.IntField(o, "create_time");
  if (d.failed()) return d.status();
  return def;
}

Result<TxnState> DecodeStateImpl(std::string_view data) {
  Decoder d("txn state");
  auto doc = d.Open(data);
  if (!doc) return d.status();
  const json& o = *doc;
  TxnState st;
  auto branch = [&](const json& obj, const char* name) {
    const std::string s = d.StrField(obj, name);
    if (d.failed()) return BranchStatus::kPrepared;
    auto b = ParseBranchStatus(s);
    if (!b) d.Fail(std::string("unknown ") + name + " status '" + SanitizeUtf8(s) + "'");
    return b.value_or(BranchStatus::kPrepared);
  };
  const std::string status = d.StrField(o, "status");
  if (!d.failed()) {
    auto g = ParseGlobalStatus(status);
    if (!g) d.Fail("unknown status '" + SanitizeUtf8(status) + "'");
    st.status = g.value_or(GlobalStatus::kPrepared);
  }
  if (const json* steps = d.Array(o, "steps")) {
    for (const json& s : *steps) {
      if (d.failed()) break;
      if (!s.is_object()) {
        d.Fail("a step state is not an object");
        break;
      }
      StepState ss;
      ss.action = branch(s, "action");
      ss.compensate = branch(s, "compensate");
      ss.action_finish_time = d.IntField(s, "action_finish_time");
      ss.compensate_finish_time = d.IntField(s, "compensate_finish_time");
      st.steps.push_back(ss);
    }
  }
  if (o.contains("branches")) {
    if (const json* branches = d.Array(o, "branches")) {
      for (const json& b : *branches) {
        if (d.failed()) break;
        if (!b.is_object()) {
          d.Fail("a registered branch is not an object");
          break;
        }
        RegisteredBranch rb;
        rb.branch_id = d.StrField(b, "branch_id");
        rb.data = d.StrField(b, "data");
        rb.confirm = d.StrField(b, "confirm");
        rb.cancel = d.StrField(b, "cancel");
        rb.status = branch(b, "status");
        rb.finish_time = d.IntField(b, "finish_time");
        rb.register_time = d.IntField(b, "register_time");
        if (!d.failed() && rb.branch_id.empty()) d.Fail("a registered branch has no branch_id");
        st.branches.push_back(std::move(rb));
      }
    }
  }
  st.rollback_reason = d.StrField(o, "rollback_reason");
  st.update_time = d.IntField(o, "update_time");
  st.finish_time = d.IntField(o, "finish_time");
  st.rollback_time = d.IntField(o, "rollback_time");
  if (d.failed()) return d.status();
  return st;
}

void PutTime(json& j, const char* name, TimeMs t, bool omit_zero) {
  if (t == 0 && omit_zero) return;
  j[name] = FormatRfc3339Ms(t);
}

}  // namespace

std::string EncodeDef(const TxnDef& def) {
  size_t reserve = 256 + def.gid.size() + def.query_prepared.size() + def.custom_data.size();
  for (const Step& st : def.steps) reserve += 32 + st.action.size() + st.compensate.size();
  for (const std::string& p : def.payloads) reserve += 8 + p.size() + p.size() / 8;
  Writer w(reserve);
  w.Raw("{").Key("v").Int(kFormatVersion);
  w.Key("gid").Str(def.gid);
  w.Key("trans_type").Str(TransTypeName(def.type));
  w.Key("steps").Raw("[");
  for (const Step& st : def.steps) {
    w.Sep().Raw("{").Key("action").Str(st.action).Key("compensate").Str(st.compensate).Raw("}");
  }
  w.Raw("]").Key("payloads").Raw("[");
  for (const std::string& p : def.payloads) w.Sep().Str(p);
  w.Raw("]");
  w.Key("query_prepared").Str(def.query_prepared);
  w.Key("custom_data").Str(def.custom_data);
  const TxnOptions& o = def.options;
  w.Key("options").Raw("{").Key("wait_result").Bool(o.wait_result);
  w.Key("timeout_to_fail").Int(o.timeout_to_fail_s);
  w.Key("request_timeout").Int(o.request_timeout_s);
  w.Key("retry_interval").Int(o.retry_interval_s);
  w.Key("retry_limit").Int(o.retry_limit);
  w.Key("branch_headers").Raw("[");
  for (const auto& [k, v] : o.branch_headers) w.Sep().Raw("[").Str(k).Raw(",").Str(v).Raw("]");
  w.Raw("]}");
  w.Key("concurrent").Bool(def.concurrent);
  w.Key("orders").Raw("[");
  for (const auto& [i, before] : def.orders) {
    w.Sep().Raw("[").Int(i).Raw(",[");
    for (int j : before) w.Sep().Int(j);
    w.Raw("]]");
  }
  w.Raw("]");
  w.Key("create_time").Int(def.create_time);
  w.Raw("}");
  return w.Take();
}

Result<TxnDef> DecodeDef(std::string_view data) {
  try {
    return DecodeDefImpl(data);
  } catch (const std::exception& e) {
    return DataLoss(std::string("txn def record: ") + SanitizeUtf8(e.what()));
  }
}

std::string EncodeState(const TxnState& state) {
  Writer w(160 + 128 * state.steps.size() + state.rollback_reason.size());
  w.Raw("{").Key("v").Int(kFormatVersion);
  w.Key("status").Str(GlobalStatusName(state.status));
  w.Key("steps").Raw("[");
  for (const StepState& s : state.steps) {
    w.Sep().Raw("{").Key("action").Str(BranchStatusName(s.action));
    w.Key("compensate").Str(BranchStatusName(s.compensate));
    w.Key("action_finish_time").Int(s.action_finish_time);
    w.Key("compensate_finish_time").Int(s.compensate_finish_time).Raw("}");
  }
  w.Raw("]");
  // Only TCC and XA transactions have registered branches; older records have no such field.
  if (!state.branches.empty()) {
    w.Key("branches").Raw("[");
    for (const RegisteredBranch& b : state.branches) {
      w.Sep().Raw("{").Key("branch_id").Str(b.branch_id);
      w.Key("data").Str(b.data);
      w.Key("confirm").Str(b.confirm);
      w.Key("cancel").Str(b.cancel);
      w.Key("status").Str(BranchStatusName(b.status));
      w.Key("finish_time").Int(b.finish_time);
      w.Key("register_time").Int(b.register_time).Raw("}");
    }
    w.Raw("]");
  }
  w.Key("rollback_reason").Str(state.rollback_reason);
  w.Key("update_time").Int(state.update_time);
  w.Key("finish_time").Int(state.finish_time);
  w.Key("rollback_time").Int(state.rollback_time);
  w.Raw("}");
  return w.Take();
}

Result<TxnState> DecodeState(std::string_view data) {
  try {
    return DecodeStateImpl(data);
  } catch (const std::exception& e) {
    return DataLoss(std::string("txn state record: ") + SanitizeUtf8(e.what()));
  }
}

nlohmann::json TransactionToDtmJson(const TxnRecord& rec) {
  const TxnDef& def = rec.def;
  const TxnState& st = rec.state;
  json steps = json::array();
  for (const Step& s : def.steps) {
    json step = {{"action", SanitizeUtf8(s.action)}};
    if (def.type != TransType::kMsg) step["compensate"] = SanitizeUtf8(s.compensate);
    steps.push_back(std::move(step));
  }
  json payloads = json::array();
  for (const std::string& p : def.payloads) payloads.push_back(SanitizeUtf8(p));
  json headers = json::object();
  for (const auto& [k, v] : def.options.branch_headers) headers[SanitizeUtf8(k)] = SanitizeUtf8(v);
  json j = {
      {"gid", SanitizeUtf8(def.gid)},
      {"trans_type", TransTypeName(def.type)},
      {"status", GlobalStatusName(st.status)},
      {"query_prepared", SanitizeUtf8(def.query_prepared)},
      {"protocol", "http"},
  };
  PutTime(j, "create_time", def.create_time, false);
  PutTime(j, "update_time", st.update_time, false);
  PutTime(j, "finish_time", st.finish_time, true);
  PutTime(j, "rollback_time", st.rollback_time, true);
  j["rollback_reason"] = SanitizeUtf8(st.rollback_reason);
  j["custom_data"] = SanitizeUtf8(def.custom_data);
  j["steps"] = std::move(steps);
  j["payloads"] = std::move(payloads);
  j["wait_result"] = def.options.wait_result;
  j["timeout_to_fail"] = def.options.timeout_to_fail_s;
  j["request_timeout"] = def.options.request_timeout_s;
  j["retry_interval"] = def.options.retry_interval_s;
  j["retry_limit"] = def.options.retry_limit;
  j["branch_headers"] = std::move(headers);
  return j;
}

nlohmann::json BranchesToDtmJson(const TxnRecord& rec) {
  const TxnDef& def = rec.def;
  json out = json::array();
  const std::string gid = SanitizeUtf8(def.gid);
  const std::string create = FormatRfc3339Ms(def.create_time);
  auto add = [&](size_t i, const char* op, const std::string& url, BranchStatus status,
                 TimeMs finish) {
    json b = {
        {"gid", gid},
        {"branch_id", BranchId(i)},
        {"op", op},
        {"url", SanitizeUtf8(url)},
        {"bin_data", Base64Encode(i < def.payloads.size() ? def.payloads[i] : std::string())},
        {"status", BranchStatusName(status)},
    };
    PutTime(b, "finish_time", finish, true);
    b["create_time"] = create;
    out.push_back(std::move(b));
  };
  const bool committing =
      rec.state.status == GlobalStatus::kSubmitted || rec.state.status == GlobalStatus::kSucceed;
  const bool rolling_back =
      rec.state.status == GlobalStatus::kAborting || rec.state.status == GlobalStatus::kFailed;
  for (const RegisteredBranch& rb : rec.state.branches) {
    auto row = [&](const char* op, const std::string& url, bool decided) {
      json b = {
          {"gid", gid},
          {"branch_id", SanitizeUtf8(rb.branch_id)},
          {"op", op},
          {"url", SanitizeUtf8(url)},
          {"bin_data", Base64Encode(rb.data)},
          {"status", BranchStatusName(decided ? rb.status : BranchStatus::kPrepared)},
      };
      if (decided) PutTime(b, "finish_time", rb.finish_time, true);
      b["create_time"] = FormatRfc3339Ms(rb.register_time);
      out.push_back(std::move(b));
    };
    // DTM shows both second-phase operations of a branch; only the decided one moves.
    if (def.type == TransType::kTcc) {
      row("cancel", rb.cancel, rolling_back);
      row("confirm", rb.confirm, committing);
    } else {
      row("rollback", rb.confirm, rolling_back);
      row("commit", rb.confirm, committing);
    }
  }
  for (size_t i = 0; i < def.steps.size(); ++i) {
    // A state shorter than the def (never written by a correct engine) renders as prepared.
    const StepState ss = i < rec.state.steps.size() ? rec.state.steps[i] : StepState{};
    if (def.type == TransType::kSaga) {
      add(i, "compensate", def.steps[i].compensate, ss.compensate, ss.compensate_finish_time);
    }
    add(i, "action", def.steps[i].action, ss.action, ss.action_finish_time);
  }
  return out;
}

std::string FormatRfc3339Ms(TimeMs t) {
  constexpr int64_t kDayMs = 86'400'000;
  int64_t days = t / kDayMs;
  int64_t ms = t % kDayMs;
  if (ms < 0) {
    ms += kDayMs;
    --days;
  }
  // Howard Hinnant's civil_from_days.
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(ms / 3'600'000), static_cast<long long>(ms / 60'000 % 60),
                static_cast<long long>(ms / 1000 % 60), static_cast<long long>(ms % 1000));
  return buf;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(kB64[(n >> 6) & 63]);
    out.push_back(kB64[n & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    const uint32_t n = (at(i) << 16) | (rest == 2 ? at(i + 1) << 8 : 0);
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(rest == 2 ? kB64[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string FormatScanPosition(uint64_t seq) { return std::to_string(seq); }

Result<uint64_t> ScanUpperBound(std::string_view position, size_t limit) {
  if (limit == 0) return InvalidArgument("scan limit must be positive");
  if (position.empty()) return std::numeric_limits<uint64_t>::max();
  return ParseScanPosition(position);
}

Result<uint64_t> ParseScanPosition(std::string_view position) {
  if (position.empty() || position.size() > 20) {
    return InvalidArgument("malformed position '" + SanitizeUtf8(position.substr(0, 40)) + "'");
  }
  uint64_t v = 0;
  for (char c : position) {
    if (c < '0' || c > '9') {
      return InvalidArgument("malformed position '" + SanitizeUtf8(position) + "'");
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return InvalidArgument("position '" + std::string(position) + "' out of range");
    }
    v = v * 10 + digit;
  }
  return v;
}

}  // namespace dtx::coord
