// The bank example's account service: accounts in one database (PostgreSQL or MariaDB), branch
// routes for every dtx mode, and transfer initiation towards a peer service.
//
// Table bank_account(id, balance, frozen): `frozen` holds money a TCC try reserved and its
// confirm/cancel has not settled yet. At rest (every transaction finished) frozen is 0 and the sum
// of balances over both services equals what was seeded.
//
// Thread-safety: BankService's handlers run concurrently on the BranchServer's workers; each
// worker thread uses its own connections.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dtx/barrier.h"
#include "dtx/client.h"
#include "dtx/participant.h"
#include "dtx/status.h"
#include "dtx/xa.h"

namespace bank {

enum class DbKind { kPostgres, kMariaDb };

struct BankOptions {
  std::string name = "bank";  // shown in /balances
  DbKind db = DbKind::kPostgres;
  std::string dsn;  // libpq conninfo, or MariaDbOptions::Parse format
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string dtxd_url = "http://127.0.0.1:36789";
  std::string peer_url;  // the other bank service (destination of transfers)
  int accounts = 5;      // seeded with ids 1..accounts when the table is empty
  int64_t initial_balance = 1000;
  int workers = 16;
  int64_t xa_recovery_interval_s = 5;  // in-doubt XA branches are finished this often
};

// A transfer request, parsed from the body of POST /transfer.
struct Transfer {
  // saga | tcc | xa | msg, or direct: the uncoordinated baseline of the benchmark (a local debit
  // and an HTTP call to the peer's credit, with no coordinator; NOT atomic).
  std::string mode;
  std::string gid;   // empty: ask dtxd for one
  int64_t from = 0;  // account here
  int64_t to = 0;    // account at the peer
  int64_t amount = 0;
};
dtx::Result<Transfer> ParseTransfer(const std::string& body);

// The payload of every branch call.
struct Move {
  int64_t account = 0;
  int64_t amount = 0;
  // Not part of the payload: set by the handler for the journal.
  std::string gid;
  std::string step;
};
dtx::Result<Move> ParseMove(const std::string& body);
std::string MoveJson(const Move& m);

class BankService {
 public:
  explicit BankService(BankOptions options);
  ~BankService();

  // Creates the table, seeds it if empty, finishes in-doubt XA branches once, starts serving.
  dtx::Status Start();
  uint16_t port() const { return server_->port(); }
  void Stop();

 private:
  std::string Sql(std::string_view with_question_marks) const;
  dtx::Result<std::unique_ptr<dtx::sdk::BarrierStore>> OpenStore() const;
  dtx::Result<std::unique_ptr<dtx::sdk::XaResource>> OpenXa() const;
  // This thread's connection for plain routes and msg initiations (opened on first use, dropped
  // after kUnavailable).
  dtx::Result<dtx::sdk::BarrierStore*> ThreadStore();
  dtx::Result<dtx::sdk::XaResource*> ThreadXa();
  void DropThreadConnections();

  dtx::Status CreateTables();
  dtx::Status Setup();
  void RegisterRoutes();

  // Business steps, inside the caller's local transaction.
  dtx::Status Debit(dtx::sdk::LocalTx& tx, const Move& m);  // kAborted if funds are short
  dtx::Status Credit(dtx::sdk::LocalTx& tx, const Move& m);
  dtx::Status Freeze(dtx::sdk::LocalTx& tx, const Move& m);  // TCC try of a debit
  dtx::Status Adjust(dtx::sdk::LocalTx& tx, const Move& m, int64_t balance_delta,
                     int64_t frozen_delta);
  dtx::Status CheckAccount(dtx::sdk::LocalTx& tx, int64_t account);
  // Records a change of (balance, frozen) of m.account in bank_journal, tagged with gid and step.
  dtx::Status Journal(dtx::sdk::LocalTx& tx, const Move& m, int64_t balance_delta,
                      int64_t frozen_delta);
  // Runs `body` in a local transaction on this thread's connection; commits if it returns OK.
  dtx::Status RunLocal(const std::function<dtx::Status(dtx::sdk::LocalTx&)>& body);

  dtx::sdk::PlainResponse HandleTransfer(const dtx::sdk::BranchRequest& r);
  dtx::sdk::PlainResponse HandleBalances();
  dtx::sdk::PlainResponse HandlePrepared();
  dtx::sdk::PlainResponse HandleRecover();
  dtx::Status RunTransfer(const Transfer& t, std::string* outcome);

  BankOptions options_;
  std::string self_url_;
  std::unique_ptr<dtx::sdk::DtxClient> dtxd_;
  std::unique_ptr<dtx::sdk::BranchServer> server_;
  std::atomic<int> transfers_in_flight_{0};
};

}  // namespace bank
