#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "dtx/client.h"
#include "dtx/xa.h"

namespace dtx::sdk {
namespace {

enum class Decision { kCommit, kRollback, kLeave };

// dtxd's decision for `gid`, from its query answer. Anything unexpected (an unknown status, a
// malformed answer, dtxd unreachable) leaves the branch alone: guessing wrong would break
// atomicity, waiting only delays it.
Decision Decide(DtxClient& dtxd, const std::string& gid) {
  auto reply = dtxd.Query(gid);
  if (!reply.ok()) return Decision::kLeave;
  auto t = reply->find("transaction");
  if (t == reply->end()) return Decision::kLeave;
  // A branch is prepared before it is registered; a gid dtxd never heard of was never committed.
  if (t->is_null()) return Decision::kRollback;
  if (!t->is_object()) return Decision::kLeave;
  auto status = t->find("status");
  if (status == t->end() || !status->is_string()) return Decision::kLeave;
  const std::string& s = status->get_ref<const std::string&>();
  if (s == "submitted" || s == "succeed") return Decision::kCommit;
  if (s == "aborting" || s == "failed") return Decision::kRollback;
  return Decision::kLeave;
}

}  // namespace

Result<XaRecoveryReport> RecoverInDoubt(XaResource& resource, DtxClient& dtxd) {
  auto prepared = resource.ListPrepared();
  if (!prepared.ok()) return prepared.status();
  XaRecoveryReport report;
  // Branches of one global transaction share its decision: ask dtxd once per gid.
  std::map<std::string, Decision> decisions;
  for (const XaBranch& branch : *prepared) {
    auto it = decisions.find(branch.gid);
    if (it == decisions.end()) it = decisions.emplace(branch.gid, Decide(dtxd, branch.gid)).first;
    switch (it->second) {
      case Decision::kCommit:
        if (resource.Commit(branch).ok()) {
          ++report.committed;
        } else {
          ++report.left;
        }
        break;
      case Decision::kRollback:
        if (resource.Rollback(branch).ok()) {
          ++report.rolled_back;
        } else {
          ++report.left;
        }
        break;
      case Decision::kLeave:
        ++report.left;
        break;
    }
  }
  return report;
}

}  // namespace dtx::sdk
