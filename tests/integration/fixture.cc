#include "fixture.h"

#include <chrono>
#include <cstdio>
#include <thread>

namespace dtx::itest {

std::string EffectName(const json& call) {
  return call.value("branch_id", "") + "." + call.value("op", "");
}

void DtxdTest::SetUp() {
  auto p = ParticipantProcess::Start(http_, dir_.path());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  participant_ = std::move(*p);
  dtxd_ = std::make_unique<DtxdProcess>(http_, dir_.path() + "/data", dir_.path() + "/dtxd.log");
  dtx::Status s = dtxd_->Start(ExtraFlags());
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void DtxdTest::TearDown() {
  if (HasFailure() && dtxd_) {
    std::printf("--- dtxd log tail ---\n%s\n", dtxd_->LogTail().c_str());
  }
}

HttpReply DtxdTest::Api(const std::string& name, const json& body) {
  return ApiRaw(name, body.dump());
}

HttpReply DtxdTest::ApiRaw(const std::string& name, std::string body) {
  return http_.Post(dtxd_->Url("/api/dtmsvr/" + name), std::move(body));
}

json DtxdTest::Query(const std::string& gid) {
  HttpReply r = http_.Get(dtxd_->Url("/api/dtmsvr/query?gid=" + runtime::UrlEncode(gid)));
  if (!r.transport.ok() || r.status != 200) return json();
  return r.Json();
}

std::string DtxdTest::Status(const std::string& gid) {
  json q = Query(gid);
  if (!q.is_object()) return "?";
  const json& t = q["transaction"];
  if (!t.is_object()) return "";
  return t.value("status", "?");
}

json DtxdTest::Saga(const std::string& gid, const std::vector<StepPaths>& steps,
                    const json& extra) const {
  json body = {{"gid", gid}, {"trans_type", "saga"}};
  json s = json::array();
  json payloads = json::array();
  for (size_t i = 0; i < steps.size(); ++i) {
    s.push_back({{"action", P(steps[i].action)}, {"compensate", P(steps[i].compensate)}});
    payloads.push_back(json{{"step", i}}.dump());
  }
  body["steps"] = std::move(s);
  body["payloads"] = std::move(payloads);
  body.update(extra);
  return body;
}

json DtxdTest::Msg(const std::string& gid, const std::vector<std::string>& paths,
                   const std::string& query_path, const json& extra) const {
  json body = {{"gid", gid}, {"trans_type", "msg"}, {"query_prepared", P(query_path)}};
  json s = json::array();
  json payloads = json::array();
  for (size_t i = 0; i < paths.size(); ++i) {
    s.push_back({{"action", P(paths[i])}});
    payloads.push_back(json{{"step", i}}.dump());
  }
  body["steps"] = std::move(s);
  body["payloads"] = std::move(payloads);
  body.update(extra);
  return body;
}

std::map<std::string, std::string> DtxdTest::WaitFinal(const std::vector<std::string>& gids,
                                                       int64_t timeout_ms) {
  std::map<std::string, std::string> final_status;
  std::set<std::string> left(gids.begin(), gids.end());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  // Bounded by the deadline; dtxd offers no push notification of a transaction's end, so its
  // state is polled, with a pause between rounds.
  while (!left.empty()) {
    for (auto it = left.begin(); it != left.end();) {
      std::string s = Status(*it);
      if (s == "succeed" || s == "failed") {
        final_status[*it] = s;
        it = left.erase(it);
      } else {
        ++it;
      }
    }
    if (left.empty() || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return final_status;
}

std::string DtxdTest::WaitFinal(const std::string& gid, int64_t timeout_ms) {
  auto m = WaitFinal(std::vector<std::string>{gid}, timeout_ms);
  auto it = m.find(gid);
  return it == m.end() ? Status(gid) : it->second;
}

std::vector<json> DtxdTest::Calls(const std::string& gid) {
  auto calls = participant_->Calls(gid);
  EXPECT_TRUE(calls.ok()) << calls.status().ToString();
  if (!calls.ok()) return {};
  return std::vector<json>(calls->begin(), calls->end());
}

std::vector<std::string> DtxdTest::Effects(const std::string& gid) {
  std::vector<std::string> out;
  for (const json& c : Calls(gid)) {
    if (c.value("effect", false)) out.push_back(EffectName(c));
  }
  return out;
}

}  // namespace dtx::itest
