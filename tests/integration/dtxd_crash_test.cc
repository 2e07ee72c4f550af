// kill -9 of dtxd while transactions are in flight, restart on the same data directory: every
// acknowledged transaction finishes, with no branch operation skipped.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"

namespace dtx::itest {
namespace {

using Strings = std::vector<std::string>;

// What the participant applied for one gid: effect name -> its seq.
std::map<std::string, size_t> EffectSeqs(const std::vector<json>& calls) {
  std::map<std::string, size_t> out;
  for (const json& c : calls) {
    if (c.value("effect", false)) out.emplace(EffectName(c), c["seq"].get<size_t>());
  }
  return out;
}

// Checks a finished two-step saga against the participant's record: succeed means both actions
// applied and nothing compensated; failed means every applied action compensated, later steps
// first.
void CheckSaga(const std::string& gid, const std::string& status, const std::vector<json>& calls) {
  SCOPED_TRACE("gid " + gid + " " + status + " calls " + json(calls).dump());
  auto effects = EffectSeqs(calls);
  if (status == "succeed") {
    EXPECT_TRUE(effects.count("01.action"));
    EXPECT_TRUE(effects.count("02.action"));
    EXPECT_FALSE(effects.count("01.compensate"));
    EXPECT_FALSE(effects.count("02.compensate"));
    return;
  }
  ASSERT_EQ(status, "failed");
  for (const char* step : {"01", "02"}) {
    if (effects.count(std::string(step) + ".action")) {
      EXPECT_TRUE(effects.count(std::string(step) + ".compensate")) << step << " not compensated";
    }
  }
  if (effects.count("01.compensate") && effects.count("02.compensate")) {
    EXPECT_LT(effects["02.compensate"], effects["01.compensate"]);
  }
}

class DtxdCrashTest : public DtxdTest {
 protected:
  void KillAndRestart() {
    dtxd_->Kill9();
    dtx::Status s = dtxd_->Restart();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  size_t CallCount() {
    auto calls = participant_->Calls("");
    return calls.ok() ? calls->size() : 0;
  }

  // Polls the participant until `gid` has at least one call on `path`.
  bool WaitForCall(const std::string& gid, const std::string& path) {
    for (int i = 0; i < 400; ++i) {
      for (const json& c : Calls(gid)) {
        if (c.value("path", "") == path) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

TEST_F(DtxdCrashTest, KillDuringADelayedBranchResumesAfterRestart) {
  ASSERT_EQ(Api("submit", Saga("k1", {{"/delay/700", "/ok"}, {"/ok", "/ok"}})).status, 200);
  ASSERT_TRUE(WaitForCall("k1", "/delay/700"));
  KillAndRestart();
  EXPECT_EQ(WaitFinal("k1", 15'000), "succeed");
  auto calls = Calls("k1");
  CheckSaga("k1", "succeed", calls);
  auto effects = Effects("k1");
  EXPECT_EQ(std::set<std::string>(effects.begin(), effects.end()),
            (std::set<std::string>{"01.action", "02.action"}));
  EXPECT_EQ(effects.size(), 2u);
}

TEST_F(DtxdCrashTest, KillDuringCompensationResumesIt) {
  ASSERT_EQ(Api("submit", Saga("k2", {{"/ok", "/ok"}, {"/fail", "/delay/700"}})).status, 200);
  ASSERT_TRUE(WaitForCall("k2", "/delay/700"));
  KillAndRestart();
  EXPECT_EQ(WaitFinal("k2", 15'000), "failed");
  CheckSaga("k2", "failed", Calls("k2"));
  EXPECT_EQ(Effects("k2"), (Strings{"01.action", "02.compensate", "01.compensate"}));
}

TEST_F(DtxdCrashTest, AcknowledgedSubmitIsNeverLost) {
  for (int round = 0; round < 3; ++round) {
    const std::string gid = "ack" + std::to_string(round);
    // The branch is still ONGOING when dtxd dies, so only the durable record can bring it back.
    ASSERT_EQ(Api("submit", Saga(gid, {{"/ongoing/3", "/ok"}})).status, 200);
    ASSERT_EQ(Api("prepare", Msg(gid + "m", {"/ok"}, "/query/ok")).status, 200);
    KillAndRestart();
    EXPECT_NE(Status(gid), "") << "acknowledged saga " << gid << " lost";
    EXPECT_NE(Status(gid + "m"), "") << "acknowledged msg prepare " << gid << "m lost";
    EXPECT_EQ(WaitFinal(gid), "succeed");
    EXPECT_EQ(WaitFinal(gid + "m"), "succeed");
    EXPECT_EQ(Effects(gid), (Strings{"01.action"}));
    EXPECT_EQ(Effects(gid + "m"), (Strings{"01.action"}));
  }
}

TEST_F(DtxdCrashTest, KillDuringManyConcurrentSagas) {
  constexpr int kSagas = 160;
  // Four kinds: plain success, failure at step 2, a flaky first step, a slow first step.
  auto steps_of = [](int i) -> std::vector<StepPaths> {
    switch (i % 4) {
      case 0:
        return {{"/ok", "/ok"}, {"/ok", "/ok"}};
      case 1:
        return {{"/ok", "/ok"}, {"/fail", "/ok"}};
      case 2:
        return {{"/flaky/1", "/ok"}, {"/delay/50", "/ok"}};
      default:
        return {{"/delay/300", "/ok"}, {"/ok", "/ok"}};
    }
  };
  std::vector<std::string> gids;
  std::vector<std::future<HttpReply>> replies;
  for (int i = 0; i < kSagas; ++i) {
    gids.push_back("many" + std::to_string(i));
    replies.push_back(http_.Async("POST", dtxd_->Url("/api/dtmsvr/submit"),
                                  Saga(gids.back(), steps_of(i)).dump()));
  }
  // Kill once half of the submits were acknowledged: the rest are in flight or queued.
  std::set<std::string> acked;
  for (int i = 0; i < kSagas / 2; ++i) {
    HttpReply r = replies[i].get();
    if (r.transport.ok() && r.status == 200) acked.insert(gids[i]);
  }
  dtxd_->Kill9();
  auto calls_at_kill = participant_->Calls("");
  ASSERT_TRUE(calls_at_kill.ok());
  for (int i = kSagas / 2; i < kSagas; ++i) {
    HttpReply r = replies[i].get();
    if (r.transport.ok() && r.status == 200) acked.insert(gids[i]);
  }
  EXPECT_GE(acked.size(), static_cast<size_t>(kSagas / 2));
  // For the log: how much work the kill interrupted.
  std::printf("acknowledged %zu of %d submits; %zu branch calls before the kill\n", acked.size(),
              kSagas, calls_at_kill->size());
  dtx::Status s = dtxd_->Restart();
  ASSERT_TRUE(s.ok()) << s.ToString();
  // Kill it again while it resumes the interrupted sagas.
  const size_t before = CallCount();
  for (int i = 0; i < 200 && CallCount() < before + 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  KillAndRestart();

  // Every acknowledged saga exists and finishes; unacknowledged ones may exist, and then finish.
  std::vector<std::string> known;
  for (const auto& gid : gids) {
    if (acked.count(gid) || Status(gid) != "") known.push_back(gid);
  }
  auto final_status = WaitFinal(known, 15'000);
  auto all_calls = participant_->Calls("");
  ASSERT_TRUE(all_calls.ok()) << all_calls.status().ToString();
  std::map<std::string, std::vector<json>> calls_by_gid;
  for (const json& c : *all_calls) calls_by_gid[c.value("gid", "")].push_back(c);

  for (int i = 0; i < kSagas; ++i) {
    const std::string& gid = gids[i];
    auto it = final_status.find(gid);
    if (it == final_status.end()) {
      std::string now = Status(gid);
      if (acked.count(gid)) {
        ADD_FAILURE() << "acknowledged saga " << gid << " did not finish: status '" << now << "'";
      } else {
        EXPECT_EQ(now, "") << "unacknowledged saga " << gid << " exists but did not finish";
      }
      continue;
    }
    EXPECT_EQ(it->second, i % 4 == 1 ? "failed" : "succeed") << gid;
    CheckSaga(gid, it->second, calls_by_gid[gid]);
  }
}

}  // namespace
}  // namespace dtx::itest
