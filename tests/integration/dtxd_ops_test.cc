// Operations features of dtxd against the real binary: removal of old finished transactions and
// the alert webhook.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"

namespace dtx::itest {
namespace {

class DtxdOpsTest : public DtxdTest {
 protected:
  std::vector<std::string> ExtraFlags() const override {
    return {"--keep-finished-s",      "1", "--purge-interval-s", "1",
            "--alert-after-failures", "2", "--alert-webhook",    P("/ok?gid=alerts")};
  }

  // Polls (bounded: 8 s) until pred() holds; dtxd has no push notification for these events.
  template <typename Pred>
  bool PollUntil(Pred pred) {
    for (int i = 0; i < 160; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }
};

TEST_F(DtxdOpsTest, FinishedTransactionsAreRemovedAfterKeepFinishedButUnfinishedStay) {
  ASSERT_EQ(Api("submit", Saga("old", {{"/ok", "/ok"}}, {{"wait_result", true}})).status, 200);
  ASSERT_EQ(Api("submit", Saga("open", {{"/ongoing/1000000", "/ok"}})).status, 200);
  ASSERT_EQ(Status("old"), "succeed");
  EXPECT_TRUE(PollUntil([&] { return Status("old").empty(); }))
      << "finished transaction still present: " << Query("old").dump();
  EXPECT_EQ(Status("open"), "submitted");
  json q = Query("old");
  EXPECT_TRUE(q["transaction"].is_null());
  EXPECT_TRUE(q["branches"].empty());
}

TEST_F(DtxdOpsTest, RepeatedBranchFailuresPostAnAlertToTheWebhook) {
  ASSERT_EQ(Api("submit", Saga("flaky", {{"/flaky/3", "/ok"}})).status, 200);
  EXPECT_TRUE(PollUntil([&] { return !Calls("alerts").empty(); }));
  auto alerts = Calls("alerts");
  ASSERT_FALSE(alerts.empty());
  json alert = json::parse(alerts[0].value("body", "{}"));
  EXPECT_EQ(alert.value("gid", ""), "flaky");
  EXPECT_EQ(alert.value("branch_id", ""), "01");
  EXPECT_EQ(alert.value("op", ""), "action");
  EXPECT_EQ(alert.value("consecutive_failures", 0), 2);
  EXPECT_EQ(WaitFinal("flaky"), "succeed");
}

}  // namespace
}  // namespace dtx::itest
