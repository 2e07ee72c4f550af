#include "coord/request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

namespace dtx::coord {
namespace {

// Parses `body` for `op` and returns the error message, or "" if the body was accepted.
std::string RejectionOf(ApiOp op, const std::string& body, const Limits& limits = {}) {
  auto r = ParseTxnRequest(op, body, limits);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  return r.status().message();
}

void ExpectRejected(ApiOp op, const std::string& body, const std::string& fragment,
                    const Limits& limits = {}) {
  std::string message = RejectionOf(op, body, limits);
  EXPECT_FALSE(message.empty()) << "accepted: " << body;
  EXPECT_NE(message.find(fragment), std::string::npos)
      << "message '" << message << "' does not mention '" << fragment << "' for " << body;
}

void ExpectAccepted(ApiOp op, const std::string& body) {
  EXPECT_EQ(RejectionOf(op, body), "") << body;
}

// A valid two-step saga body with `extra` (JSON members like `"key": value`) appended.
std::string Saga(const std::string& extra = "") {
  return R"({"gid": "g", "trans_type": "saga",
    "steps": [{"action": "http://a/x", "compensate": "http://a/y"},
              {"action": "http://b/x", "compensate": "http://b/y"}],
    "payloads": ["p0", "p1"])" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

// A one-step saga body whose step is `step`.
std::string SagaWithStep(const std::string& step) {
  return R"({"gid": "g", "trans_type": "saga", "steps": [)" + step + R"(], "payloads": [""]})";
}

// A three-step saga body whose custom_data is the string `custom`.
std::string SagaCustom(const std::string& custom) {
  return R"({"gid": "g", "trans_type": "saga",
    "steps": [{"action": "http://a/x"}, {"action": "http://b/x"}, {"action": "http://c/x"}],
    "payloads": ["", "", ""], "custom_data": )" +
         nlohmann::json(custom).dump() + "}";
}

// A body with only gid and trans_type changed from a valid saga.
std::string SagaGid(const std::string& gid_json) {
  return R"({"gid": )" + gid_json +
         R"(, "trans_type": "saga", "steps": [{"action": "http://a/x"}], "payloads": [""]})";
}

TEST(ParseTxnRequest, ValidSagaBodyIsParsedWithEveryField) {
  const std::string body = R"({
    "gid": "g-1", "trans_type": "saga",
    "steps": [{"action": "http://svc:8081/api/TransOut", "compensate": "http://svc:8081/api/TransOutRevert"},
              {"action": "http://svc:8081/api/TransIn", "compensate": "http://svc:8081/api/TransInRevert"}],
    "payloads": ["{\"amount\":30}", "{\"amount\":40}"],
    "custom_data": "{\"concurrent\":true,\"orders\":{\"1\":[0]}}",
    "wait_result": true, "timeout_to_fail": 60, "request_timeout": 5, "retry_interval": 2,
    "retry_limit": 7, "branch_headers": {"X-Trace": "abc"}
  })";
  auto r = ParseTxnRequest(ApiOp::kSubmit, body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const TxnDef& d = r->def;
  EXPECT_EQ(r->op, ApiOp::kSubmit);
  EXPECT_TRUE(r->has_trans_type);
  EXPECT_TRUE(r->has_steps);
  EXPECT_EQ(d.gid, "g-1");
  EXPECT_EQ(d.type, TransType::kSaga);
  ASSERT_EQ(d.steps.size(), 2u);
  EXPECT_EQ(d.steps[0].action, "http://svc:8081/api/TransOut");
  EXPECT_EQ(d.steps[0].compensate, "http://svc:8081/api/TransOutRevert");
  EXPECT_EQ(d.steps[1].action, "http://svc:8081/api/TransIn");
  EXPECT_EQ(d.payloads, (std::vector<std::string>{R"({"amount":30})", R"({"amount":40})"}));
  EXPECT_TRUE(d.concurrent);
  EXPECT_EQ(d.orders, (std::map<int, std::vector<int>>{{1, {0}}}));
  EXPECT_TRUE(d.options.wait_result);
  EXPECT_EQ(d.options.timeout_to_fail_s, 60);
  EXPECT_EQ(d.options.request_timeout_s, 5);
  EXPECT_EQ(d.options.retry_interval_s, 2);
  EXPECT_EQ(d.options.retry_limit, 7);
  EXPECT_EQ(d.options.branch_headers, (std::map<std::string, std::string>{{"X-Trace", "abc"}}));
  EXPECT_EQ(d.create_time, 0);
}

TEST(ParseTxnRequest, SagaDefaultsAreSequentialWithNoOptions) {
  auto r = ParseTxnRequest(ApiOp::kSubmit, Saga());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->def.concurrent);
  EXPECT_TRUE(r->def.orders.empty());
  EXPECT_EQ(r->def.options, TxnOptions{});
}

TEST(ParseTxnRequest, SagaCompensateIsOptional) {
  auto r = ParseTxnRequest(ApiOp::kSubmit, SagaWithStep(R"({"action": "http://a/x"})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->def.steps[0].compensate, "");
}

TEST(ParseTxnRequest, ValidMsgPrepareAndSubmitBodies) {
  const std::string prepare = R"({"gid": "m1", "trans_type": "msg",
    "steps": [{"action": "http://a:1/in"}], "payloads": ["{}"],
    "query_prepared": "http://a:1/query"})";
  auto p = ParseTxnRequest(ApiOp::kPrepare, prepare);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->def.type, TransType::kMsg);
  EXPECT_EQ(p->def.query_prepared, "http://a:1/query");
  EXPECT_EQ(p->def.steps.size(), 1u);

  // After a prepare, a msg submit may carry only gid and trans_type.
  auto s = ParseTxnRequest(ApiOp::kSubmit, R"({"gid": "m1", "trans_type": "msg"})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->has_steps);
  EXPECT_TRUE(s->def.steps.empty());
}

TEST(ParseTxnRequest, AbortAndForceStopNeedOnlyGid) {
  auto a = ParseTxnRequest(ApiOp::kAbort, R"({"gid": "m1"})");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_FALSE(a->has_trans_type);
  EXPECT_EQ(a->def.gid, "m1");
  auto f = ParseTxnRequest(ApiOp::kForceStop, R"({"gid": "m1", "trans_type": "saga"})");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(f->has_trans_type);
  EXPECT_EQ(f->op, ApiOp::kForceStop);
}

TEST(ParseTxnRequest, NullOptionalFieldsMeanAbsent) {
  ExpectAccepted(ApiOp::kSubmit, Saga(R"("custom_data": null, "wait_result": null,
      "timeout_to_fail": null, "branch_headers": null, "query_prepared": null)"));
}

TEST(ParseTxnRequest, RejectsMalformedJson) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", )", "not valid JSON");
  ExpectRejected(ApiOp::kSubmit, "", "not valid JSON");
  ExpectRejected(ApiOp::kSubmit, std::string("{\"gid\": \"g\0\"}", 12), "not valid JSON");
}

TEST(ParseTxnRequest, RejectsNonObjectBody) {
  ExpectRejected(ApiOp::kSubmit, R"(["gid", "g"])", "JSON object");
  ExpectRejected(ApiOp::kSubmit, R"("gid")", "JSON object");
  ExpectRejected(ApiOp::kSubmit, "42", "JSON object");
  ExpectRejected(ApiOp::kAbort, "null", "JSON object");
}

TEST(ParseTxnRequest, RejectsMissingOrNonStringGid) {
  ExpectRejected(ApiOp::kSubmit, R"({"trans_type": "saga"})", "gid");
  ExpectRejected(ApiOp::kSubmit, SagaGid(R"("")"), "gid");
  ExpectRejected(ApiOp::kSubmit, SagaGid("17"), "gid");
  ExpectRejected(ApiOp::kAbort, R"({"trans_type": "msg"})", "gid");
}

TEST(ParseTxnRequest, RejectsGidWithSpacesControlOrNonAscii) {
  ExpectRejected(ApiOp::kSubmit, SagaGid(R"("a b")"), "gid");
  ExpectRejected(ApiOp::kSubmit, SagaGid(R"("a\tb")"), "gid");
  ExpectRejected(ApiOp::kSubmit, SagaGid(R"("a\u0000b")"), "gid");
  ExpectRejected(ApiOp::kSubmit, SagaGid(R"("caf\u00e9")"), "gid");
  ExpectAccepted(ApiOp::kSubmit, SagaGid(R"("Aa0-_.:~!")"));
}

TEST(ParseTxnRequest, RejectsGidLongerThanTheLimit) {
  ExpectAccepted(ApiOp::kSubmit, SagaGid("\"" + std::string(128, 'x') + "\""));
  ExpectRejected(ApiOp::kSubmit, SagaGid("\"" + std::string(129, 'x') + "\""), "longer than 128");
  Limits small;
  small.max_gid_bytes = 4;
  ExpectRejected(ApiOp::kSubmit, SagaGid(R"("abcde")"), "longer than 4", small);
}

TEST(ParseTxnRequest, RejectsMissingTransTypeExceptForAbortAndForceStop) {
  ExpectRejected(ApiOp::kSubmit,
                 R"({"gid": "g", "steps": [{"action": "http://a/x"}], "payloads": [""]})",
                 "trans_type");
  ExpectRejected(ApiOp::kPrepare, R"({"gid": "g"})", "trans_type");
  ExpectAccepted(ApiOp::kAbort, R"({"gid": "g"})");
  ExpectAccepted(ApiOp::kForceStop, R"({"gid": "g"})");
}

TEST(ParseTxnRequest, RejectsUnknownTransType) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "sagas"})", "unknown trans_type");
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": 1})", "trans_type");
  ExpectRejected(ApiOp::kAbort, R"({"gid": "g", "trans_type": "x"})", "unknown trans_type");
}

TEST(ParseTxnRequest, RejectsWorkflowAsNotSupportedYet) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "workflow"})", "not supported yet");
}

TEST(ParseTxnRequest, TccAndXaArePreparedAndSubmittedWithoutSteps) {
  for (const char* type : {"tcc", "xa"}) {
    const std::string body = std::string(R"({"gid": "g", "trans_type": ")") + type + R"("})";
    ExpectAccepted(ApiOp::kPrepare, body);
    ExpectAccepted(ApiOp::kSubmit, body);
    ExpectRejected(ApiOp::kSubmit,
                   std::string(R"({"gid": "g", "trans_type": ")") + type +
                       R"(", "steps": [{"action": "http://a/x"}], "payloads": [""]})",
                   "registerBranch");
  }
}

TEST(ParseTxnRequest, RegisterBranchOfTccNeedsBranchIdConfirmAndCancel) {
  auto ok = ParseTxnRequest(ApiOp::kRegisterBranch,
                            R"({"gid": "g", "trans_type": "tcc", "branch_id": "01", "data": "{}",
                                "confirm": "http://a:1/c", "cancel": "http://a:1/x"})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->branch.branch_id, "01");
  EXPECT_EQ(ok->branch.data, "{}");
  EXPECT_EQ(ok->branch.confirm, "http://a:1/c");
  EXPECT_EQ(ok->branch.cancel, "http://a:1/x");
  ExpectRejected(
      ApiOp::kRegisterBranch,
      R"({"gid": "g", "trans_type": "tcc", "confirm": "http://a/c", "cancel": "http://a/x"})",
      "branch_id");
  ExpectRejected(ApiOp::kRegisterBranch,
                 R"({"gid": "g", "trans_type": "tcc", "branch_id": "01", "cancel": "http://a/x"})",
                 "confirm");
  ExpectRejected(ApiOp::kRegisterBranch,
                 R"({"gid": "g", "trans_type": "tcc", "branch_id": "01", "confirm": "http://a/c"})",
                 "cancel");
  ExpectRejected(ApiOp::kRegisterBranch,
                 R"({"gid": "g", "trans_type": "tcc", "branch_id": "0 1", "confirm": "http://a/c",
                     "cancel": "http://a/x"})",
                 "branch_id");
  ExpectRejected(ApiOp::kRegisterBranch,
                 R"({"gid": "g", "trans_type": "tcc", "branch_id": "01", "confirm": "ftp://a/c",
                     "cancel": "http://a/x"})",
                 "confirm");
}

TEST(ParseTxnRequest, RegisterBranchOfXaNeedsUrl) {
  auto ok = ParseTxnRequest(
      ApiOp::kRegisterBranch,
      R"({"gid": "g", "trans_type": "xa", "branch_id": "01", "url": "http://a/x"})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->branch.confirm, "http://a/x");
  EXPECT_TRUE(ok->branch.cancel.empty());
  ExpectRejected(ApiOp::kRegisterBranch, R"({"gid": "g", "trans_type": "xa", "branch_id": "01"})",
                 "url");
}

TEST(ParseTxnRequest, RejectsRegisterBranchForSagaAndMsgAndWithoutTransType) {
  ExpectRejected(ApiOp::kRegisterBranch, R"({"gid": "g", "trans_type": "saga"})", "registerBranch");
  ExpectRejected(ApiOp::kRegisterBranch, R"({"gid": "g", "trans_type": "msg"})", "registerBranch");
  ExpectRejected(ApiOp::kRegisterBranch, R"({"gid": "g", "branch_id": "01"})", "trans_type");
}

TEST(ParseTxnRequest, RejectsStepsThatAreNotAnArrayOfObjects) {
  ExpectRejected(ApiOp::kSubmit,
                 R"({"gid": "g", "trans_type": "saga", "steps": {"action": "http://a/x"}})",
                 "'steps' must be an array");
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"("http://a/x")"), "steps[0] must be an object");
}

TEST(ParseTxnRequest, RejectsSagaWithoutSteps) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "saga"})", "at least one step");
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "saga", "steps": [],
      "payloads": []})",
                 "at least one step");
  ExpectRejected(ApiOp::kPrepare, R"({"gid": "g", "trans_type": "msg",
      "query_prepared": "http://a/q"})",
                 "at least one step");
}

TEST(ParseTxnRequest, RejectsTooManySteps) {
  Limits small;
  small.max_steps = 1;
  ExpectRejected(ApiOp::kSubmit, Saga(), "too many steps", small);
}

TEST(ParseTxnRequest, RejectsStepWithoutAction) {
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"compensate": "http://a/y"})"),
                 "steps[0].action is required");
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": ""})"), "steps[0].action");
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": 5})"), "steps[0]");
}

TEST(ParseTxnRequest, RejectsNonHttpUrls) {
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": "ftp://a/x"})"),
                 "not an absolute http:// URL");
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": "/api/x"})"),
                 "not an absolute http:// URL");
  ExpectRejected(ApiOp::kSubmit,
                 SagaWithStep(R"({"action": "http://a/x", "compensate": "grpc://a/y"})"),
                 "steps[0].compensate");
}

TEST(ParseTxnRequest, RejectsHttpsUrlsAsNotSupportedYet) {
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": "https://a/x"})"), "https");
  ExpectRejected(ApiOp::kPrepare, R"({"gid": "m", "trans_type": "msg",
      "steps": [{"action": "http://a/x"}], "payloads": [""], "query_prepared": "https://a/q"})",
                 "https");
}

TEST(ParseTxnRequest, RejectsUrlWithoutHost) {
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": "http:///x"})"), "with a host");
  ExpectRejected(ApiOp::kSubmit, SagaWithStep(R"({"action": "http://"})"), "with a host");
}

TEST(ParseTxnRequest, RejectsUrlWithBadPort) {
  for (const char* url : {"http://a:0/x", "http://a:65536/x", "http://a:/x", "http://a:8o/x",
                          "http://a:123456/x", "http://a:-1/x"}) {
    ExpectRejected(ApiOp::kSubmit, SagaWithStep(std::string(R"({"action": ")") + url + "\"}"),
                   "steps[0].action");
  }
}

TEST(ParseTxnRequest, RejectsStepsAndPayloadsOfDifferentLength) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "saga",
      "steps": [{"action": "http://a/x"}, {"action": "http://b/x"}], "payloads": ["one"]})",
                 "'payloads' has 1");
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "saga",
      "steps": [{"action": "http://a/x"}]})",
                 "'payloads' has 0");
}

TEST(ParseTxnRequest, RejectsPayloadThatIsNotAString) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "saga",
      "steps": [{"action": "http://a/x"}], "payloads": [{"amount": 30}]})",
                 "array of strings");
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "g", "trans_type": "saga",
      "steps": [{"action": "http://a/x"}], "payloads": "x"})",
                 "array of strings");
}

TEST(ParseTxnRequest, RejectsSagaPrepare) {
  ExpectRejected(ApiOp::kPrepare, Saga(), "no prepare phase");
}

TEST(ParseTxnRequest, RejectsMsgPrepareWithoutQueryPrepared) {
  ExpectRejected(ApiOp::kPrepare, R"({"gid": "m", "trans_type": "msg",
      "steps": [{"action": "http://a/x"}], "payloads": [""]})",
                 "query_prepared");
}

TEST(ParseTxnRequest, RejectsMsgStepWithCompensate) {
  ExpectRejected(ApiOp::kSubmit, R"({"gid": "m", "trans_type": "msg",
      "steps": [{"action": "http://a/x", "compensate": "http://a/y"}], "payloads": [""]})",
                 "no compensate");
}

TEST(ParseTxnRequest, RejectsCustomDataThatIsNotAJsonObjectString) {
  ExpectRejected(ApiOp::kSubmit, SagaCustom("{not json"), "custom_data");
  ExpectRejected(ApiOp::kSubmit, SagaCustom("[1]"), "custom_data");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("custom_data": {"concurrent": true})"), "custom_data");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"concurrent": "yes"})"), "concurrent");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": [[1]]})"), "orders");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1": 0}})"), "orders");
}

TEST(ParseTxnRequest, RejectsOrdersIndexOutOfRange) {
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"3": [0]}})"), "'3'");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"-1": [0]}})"), "'-1'");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"x": [0]}})"), "'x'");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1x": [0]}})"), "'1x'");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"": [0]}})"), "not a step index");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"99999999999999999999": [0]}})"),
                 "not a step index");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1": [3]}})"), "not a step index");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1": [-1]}})"), "not a step index");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1": ["0"]}})"), "not a step index");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1": [0.5]}})"), "not a step index");
}

TEST(ParseTxnRequest, RejectsStepThatDependsOnItself) {
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"1": [1]}})"), "depends on itself");
}

TEST(ParseTxnRequest, RejectsOrdersWithACycle) {
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"0": [1], "1": [0]}})"), "cycle");
  ExpectRejected(ApiOp::kSubmit, SagaCustom(R"({"orders": {"0": [2], "1": [0], "2": [1]}})"),
                 "cycle");
}

TEST(ParseTxnRequest, AcceptsADiamondAndDuplicatePredecessors) {
  auto r = ParseTxnRequest(
      ApiOp::kSubmit, SagaCustom(R"({"concurrent": true, "orders": {"1": [0, 0], "2": [0, 1]}})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->def.concurrent);
  EXPECT_EQ(r->def.orders.at(2), (std::vector<int>{0, 1}));
}

TEST(ParseTxnRequest, RejectsNegativeOrNonIntegerNumericOptions) {
  for (const char* field :
       {"timeout_to_fail", "request_timeout", "retry_interval", "retry_limit"}) {
    std::string f = std::string("\"") + field + "\": ";
    ExpectRejected(ApiOp::kSubmit, Saga(f + "-1"), field);
    ExpectRejected(ApiOp::kSubmit, Saga(f + "1.5"), field);
    ExpectRejected(ApiOp::kSubmit, Saga(f + "\"10\""), field);
    ExpectRejected(ApiOp::kSubmit, Saga(f + "true"), field);
    ExpectRejected(ApiOp::kSubmit, Saga(f + "18446744073709551615"), "too large");
    ExpectAccepted(ApiOp::kSubmit, Saga(f + "0"));
  }
}

TEST(ParseTxnRequest, RejectsNonBooleanWaitResult) {
  ExpectRejected(ApiOp::kSubmit, Saga(R"("wait_result": "true")"), "wait_result");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("wait_result": 1)"), "wait_result");
}

TEST(ParseTxnRequest, RejectsBadBranchHeaders) {
  ExpectRejected(ApiOp::kSubmit, Saga(R"("branch_headers": {"X-A": 1})"), "must be a string");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("branch_headers": ["X-A"])"), "branch_headers");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("branch_headers": {"X A": "v"})"), "header name");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("branch_headers": {"X:A": "v"})"), "header name");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("branch_headers": {"": "v"})"), "header name");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("branch_headers": {"X-A": "v\r\nInjected: 1"})"),
                 "control character");
  ExpectAccepted(ApiOp::kSubmit, Saga(R"("branch_headers": {"X-A": "v\tw"})"));
}

TEST(ParseTxnRequest, RejectsNonStringQueryPreparedAndCustomData) {
  ExpectRejected(ApiOp::kSubmit, Saga(R"("query_prepared": 1)"), "query_prepared");
  ExpectRejected(ApiOp::kSubmit, Saga(R"("custom_data": 1)"), "custom_data");
}

TEST(IsValidBranchUrl, AcceptsHostsPortsPathsAndQueries) {
  EXPECT_TRUE(IsValidBranchUrl("http://a"));
  EXPECT_TRUE(IsValidBranchUrl("http://a/"));
  EXPECT_TRUE(IsValidBranchUrl("http://localhost:8081/api/busi/TransOut?x=1#f"));
  EXPECT_TRUE(IsValidBranchUrl("http://10.0.0.1:1"));
  EXPECT_TRUE(IsValidBranchUrl("http://a:65535/x"));
  EXPECT_TRUE(IsValidBranchUrl("https://a.example.com/x"));
  EXPECT_TRUE(IsValidBranchUrl("http://a?x"));
}

TEST(IsValidBranchUrl, AcceptsBracketedIpv6WithOptionalPort) {
  EXPECT_TRUE(IsValidBranchUrl("http://[::1]/x"));
  EXPECT_TRUE(IsValidBranchUrl("http://[::1]"));
  EXPECT_TRUE(IsValidBranchUrl("http://[::1]:8080/x"));
  EXPECT_TRUE(IsValidBranchUrl("http://[fe80::1%25eth0]:80"));
}

TEST(IsValidBranchUrl, RejectsMalformedIpv6) {
  EXPECT_FALSE(IsValidBranchUrl("http://[]/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://[::1/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://[::1]x/y"));
  EXPECT_FALSE(IsValidBranchUrl("http://[::1]:/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://[::1]:0/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://[::1]:70000"));
}

TEST(IsValidBranchUrl, RejectsOtherSchemesMissingHostsAndBadPorts) {
  EXPECT_FALSE(IsValidBranchUrl(""));
  EXPECT_FALSE(IsValidBranchUrl("HTTP://a/x"));
  EXPECT_FALSE(IsValidBranchUrl("ftp://a/x"));
  EXPECT_FALSE(IsValidBranchUrl("http:/a/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://"));
  EXPECT_FALSE(IsValidBranchUrl("http:///x"));
  EXPECT_FALSE(IsValidBranchUrl("http://?x"));
  EXPECT_FALSE(IsValidBranchUrl("http://:80/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://a:/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://a:0"));
  EXPECT_FALSE(IsValidBranchUrl("http://a:65536"));
  EXPECT_FALSE(IsValidBranchUrl("http://a:00080x"));
  EXPECT_FALSE(IsValidBranchUrl("http://a:999999"));
}

TEST(IsValidBranchUrl, RejectsUserinfoWhitespaceControlAndOverlongUrls) {
  EXPECT_FALSE(IsValidBranchUrl("http://user:pw@a/x"));
  EXPECT_FALSE(IsValidBranchUrl("http://a/x y"));
  EXPECT_FALSE(IsValidBranchUrl("http://a/x\n"));
  EXPECT_FALSE(IsValidBranchUrl(std::string_view("http://a/\0x", 11)));
  EXPECT_FALSE(IsValidBranchUrl("http://a/\xc3\xa9"));
  std::string long_url = "http://a/" + std::string(2048 - 9, 'x');
  EXPECT_TRUE(IsValidBranchUrl(long_url));
  EXPECT_FALSE(IsValidBranchUrl(long_url + "x"));
  EXPECT_FALSE(IsValidBranchUrl("http://a/xyz", 11));
}

}  // namespace
}  // namespace dtx::coord
