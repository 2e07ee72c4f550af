#include "participant/participant.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dtx::participant {
namespace {

using nlohmann::json;
using runtime::HttpRequest;
using runtime::HttpResponse;

struct Call {
  std::string method = "POST";
  std::string path;
  std::string gid = "g1";
  std::string branch_id = "01";
  std::string op = "action";
  std::string body;

  Call& Method(std::string v) {
    method = std::move(v);
    return *this;
  }
  Call& Gid(std::string v) {
    gid = std::move(v);
    return *this;
  }
  Call& Branch(std::string v) {
    branch_id = std::move(v);
    return *this;
  }
  Call& Op(std::string v) {
    op = std::move(v);
    return *this;
  }
  Call& Body(std::string v) {
    body = std::move(v);
    return *this;
  }
};

Call To(std::string path) {
  Call c;
  c.path = std::move(path);
  return c;
}

class ParticipantTest : public ::testing::Test {
 protected:
  // Sends one request; returns the answer if it was given synchronously, else keeps its slot in
  // pending_.
  std::optional<HttpResponse> Send(const Call& c) {
    HttpRequest req;
    req.method = c.method;
    req.path = c.path;
    req.target = c.path;
    if (!c.gid.empty()) req.query.emplace_back("gid", c.gid);
    if (!c.branch_id.empty()) req.query.emplace_back("branch_id", c.branch_id);
    if (!c.op.empty()) req.query.emplace_back("op", c.op);
    req.query.emplace_back("trans_type", "saga");
    req.body = c.body;
    auto slot = std::make_shared<std::optional<HttpResponse>>();
    p_.Handle(std::move(req), [slot](HttpResponse r) { *slot = std::move(r); });
    if (!slot->has_value()) {
      pending_.push_back(slot);
      return std::nullopt;
    }
    return **slot;
  }

  json Calls(const std::string& query_gid) {
    HttpRequest req;
    req.method = "GET";
    req.path = "/calls";
    if (!query_gid.empty()) req.query.emplace_back("gid", query_gid);
    std::optional<HttpResponse> out;
    p_.Handle(std::move(req), [&out](HttpResponse r) { out = std::move(r); });
    EXPECT_TRUE(out.has_value());
    EXPECT_EQ(out->status, 200);
    return json::parse(out->body);
  }

  static std::string Result(const HttpResponse& r) {
    auto j = json::parse(r.body);
    return j.value("dtm_result", "");
  }

  boost::asio::io_context io_;
  Participant p_{io_};
  std::vector<std::shared_ptr<std::optional<HttpResponse>>> pending_;
};

TEST_F(ParticipantTest, OkAndFailAnswerAndRecord) {
  auto ok = Send(To("/ok").Body("{\"amount\":30}"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(Result(*ok), "SUCCESS");
  auto fail = Send(To("/fail").Branch("02"));
  ASSERT_TRUE(fail);
  EXPECT_EQ(fail->status, 409);
  EXPECT_EQ(Result(*fail), "FAILURE");

  json calls = Calls("g1")["calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["path"], "/ok");
  EXPECT_EQ(calls[0]["body"], "{\"amount\":30}");
  EXPECT_EQ(calls[0]["trans_type"], "saga");
  EXPECT_EQ(calls[0]["result"], "SUCCESS");
  EXPECT_TRUE(calls[0]["effect"]);
  EXPECT_EQ(calls[1]["branch_id"], "02");
  EXPECT_EQ(calls[1]["result"], "FAILURE");
  EXPECT_FALSE(calls[1]["effect"]);
  EXPECT_LT(calls[0]["seq"].get<int>(), calls[1]["seq"].get<int>());
}

TEST_F(ParticipantTest, EffectIsTheFirstSuccessPerGidBranchOp) {
  Send(To("/ok"));
  Send(To("/ok"));                               // a repeat: no new effect
  Send(To("/ok").Op("compensate"));              // another op: its own effect
  Send(To("/ok").Gid("g2"));                     // another gid: its own effect
  Send(To("/query/ok").Branch("00").Op("msg"));  // not an action: never an effect
  json calls = Calls("")["calls"];
  ASSERT_EQ(calls.size(), 5u);
  std::vector<bool> effects;
  for (const auto& c : calls) effects.push_back(c["effect"].get<bool>());
  EXPECT_EQ(effects, (std::vector<bool>{true, false, true, true, false}));
  EXPECT_EQ(Calls("g2")["calls"].size(), 1u);
}

TEST_F(ParticipantTest, OngoingAnswersOngoingNTimesPerKey) {
  for (int i = 0; i < 2; ++i) {
    auto r = Send(To("/ongoing/2"));
    EXPECT_EQ(r->status, 425);
    EXPECT_EQ(Result(*r), "ONGOING");
  }
  // Another branch has its own counter.
  EXPECT_EQ(Send(To("/ongoing/2").Branch("02"))->status, 425);
  auto third = Send(To("/ongoing/2"));
  EXPECT_EQ(third->status, 200);
  EXPECT_EQ(Send(To("/ongoing/0"))->status, 200);
  json calls = Calls("g1")["calls"];
  EXPECT_FALSE(calls[0]["effect"]);
  EXPECT_TRUE(calls[3]["effect"]);
}

TEST_F(ParticipantTest, FlakyIsATemporaryErrorWithoutResultWords) {
  auto first = Send(To("/flaky/1"));
  EXPECT_EQ(first->status, 500);
  EXPECT_EQ(first->body.find("FAILURE"), std::string::npos);
  EXPECT_EQ(first->body.find("ONGOING"), std::string::npos);
  EXPECT_EQ(Send(To("/flaky/1"))->status, 200);
  json calls = Calls("g1")["calls"];
  EXPECT_EQ(calls[0]["result"], "ERROR");
  EXPECT_EQ(calls[1]["result"], "SUCCESS");
}

TEST_F(ParticipantTest, DelayAnswersWhenTheTimerFires) {
  EXPECT_FALSE(Send(To("/delay/5")));
  EXPECT_EQ(Calls("g1")["calls"][0]["result"], "PENDING");
  io_.run();  // returns once the timer has fired: the only work queued
  ASSERT_EQ(pending_.size(), 1u);
  ASSERT_TRUE(pending_[0]->has_value());
  EXPECT_EQ((*pending_[0])->status, 200);
  json c = Calls("g1")["calls"][0];
  EXPECT_EQ(c["result"], "SUCCESS");
  EXPECT_TRUE(c["effect"]);
}

TEST_F(ParticipantTest, TimeoutNeverAnswers) {
  EXPECT_FALSE(Send(To("/timeout")));
  io_.run();
  EXPECT_FALSE(pending_[0]->has_value());
  EXPECT_EQ(Calls("g1")["calls"][0]["result"], "PENDING");
}

TEST_F(ParticipantTest, QueryPaths) {
  EXPECT_EQ(Send(To("/query/ok").Op("msg"))->status, 200);
  EXPECT_EQ(Send(To("/query/fail").Op("msg"))->status, 409);
  EXPECT_EQ(Send(To("/query/ongoing").Op("msg"))->status, 425);
  EXPECT_EQ(Send(To("/query/other").Op("msg"))->status, 404);
}

TEST_F(ParticipantTest, BadRequestsAreAnsweredAndNotRecorded) {
  EXPECT_EQ(Send(To("/nope"))->status, 404);
  EXPECT_EQ(Send(To("/"))->status, 404);
  EXPECT_EQ(Send(To(""))->status, 404);
  EXPECT_EQ(Send(To("/ok/extra"))->status, 404);
  EXPECT_EQ(Send(To("/ongoing"))->status, 404);
  EXPECT_EQ(Send(To("/ongoing/x"))->status, 400);
  EXPECT_EQ(Send(To("/ongoing/-1"))->status, 400);
  EXPECT_EQ(Send(To("/flaky/9999999999"))->status, 400);
  EXPECT_EQ(Send(To("/delay/"))->status, 400);
  EXPECT_EQ(Send(To("/delay/600001"))->status, 400);
  EXPECT_EQ(Send(To("/calls").Method("PUT"))->status, 405);
  auto bad = Send(To("/ongoing/x"));
  EXPECT_TRUE(json::accept(bad->body));
  EXPECT_EQ(Calls("")["calls"].size(), 0u);
}

TEST_F(ParticipantTest, DeleteClearsRecordsEffectsAndCounters) {
  Send(To("/ok"));
  Send(To("/ongoing/1"));
  EXPECT_FALSE(Send(To("/delay/1").Gid("g3")));
  EXPECT_EQ(Send(To("/calls").Method("DELETE"))->status, 200);
  EXPECT_EQ(Calls("")["calls"].size(), 0u);
  io_.run();  // the delayed answer of a forgotten call is not recorded
  EXPECT_EQ(Calls("")["calls"].size(), 0u);
  EXPECT_EQ(Send(To("/ongoing/1"))->status, 425);  // the counter restarted
  Send(To("/ok"));
  EXPECT_TRUE(Calls("")["calls"][1]["effect"]);  // the effect was forgotten too
}

TEST_F(ParticipantTest, OldRecordsAreDroppedBeyondTheLimit) {
  Participant small(io_, ParticipantOptions{.max_records = 2});
  for (int i = 0; i < 3; ++i) {
    HttpRequest req;
    req.method = "POST";
    req.path = "/ok";
    req.query = {{"gid", "g" + std::to_string(i)}, {"branch_id", "01"}, {"op", "action"}};
    small.Handle(std::move(req), [](HttpResponse) {});
  }
  ASSERT_EQ(small.records().size(), 2u);
  EXPECT_EQ(small.records().front().gid, "g1");
}

}  // namespace
}  // namespace dtx::participant
