#include "coord/txn_codec.h"

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

namespace dtx::coord {
namespace {

using nlohmann::json;

// 2026-11-26T10:00:00.123Z
constexpr TimeMs kT0 = 1'795'687'200'123;

TxnDef SagaDef() {
  TxnDef d;
  d.gid = "gid-saga-1";
  d.type = TransType::kSaga;
  d.steps = {{"http://a/TransOut", "http://a/TransOutRevert"},
             {"http://b/TransIn", "http://b/TransInRevert"},
             {"http://c/Notify", ""}};
  d.payloads = {R"({"amount":30,"note":"转账 ✓ \"quoted\"\n"})", "", "plain"};
  d.custom_data = R"({"concurrent":true,"orders":{"1":[0],"2":[0,1]}})";
  d.concurrent = true;
  d.orders = {{1, {0}}, {2, {0, 1}}};
  d.options.wait_result = true;
  d.options.timeout_to_fail_s = 60;
  d.options.request_timeout_s = 5;
  d.options.retry_interval_s = 7;
  d.options.retry_limit = 3;
  d.options.branch_headers = {{"Authorization", "Bearer x"}, {"X-Trace", "t-1"}};
  d.create_time = kT0;
  return d;
}

TxnDef MsgDef() {
  TxnDef d;
  d.gid = "msg-1";
  d.type = TransType::kMsg;
  d.steps = {{"http://a/TransIn", ""}};
  d.payloads = {"{}"};
  d.query_prepared = "http://a/QueryPrepared";
  d.create_time = 1000;
  return d;
}

TxnState SomeState() {
  TxnState s;
  s.status = GlobalStatus::kAborting;
  s.steps = {{BranchStatus::kSucceed, BranchStatus::kSucceed, kT0 + 5, kT0 + 50},
             {BranchStatus::kFailed, BranchStatus::kPrepared, kT0 + 9, 0},
             {}};
  s.rollback_reason = "branch 02 answered FAILURE: 余额不足 \x01\x1f\t\r\\\"/\x7f";
  s.update_time = kT0 + 60;
  s.finish_time = 0;
  s.rollback_time = -5;  // negative times round-trip too
  return s;
}

void ExpectDefEq(const TxnDef& a, const TxnDef& b) {
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.payloads, b.payloads);
  EXPECT_EQ(a.query_prepared, b.query_prepared);
  EXPECT_EQ(a.custom_data, b.custom_data);
  EXPECT_EQ(a.options, b.options);
  EXPECT_EQ(a.concurrent, b.concurrent);
  EXPECT_EQ(a.orders, b.orders);
  EXPECT_EQ(a.create_time, b.create_time);
}

TEST(TxnCodec, SagaDefRoundTrip) {
  const TxnDef d = SagaDef();
  auto back = DecodeDef(EncodeDef(d));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectDefEq(*back, d);
}

TEST(TxnCodec, MsgDefRoundTrip) {
  const TxnDef d = MsgDef();
  auto back = DecodeDef(EncodeDef(d));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectDefEq(*back, d);
}

TEST(TxnCodec, BinaryBytesRoundTripInEveryStringField) {
  TxnDef d = SagaDef();
  std::string bin;
  for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
  d.payloads[1] = bin;
  d.payloads[2] = std::string("\xC3\x28 \xED\xA0\x80 \xF4\x90\x80\x80 \xE0\x80\xAF", 15);
  d.gid = std::string("g\xFF", 2);
  d.custom_data = std::string("\x80", 1);
  d.options.branch_headers[std::string("K\xFE", 2)] = std::string("v\xC0\xAF", 3);
  auto back = DecodeDef(EncodeDef(d));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectDefEq(*back, d);

  TxnState s = SomeState();
  s.rollback_reason = bin;
  auto sback = DecodeState(EncodeState(s));
  ASSERT_TRUE(sback.ok()) << sback.status().ToString();
  EXPECT_EQ(*sback, s);
}

TEST(TxnCodec, StateRoundTrip) {
  for (GlobalStatus st : {GlobalStatus::kPrepared, GlobalStatus::kSubmitted,
                          GlobalStatus::kAborting, GlobalStatus::kSucceed, GlobalStatus::kFailed}) {
    TxnState s = SomeState();
    s.status = st;
    auto back = DecodeState(EncodeState(s));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, s);
  }
  auto empty = DecodeState(EncodeState(TxnState{}));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, TxnState{});
}

TxnState TccState() {
  TxnState s;
  s.status = GlobalStatus::kAborting;
  s.branches.push_back(RegisteredBranch{"01", "{\"a\":1}", "http://h/c1", "http://h/x1",
                                        BranchStatus::kSucceed, 1700000000123, 1700000000001});
  s.branches.push_back(RegisteredBranch{"b-2", std::string("\xff\x00z", 3), "http://h/c2",
                                        "http://h/x2", BranchStatus::kPrepared, 0, 1700000000002});
  return s;
}

TEST(TxnCodec, RegisteredBranchesRoundTrip) {
  TxnState s = TccState();
  auto back = DecodeState(EncodeState(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
}

TEST(TxnCodec, RegisteredBranchRecordsAreValidated) {
  std::string enc = EncodeState(TccState());
  std::string bad = enc;
  bad.replace(bad.find("\"branch_id\":\"01\""), 16, "\"branch_id\":\"\"  ");
  auto r = DecodeState(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  std::string bad_status = enc;
  bad_status.replace(bad_status.find("\"status\":\"succeed\""), 18, "\"status\":\"maybe\"  ");
  EXPECT_EQ(DecodeState(bad_status).status().code(), StatusCode::kDataLoss);
}

TEST(TxnCodec, TccBranchesRenderAsDtmCancelAndConfirmRows) {
  TxnRecord rec;
  rec.def.gid = "t";
  rec.def.type = TransType::kTcc;
  rec.state = TccState();
  auto rows = BranchesToDtmJson(rec);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["op"], "cancel");
  EXPECT_EQ(rows[0]["url"], "http://h/x1");
  EXPECT_EQ(rows[0]["status"], "succeed");
  EXPECT_EQ(rows[0]["bin_data"], "eyJhIjoxfQ==");
  EXPECT_EQ(rows[1]["op"], "confirm");
  EXPECT_EQ(rows[1]["status"], "prepared");
  EXPECT_EQ(rows[2]["branch_id"], "b-2");
  rec.def.type = TransType::kXa;
  rec.state.status = GlobalStatus::kSucceed;
  rows = BranchesToDtmJson(rec);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["op"], "rollback");
  EXPECT_EQ(rows[0]["status"], "prepared");
  EXPECT_EQ(rows[1]["op"], "commit");
  EXPECT_EQ(rows[1]["url"], "http://h/c1");
  EXPECT_EQ(rows[1]["status"], "succeed");
}

void ExpectDataLoss(const Result<TxnDef>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

void ExpectDataLoss(const Result<TxnState>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

// Rewrites one field of an encoded def and decodes the result.
Result<TxnDef> DecodeDefWith(const std::function<void(json&)>& edit) {
  json j = json::parse(EncodeDef(SagaDef()));
  edit(j);
  return DecodeDef(j.dump());
}

Result<TxnState> DecodeStateWith(const std::function<void(json&)>& edit) {
  json j = json::parse(EncodeState(SomeState()));
  edit(j);
  return DecodeState(j.dump());
}

TEST(TxnCodec, DecodeRejectsGarbage) {
  ExpectDataLoss(DecodeDef(""), "not valid JSON");
  ExpectDataLoss(DecodeDef(std::string("\x00\x01\x02", 3)), "not valid JSON");
  ExpectDataLoss(DecodeDef("[1,2]"), "not a JSON object");
  ExpectDataLoss(DecodeDef("{}"), "missing field 'v'");
  ExpectDataLoss(DecodeState("null"), "not a JSON object");
  ExpectDataLoss(DecodeState("{\"v\":1} trailing"), "not valid JSON");
  ExpectDataLoss(DecodeState(std::string("{\"v\":1,\"status\":\"\xFF\"}")), "not valid JSON");
}

TEST(TxnCodec, DecodeRejectsEveryTruncation) {
  const std::string def = EncodeDef(SagaDef());
  for (size_t n = 0; n < def.size(); ++n) {
    auto r = DecodeDef(std::string_view(def).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  }
  const std::string state = EncodeState(SomeState());
  for (size_t n = 0; n < state.size(); ++n) {
    auto r = DecodeState(std::string_view(state).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  }
}

TEST(TxnCodec, DecodeDefRejectsWrongTypesAndInconsistency) {
  ExpectDataLoss(DecodeDefWith([](json& j) { j["v"] = 2; }), "unsupported format version 2");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["v"] = "1"; }), "'v' is not an integer");
  ExpectDataLoss(DecodeDefWith([](json& j) { j.erase("gid"); }), "missing field 'gid'");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["gid"] = ""; }), "empty gid");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["gid"] = 7; }), "'gid' is not a string");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["trans_type"] = "workflow"; }),
                 "unknown trans_type");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["steps"] = json::object(); }),
                 "'steps' is not an array");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["steps"][0] = "x"; }), "step is not an object");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["steps"][0].erase("compensate"); }),
                 "missing field 'compensate'");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["payloads"].erase(0); }), "2 payloads for 3 steps");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["payloads"][0] = json{{"b64", "!!!"}};
                 }),
                 "invalid base64");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["payloads"][0] = json{{"b64", "QQ="}};
                 }),
                 "invalid base64");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["options"]["wait_result"] = 1; }),
                 "'wait_result' is not a boolean");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["options"]["retry_limit"] = -1; }),
                 "'retry_limit' is negative");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["options"]["timeout_to_fail"] = 1.5; }),
                 "'timeout_to_fail' is not an integer");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["options"]["request_timeout"] = 1ULL << 63; }),
                 "'request_timeout' is out of range");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["options"]["branch_headers"] = json::array({1}); }),
                 "not a [name, value] pair");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["options"]["branch_headers"] = json::array({{"a", "1"}, {"a", "2"}});
                 }),
                 "duplicate branch header 'a'");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["orders"] = json::array({{3, {0}}});
                 }),
                 "orders step 3 out of range");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["orders"] = json::array({{1, {-1}}});
                 }),
                 "orders index -1 out of range");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["orders"] = json::array({{1, {0}}, {1, {2}}});
                 }),
                 "duplicate orders entry");
  ExpectDataLoss(DecodeDefWith([](json& j) {
                   j["orders"] = json::array({{1, 0}});
                 }),
                 "not a [step, [steps...]] pair");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["concurrent"] = "yes"; }),
                 "'concurrent' is not a boolean");
  ExpectDataLoss(DecodeDefWith([](json& j) { j["create_time"] = nullptr; }),
                 "'create_time' is not an integer");
}

TEST(TxnCodec, DecodeStateRejectsWrongTypes) {
  ExpectDataLoss(DecodeStateWith([](json& j) { j["status"] = "done"; }), "unknown status 'done'");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["steps"][0]["action"] = "ok"; }),
                 "unknown action status 'ok'");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["steps"][1]["compensate"] = true; }),
                 "'compensate' is not a string");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["steps"][0].erase("action_finish_time"); }),
                 "missing field 'action_finish_time'");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["steps"] = 3; }), "'steps' is not an array");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["steps"][0] = json::array(); }),
                 "step state is not an object");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["update_time"] = "now"; }),
                 "'update_time' is not an integer");
  ExpectDataLoss(DecodeStateWith([](json& j) { j["rollback_reason"] = json::array(); }),
                 "'rollback_reason' is not a string");
}

TEST(TxnCodec, Rfc3339Format) {
  EXPECT_EQ(FormatRfc3339Ms(kT0), "2026-11-26T10:00:00.123Z");
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(951'782'400'000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  // Extreme values format without crashing.
  EXPECT_FALSE(FormatRfc3339Ms(std::numeric_limits<TimeMs>::max()).empty());
  EXPECT_FALSE(FormatRfc3339Ms(std::numeric_limits<TimeMs>::min()).empty());
}

TEST(TxnCodec, Base64MatchesRfc4648) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(std::string("\xFF\xFE\x00", 3)), "//4A");
}

TEST(TxnCodec, ScanPositions) {
  EXPECT_EQ(FormatScanPosition(42), "42");
  auto p = ParseScanPosition("18446744073709551615");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, 18446744073709551615ULL);
  for (const char* bad :
       {"", "-1", "1a", " 1", "18446744073709551616", "999999999999999999999", "0x10"}) {
    auto r = ParseScanPosition(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TxnCodec, TransactionDtmJsonShape) {
  TxnRecord rec{SagaDef(), SomeState()};
  rec.state.rollback_time = 0;
  json j = TransactionToDtmJson(rec);
  EXPECT_EQ(j["gid"], "gid-saga-1");
  EXPECT_EQ(j["trans_type"], "saga");
  EXPECT_EQ(j["status"], "aborting");
  EXPECT_EQ(j["protocol"], "http");
  EXPECT_EQ(j["query_prepared"], "");
  EXPECT_EQ(j["create_time"], "2026-11-26T10:00:00.123Z");
  EXPECT_EQ(j["update_time"], "2026-11-26T10:00:00.183Z");
  EXPECT_FALSE(j.contains("finish_time"));
  EXPECT_FALSE(j.contains("rollback_time"));
  EXPECT_EQ(j["rollback_reason"], rec.state.rollback_reason);
  EXPECT_EQ(j["custom_data"], rec.def.custom_data);
  EXPECT_EQ(j["steps"], json::parse(R"([
      {"action":"http://a/TransOut","compensate":"http://a/TransOutRevert"},
      {"action":"http://b/TransIn","compensate":"http://b/TransInRevert"},
      {"action":"http://c/Notify","compensate":""}])"));
  EXPECT_EQ(j["payloads"][0], rec.def.payloads[0]);
  EXPECT_EQ(j["payloads"].size(), 3u);
  EXPECT_EQ(j["wait_result"], true);
  EXPECT_EQ(j["timeout_to_fail"], 60);
  EXPECT_EQ(j["request_timeout"], 5);
  EXPECT_EQ(j["retry_interval"], 7);
  EXPECT_EQ(j["retry_limit"], 3);
  EXPECT_EQ(j["branch_headers"], json::parse(R"({"Authorization":"Bearer x","X-Trace":"t-1"})"));

  rec.state.status = GlobalStatus::kFailed;
  rec.state.rollback_time = kT0 + 1000;
  j = TransactionToDtmJson(rec);
  EXPECT_EQ(j["rollback_time"], "2026-11-26T10:00:01.123Z");

  TxnRecord msg{MsgDef(), TxnState{}};
  msg.state.steps.resize(1);
  msg.state.status = GlobalStatus::kSucceed;
  msg.state.finish_time = kT0;
  j = TransactionToDtmJson(msg);
  EXPECT_EQ(j["trans_type"], "msg");
  EXPECT_EQ(j["query_prepared"], "http://a/QueryPrepared");
  EXPECT_EQ(j["steps"], json::parse(R"([{"action":"http://a/TransIn"}])"));
  EXPECT_EQ(j["finish_time"], "2026-11-26T10:00:00.123Z");
}

TEST(TxnCodec, DtmJsonAlwaysDumpsEvenWithInvalidUtf8) {
  TxnRecord rec{SagaDef(), SomeState()};
  rec.def.payloads[0] = std::string("ok\xFF", 3);
  rec.state.rollback_reason = std::string("\xC3", 1);
  json j = TransactionToDtmJson(rec);
  EXPECT_EQ(j["payloads"][0], "ok\xEF\xBF\xBD");
  EXPECT_EQ(j["rollback_reason"], "\xEF\xBF\xBD");
  EXPECT_NO_THROW((void)j.dump());
  json b = BranchesToDtmJson(rec);
  EXPECT_EQ(b[1]["bin_data"], Base64Encode(rec.def.payloads[0]));
  EXPECT_NO_THROW((void)b.dump());
}

TEST(TxnCodec, SagaBranchesCompensateThenAction) {
  TxnRecord rec{SagaDef(), SomeState()};
  json b = BranchesToDtmJson(rec);
  ASSERT_EQ(b.size(), 6u);
  const char* ops[] = {"compensate", "action", "compensate", "action", "compensate", "action"};
  const char* ids[] = {"01", "01", "02", "02", "03", "03"};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(b[i]["op"], ops[i]) << i;
    EXPECT_EQ(b[i]["branch_id"], ids[i]) << i;
    EXPECT_EQ(b[i]["gid"], "gid-saga-1");
    EXPECT_EQ(b[i]["create_time"], "2026-11-26T10:00:00.123Z");
  }
  EXPECT_EQ(b[0]["url"], "http://a/TransOutRevert");
  EXPECT_EQ(b[0]["status"], "succeed");
  EXPECT_EQ(b[0]["finish_time"], "2026-11-26T10:00:00.173Z");
  EXPECT_EQ(b[1]["url"], "http://a/TransOut");
  EXPECT_EQ(b[1]["status"], "succeed");
  EXPECT_EQ(b[1]["finish_time"], "2026-11-26T10:00:00.128Z");
  EXPECT_EQ(b[1]["bin_data"], Base64Encode(rec.def.payloads[0]));
  EXPECT_EQ(b[2]["status"], "prepared");
  EXPECT_FALSE(b[2].contains("finish_time"));
  EXPECT_EQ(b[3]["status"], "failed");
  EXPECT_EQ(b[3]["bin_data"], "");
  EXPECT_EQ(b[5]["bin_data"], "cGxhaW4=");  // "plain"
  EXPECT_EQ(b[4]["url"], "");
}

TEST(TxnCodec, MsgBranchesActionOnly) {
  TxnRecord rec{MsgDef(), TxnState{}};
  rec.state.steps = {{BranchStatus::kSucceed, BranchStatus::kPrepared, 2500, 0}};
  json b = BranchesToDtmJson(rec);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0], json::parse(R"({"gid":"msg-1","branch_id":"01","op":"action",
      "url":"http://a/TransIn","bin_data":"e30=","status":"succeed",
      "finish_time":"1970-01-01T00:00:02.500Z","create_time":"1970-01-01T00:00:01.000Z"})"));
}

TEST(TxnCodec, BranchesTolerateShortState) {
  TxnRecord rec{SagaDef(), TxnState{}};
  json b = BranchesToDtmJson(rec);
  ASSERT_EQ(b.size(), 6u);
  for (const json& e : b) EXPECT_EQ(e["status"], "prepared");
}

}  // namespace
}  // namespace dtx::coord
