// The gtest fixture of the dtxd integration suites: one dtx-participant and one dtxd (fast
// timings, fresh data dir) per test, and helpers that speak the DTM protocol.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace dtx::itest {

// One saga step: participant paths ("/ok", "/fail", ...) for the action and the compensation.
struct StepPaths {
  std::string action;
  std::string compensate;
};

// One effect seen by the participant: "01.action", "02.compensate", ...
std::string EffectName(const json& call);

class DtxdTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Flags added to DtxdProcess::FastFlags() for this suite.
  virtual std::vector<std::string> ExtraFlags() const { return {}; }

  // The participant's URL for a path.
  std::string P(const std::string& path) const { return participant_->Url(path); }
  // POST /api/dtmsvr/<name> with a JSON or raw body.
  HttpReply Api(const std::string& name, const json& body);
  HttpReply ApiRaw(const std::string& name, std::string body);
  // GET /api/dtmsvr/query?gid=G: {"transaction":..., "branches":[...]}.
  json Query(const std::string& gid);
  // The transaction's status, "" if unknown, "?" if query failed.
  std::string Status(const std::string& gid);

  // A saga body; every payload is {"step":i}. `extra` fields are merged in (wait_result, ...).
  json Saga(const std::string& gid, const std::vector<StepPaths>& steps,
            const json& extra = json::object()) const;
  // A msg body with actions at `paths` and check-back at query_path.
  json Msg(const std::string& gid, const std::vector<std::string>& paths,
           const std::string& query_path, const json& extra = json::object()) const;

  // Waits until every gid has reached succeed or failed, or timeout_ms passed; returns the
  // final statuses found (missing gids were not final in time).
  std::map<std::string, std::string> WaitFinal(const std::vector<std::string>& gids,
                                               int64_t timeout_ms);
  std::string WaitFinal(const std::string& gid, int64_t timeout_ms = 10'000);

  // The participant's calls for gid, in arrival order.
  std::vector<json> Calls(const std::string& gid);
  // Effect names for gid, in arrival order.
  std::vector<std::string> Effects(const std::string& gid);

  TempDir dir_;
  Http http_;
  std::unique_ptr<ParticipantProcess> participant_;
  std::unique_ptr<DtxdProcess> dtxd_;
};

}  // namespace dtx::itest
