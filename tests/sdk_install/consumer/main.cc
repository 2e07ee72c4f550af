// A program outside the dtx tree that uses the installed SDK only through its public headers and
// libraries: it builds a saga body (client side, no dtxd needed) and runs a TCC try twice through
// the barrier on an in-memory SQLite database (the duplicate must not run the business again).
// Prints "OK" when everything behaved; otherwise the reason on stderr and exit status 1.
#include <cstdint>
#include <iostream>
#include <string>

#include "dtx/barrier.h"
#include "dtx/client.h"

namespace {

int Fail(const std::string& what) {
  std::cerr << "consumer: " << what << "\n";
  return 1;
}

}  // namespace

int main() {
  using dtx::Status;
  namespace sdk = dtx::sdk;

  // Nothing is sent: Body() only renders what Submit would send.
  sdk::DtxClient client("http://127.0.0.1:36789");
  if (!client.status().ok()) return Fail("client: " + client.status().ToString());
  sdk::Saga saga(client, "consumer-gid");
  saga.Add("http://127.0.0.1:8081/debit", "http://127.0.0.1:8081/debit-undo", R"({"amount":30})");
  const nlohmann::json body = saga.Body();
  if (body.value("gid", "") != "consumer-gid" || body.value("trans_type", "") != "saga" ||
      !body.contains("steps") || body["steps"].size() != 1) {
    return Fail("unexpected saga body " + body.dump());
  }

  auto store = sdk::SqliteBarrierStore::Open(":memory:");
  if (!store.ok()) return Fail("open: " + store.status().ToString());
  {
    auto tx = (*store)->Begin();
    if (!tx.ok()) return Fail("begin: " + tx.status().ToString());
    auto created = (*tx)->Exec("CREATE TABLE ledger (amount INTEGER NOT NULL)");
    if (!created.ok()) return Fail("create: " + created.status().ToString());
    Status committed = (*tx)->Commit();
    if (!committed.ok()) return Fail("commit: " + committed.ToString());
  }

  int runs = 0;
  const sdk::BusinessFn business = [&runs](sdk::LocalTx& tx) -> Status {
    auto inserted = tx.Exec("INSERT INTO ledger (amount) VALUES (?)", {int64_t{30}});
    if (!inserted.ok()) return inserted.status();
    ++runs;
    return Status::Ok();
  };
  const sdk::BranchCallInfo info{"tcc", "consumer-gid", "01", "try"};
  for (int delivery = 0; delivery < 2; ++delivery) {
    sdk::Barrier barrier(info);
    Status s = barrier.Call(**store, business);
    if (!s.ok()) return Fail("barrier call " + std::to_string(delivery) + ": " + s.ToString());
  }
  if (runs != 1) return Fail("business ran " + std::to_string(runs) + " times, want 1");

  auto tx = (*store)->Begin();
  if (!tx.ok()) return Fail("begin: " + tx.status().ToString());
  auto rows = (*tx)->Query("SELECT COUNT(*), SUM(amount) FROM ledger");
  if (!rows.ok()) return Fail("query: " + rows.status().ToString());
  if (rows->size() != 1 || (*rows)[0] != sdk::SqlRow{int64_t{1}, int64_t{30}}) {
    return Fail("ledger does not hold exactly the one insert");
  }
  Status rolled_back = (*tx)->Rollback();
  if (!rolled_back.ok()) return Fail("rollback: " + rolled_back.ToString());

  std::cout << "OK\n";
  return 0;
}
