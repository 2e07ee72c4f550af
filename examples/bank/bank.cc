#include "bank.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <utility>

#include <mysql.h>
#include <nlohmann/json.hpp>

namespace bank {

using dtx::Result;
using dtx::Status;
using dtx::StatusCode;
using dtx::sdk::BranchRequest;
using dtx::sdk::BranchResult;
using dtx::sdk::LocalTx;
using dtx::sdk::PlainResponse;
using nlohmann::json;

namespace {

constexpr int64_t kMaxAmount = 1'000'000'000'000;

Result<int64_t> PositiveField(const json& j, const char* name, int64_t max) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) {
    return dtx::InvalidArgument(std::string("field '") + name + "' must be an integer");
  }
  int64_t v = it->get<int64_t>();
  if (v <= 0 || v > max) {
    return dtx::InvalidArgument(std::string("field '") + name + "' must be in 1.." +
                                std::to_string(max));
  }
  return v;
}

PlainResponse JsonResponse(int status, const json& body) {
  return PlainResponse{status, "application/json", body.dump()};
}

// SQL results arrive as integers or as text, depending on the backend.
int64_t AsInt(const dtx::sdk::SqlValue& v) {
  if (std::holds_alternative<int64_t>(v)) return std::get<int64_t>(v);
  if (std::holds_alternative<double>(v)) return static_cast<int64_t>(std::get<double>(v));
  if (std::holds_alternative<std::string>(v)) {
    return std::strtoll(std::get<std::string>(v).c_str(), nullptr, 10);
  }
  return 0;
}

struct ThreadConnections {
  const void* owner = nullptr;
  std::unique_ptr<dtx::sdk::BarrierStore> store;
  std::unique_ptr<dtx::sdk::XaResource> xa;
};
thread_local ThreadConnections tl_connections;

ThreadConnections& ConnectionsOf(const void* owner) {
  if (tl_connections.owner != owner) {
    tl_connections.store.reset();
    tl_connections.xa.reset();
    tl_connections.owner = owner;
  }
  return tl_connections;
}

}  // namespace

Result<Transfer> ParseTransfer(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return dtx::InvalidArgument("body must be a JSON object");
  Transfer t;
  auto mode = j.find("mode");
  if (mode == j.end() || !mode->is_string()) {
    return dtx::InvalidArgument("field 'mode' must be one of saga, tcc, xa, msg, direct");
  }
  t.mode = mode->get<std::string>();
  if (t.mode != "saga" && t.mode != "tcc" && t.mode != "xa" && t.mode != "msg" &&
      t.mode != "direct") {
    return dtx::InvalidArgument("field 'mode' must be one of saga, tcc, xa, msg, direct, not '" +
                                t.mode + "'");
  }
  if (auto gid = j.find("gid"); gid != j.end()) {
    if (!gid->is_string()) return dtx::InvalidArgument("field 'gid' must be a string");
    t.gid = gid->get<std::string>();
    DTX_RETURN_IF_ERROR(dtx::sdk::ValidateGid(t.gid));
  }
  auto from = PositiveField(j, "from", std::numeric_limits<int32_t>::max());
  if (!from.ok()) return from.status();
  auto to = PositiveField(j, "to", std::numeric_limits<int32_t>::max());
  if (!to.ok()) return to.status();
  auto amount = PositiveField(j, "amount", kMaxAmount);
  if (!amount.ok()) return amount.status();
  t.from = *from;
  t.to = *to;
  t.amount = *amount;
  return t;
}

Result<Move> ParseMove(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return dtx::InvalidArgument("branch payload must be a JSON object");
  auto account = PositiveField(j, "account", std::numeric_limits<int32_t>::max());
  if (!account.ok()) return account.status();
  auto amount = PositiveField(j, "amount", kMaxAmount);
  if (!amount.ok()) return amount.status();
  Move m;
  m.account = *account;
  m.amount = *amount;
  return m;
}

std::string MoveJson(const Move& m) {
  return json{{"account", m.account}, {"amount", m.amount}}.dump();
}

BankService::BankService(BankOptions options) : options_(std::move(options)) {}

BankService::~BankService() { Stop(); }

std::string BankService::Sql(std::string_view q) const {
  if (options_.db == DbKind::kMariaDb) return std::string(q);
  std::string out;
  int n = 0;
  for (char c : q) {
    if (c == '?') {
      out += '$' + std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::unique_ptr<dtx::sdk::BarrierStore>> BankService::OpenStore() const {
  if (options_.db == DbKind::kPostgres) {
    auto s = dtx::sdk::PostgresBarrierStore::Open(options_.dsn);
    if (!s.ok()) return s.status();
    return std::unique_ptr<dtx::sdk::BarrierStore>(std::move(*s));
  }
  auto o = dtx::sdk::MariaDbOptions::Parse(options_.dsn);
  if (!o.ok()) return o.status();
  auto s = dtx::sdk::MariaDbBarrierStore::Open(*o);
  if (!s.ok()) return s.status();
  return std::unique_ptr<dtx::sdk::BarrierStore>(std::move(*s));
}

Result<std::unique_ptr<dtx::sdk::XaResource>> BankService::OpenXa() const {
  if (options_.db == DbKind::kPostgres) return dtx::sdk::OpenPostgresXa(options_.dsn);
  auto o = dtx::sdk::MariaDbOptions::Parse(options_.dsn);
  if (!o.ok()) return o.status();
  return dtx::sdk::OpenMariaDbXa(*o);
}

Result<dtx::sdk::BarrierStore*> BankService::ThreadStore() {
  ThreadConnections& c = ConnectionsOf(this);
  if (!c.store) {
    auto s = OpenStore();
    if (!s.ok()) return s.status();
    c.store = std::move(*s);
  }
  return c.store.get();
}

Result<dtx::sdk::XaResource*> BankService::ThreadXa() {
  ThreadConnections& c = ConnectionsOf(this);
  if (!c.xa) {
    auto x = OpenXa();
    if (!x.ok()) return x.status();
    c.xa = std::move(*x);
  }
  return c.xa.get();
}

void BankService::DropThreadConnections() {
  ThreadConnections& c = ConnectionsOf(this);
  c.store.reset();
  c.xa.reset();
}

Status BankService::CreateTables() {
  const char* account =
      "CREATE TABLE IF NOT EXISTS bank_account (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, "
      "frozen BIGINT NOT NULL DEFAULT 0)";
  // Every debit and credit also appends to the journal: two statements per branch, the shape of
  // DTM's published transfer benchmark.
  if (options_.db == DbKind::kPostgres) {
    auto store = dtx::sdk::PostgresBarrierStore::Open(options_.dsn);
    if (!store.ok()) return store.status();
    auto tx = (*store)->Begin();
    if (!tx.ok()) return tx.status();
    for (const char* ddl : {account,
                            "CREATE TABLE IF NOT EXISTS bank_journal (id BIGSERIAL PRIMARY KEY, "
                            "gid VARCHAR(128) NOT NULL, step VARCHAR(64) NOT NULL, "
                            "account BIGINT NOT NULL, delta BIGINT NOT NULL, "
                            "frozen_delta BIGINT NOT NULL)"}) {
      auto r = (*tx)->Exec(ddl);
      if (!r.ok()) return r.status();
    }
    return (*tx)->Commit();
  }
  // MariaDB commits DDL implicitly, so it runs outside any local transaction.
  auto o = dtx::sdk::MariaDbOptions::Parse(options_.dsn);
  if (!o.ok()) return o.status();
  auto store = dtx::sdk::MariaDbBarrierStore::Open(*o);
  if (!store.ok()) return store.status();
  for (std::string ddl : {std::string(account) + " ENGINE=InnoDB",
                          std::string("CREATE TABLE IF NOT EXISTS bank_journal (id BIGINT "
                                      "AUTO_INCREMENT PRIMARY KEY, gid VARCHAR(128) NOT NULL, "
                                      "step VARCHAR(64) NOT NULL, account BIGINT NOT NULL, "
                                      "delta BIGINT NOT NULL, frozen_delta BIGINT NOT NULL) "
                                      "ENGINE=InnoDB")}) {
    if (mysql_query((*store)->handle(), ddl.c_str()) != 0) {
      return dtx::Unavailable(std::string("mariadb: ") + mysql_error((*store)->handle()));
    }
  }
  return Status::Ok();
}

Status BankService::Setup() {
  DTX_RETURN_IF_ERROR(CreateTables());
  auto store = OpenStore();
  if (!store.ok()) return store.status();
  auto tx = (*store)->Begin();
  if (!tx.ok()) return tx.status();
  auto rows = (*tx)->Query("SELECT COUNT(*) FROM bank_account");
  if (!rows.ok()) return rows.status();
  if (AsInt(rows->at(0).at(0)) == 0) {
    for (int id = 1; id <= options_.accounts; ++id) {
      auto ins = (*tx)->Exec(Sql("INSERT INTO bank_account (id, balance, frozen) VALUES (?, ?, 0)"),
                             {int64_t{id}, options_.initial_balance});
      if (!ins.ok()) return ins.status();
    }
  }
  return (*tx)->Commit();
}

Status BankService::CheckAccount(LocalTx& tx, int64_t account) {
  auto rows = tx.Query(Sql("SELECT id FROM bank_account WHERE id = ?"), {account});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return dtx::Aborted("no account " + std::to_string(account));
  return Status::Ok();
}

Status BankService::Adjust(LocalTx& tx, const Move& m, int64_t balance_delta,
                           int64_t frozen_delta) {
  auto n = tx.Exec(
      Sql("UPDATE bank_account SET balance = balance + ?, frozen = frozen + ? WHERE id = ?"),
      {balance_delta, frozen_delta, m.account});
  if (!n.ok()) return n.status();
  if (*n != 1) return dtx::Aborted("no account " + std::to_string(m.account));
  return Journal(tx, m, balance_delta, frozen_delta);
}

Status BankService::Journal(LocalTx& tx, const Move& m, int64_t balance_delta,
                            int64_t frozen_delta) {
  auto n = tx.Exec(Sql("INSERT INTO bank_journal (gid, step, account, delta, frozen_delta) "
                       "VALUES (?, ?, ?, ?, ?)"),
                   {m.gid, m.step, m.account, balance_delta, frozen_delta});
  return n.status();
}

Status BankService::Debit(LocalTx& tx, const Move& m) {
  auto n =
      tx.Exec(Sql("UPDATE bank_account SET balance = balance - ? WHERE id = ? AND balance >= ?"),
              {m.amount, m.account, m.amount});
  if (!n.ok()) return n.status();
  if (*n != 1) {
    DTX_RETURN_IF_ERROR(CheckAccount(tx, m.account));
    return dtx::Aborted("insufficient funds in account " + std::to_string(m.account));
  }
  return Journal(tx, m, -m.amount, 0);
}

Status BankService::Credit(LocalTx& tx, const Move& m) { return Adjust(tx, m, m.amount, 0); }

Status BankService::RunLocal(const std::function<Status(LocalTx&)>& body) {
  auto store = ThreadStore();
  if (!store.ok()) return store.status();
  auto tx = (*store)->Begin();
  if (!tx.ok()) {
    if (tx.status().code() == StatusCode::kUnavailable) DropThreadConnections();
    return tx.status();
  }
  Status s = body(**tx);
  if (!s.ok()) {
    (void)(*tx)->Rollback();
    return s;
  }
  return (*tx)->Commit();
}

Status BankService::Freeze(LocalTx& tx, const Move& m) {
  auto n = tx.Exec(Sql("UPDATE bank_account SET balance = balance - ?, frozen = frozen + ? "
                       "WHERE id = ? AND balance >= ?"),
                   {m.amount, m.amount, m.account, m.amount});
  if (!n.ok()) return n.status();
  if (*n != 1) {
    DTX_RETURN_IF_ERROR(CheckAccount(tx, m.account));
    return dtx::Aborted("insufficient funds in account " + std::to_string(m.account));
  }
  return Journal(tx, m, -m.amount, m.amount);
}

void BankService::RegisterRoutes() {
  using Step = Status (BankService::*)(LocalTx&, const Move&);
  auto barrier_route = [this](const std::string& path,
                              std::function<Status(LocalTx&, const Move&)> step) {
    server_->HandleWithBarrier(path, [step](LocalTx& tx, const BranchRequest& r) -> Status {
      auto m = ParseMove(r.body);
      // A malformed payload will never succeed: fail the branch instead of retrying forever.
      if (!m.ok()) return dtx::Aborted(m.status().message());
      m->gid = r.info.gid;
      m->step = r.path;
      return step(tx, *m);
    });
  };
  auto bind = [this](Step step) {
    return [this, step](LocalTx& tx, const Move& m) { return (this->*step)(tx, m); };
  };
  // Saga: debit here, credit at the peer; each with its compensation.
  barrier_route("/saga/debit", bind(&BankService::Debit));
  barrier_route("/saga/debit-undo", bind(&BankService::Credit));
  barrier_route("/saga/credit", bind(&BankService::Credit));
  barrier_route("/saga/credit-undo",
                [this](LocalTx& tx, const Move& m) { return Adjust(tx, m, -m.amount, 0); });
  // TCC: the try of a debit freezes the money; confirm releases the frozen amount, cancel
  // returns it. A credit's try only checks the account; its confirm adds the money.
  barrier_route("/tcc/debit-try", bind(&BankService::Freeze));
  barrier_route("/tcc/debit-confirm",
                [this](LocalTx& tx, const Move& m) { return Adjust(tx, m, 0, -m.amount); });
  barrier_route("/tcc/debit-cancel",
                [this](LocalTx& tx, const Move& m) { return Adjust(tx, m, m.amount, -m.amount); });
  barrier_route("/tcc/credit-try",
                [this](LocalTx& tx, const Move& m) { return CheckAccount(tx, m.account); });
  barrier_route("/tcc/credit-confirm", bind(&BankService::Credit));
  barrier_route("/tcc/credit-cancel", [](LocalTx&, const Move&) { return Status::Ok(); });
  // Two-phase message: the debit is the local transaction of /transfer; dtxd delivers the credit.
  barrier_route("/msg/credit", bind(&BankService::Credit));
  server_->HandleQueryPrepared("/msg/query-prepared");
  // XA: the SDK prepares each branch in this service's database, registers it with dtxd and
  // finishes it when dtxd calls back.
  auto xa_step = [this](bool debit) {
    return [this, debit](LocalTx& tx, const BranchRequest& r) -> Status {
      auto m = ParseMove(r.body);
      if (!m.ok()) return dtx::Aborted(m.status().message());
      m->gid = r.info.gid;
      m->step = r.path;
      return debit ? Debit(tx, *m) : Credit(tx, *m);
    };
  };
  server_->HandleXa("/xa/debit", "/xa/debit-phase2", xa_step(true));
  server_->HandleXa("/xa/credit", "/xa/credit-phase2", xa_step(false));
  // Plain routes.
  server_->HandlePlain("/transfer", [this](const BranchRequest& r) { return HandleTransfer(r); });
  server_->HandlePlain("/balances", [this](const BranchRequest&) { return HandleBalances(); });
  server_->HandlePlain("/xa/prepared", [this](const BranchRequest&) { return HandlePrepared(); });
  server_->HandlePlain("/xa/recover", [this](const BranchRequest&) { return HandleRecover(); });
  // Uncoordinated baseline for the benchmark: a plain local transaction, no barrier, no dtxd.
  server_->HandlePlain("/direct/credit", [this](const BranchRequest& r) {
    auto m = ParseMove(r.body);
    if (!m.ok()) return JsonResponse(400, {{"message", m.status().message()}});
    m->step = "/direct/credit";
    Status s = RunLocal([&](LocalTx& tx) { return Credit(tx, *m); });
    if (!s.ok())
      return JsonResponse(s.code() == StatusCode::kAborted ? 409 : 500,
                          {{"message", s.ToString()}});
    return JsonResponse(200, {{"dtm_result", "SUCCESS"}});
  });
  server_->HandlePlain("/health", [](const BranchRequest&) {
    return PlainResponse{200, "application/json", R"({"status":"ok"})"};
  });
}

Status BankService::RunTransfer(const Transfer& t, std::string* outcome) {
  const Move out{t.from, t.amount, t.gid, "/transfer/" + t.mode};
  const Move in{t.to, t.amount, "", ""};
  const std::string& self = self_url_;
  const std::string& peer = options_.peer_url;
  if (t.mode == "saga") {
    dtx::sdk::Saga saga(*dtxd_, t.gid);
    saga.Add(self + "/saga/debit", self + "/saga/debit-undo", MoveJson(out))
        .Add(peer + "/saga/credit", peer + "/saga/credit-undo", MoveJson(in))
        .WaitResult(true);
    Status s = saga.Submit();
    *outcome = s.ok() ? "succeed" : "";
    return s;
  }
  if (t.mode == "tcc") {
    Status s = dtx::sdk::Tcc::Run(*dtxd_, t.gid, [&](dtx::sdk::Tcc& tcc) -> Status {
      auto r = tcc.CallBranch(MoveJson(out), self + "/tcc/debit-try", self + "/tcc/debit-confirm",
                              self + "/tcc/debit-cancel");
      if (!r.ok()) return r.status();
      return tcc
          .CallBranch(MoveJson(in), peer + "/tcc/credit-try", peer + "/tcc/credit-confirm",
                      peer + "/tcc/credit-cancel")
          .status();
    });
    *outcome = s.ok() ? "submitted" : "";
    return s;
  }
  if (t.mode == "xa") {
    Status s = dtx::sdk::Xa::Run(*dtxd_, t.gid, [&](dtx::sdk::Xa& xa) -> Status {
      auto r = xa.CallBranch(MoveJson(out), self + "/xa/debit");
      if (!r.ok()) return r.status();
      return xa.CallBranch(MoveJson(in), peer + "/xa/credit").status();
    });
    *outcome = s.ok() ? "submitted" : "";
    return s;
  }
  if (t.mode == "direct") {
    // Not atomic: a failed credit leaves the debit in place. Only a baseline to measure against.
    Status s = RunLocal([&](LocalTx& tx) { return Debit(tx, out); });
    if (!s.ok()) return s;
    auto reply = dtxd_->Http("POST", peer + "/direct/credit", MoveJson(in));
    if (!reply.ok()) return reply.status();
    DTX_RETURN_IF_ERROR(dtx::sdk::StatusFromHttp(reply->http_status, reply->body, "credit"));
    *outcome = "succeed";
    return Status::Ok();
  }
  // msg: debit here in the message's local transaction; dtxd then delivers the credit.
  dtx::sdk::Msg msg(*dtxd_, t.gid);
  msg.Add(peer + "/msg/credit", MoveJson(in));
  Status s = msg.DoAndSubmit(self + "/msg/query-prepared", [&]() -> Status {
    auto store = ThreadStore();
    if (!store.ok()) return store.status();
    Status local =
        dtx::sdk::CallMsgLocal(**store, t.gid, [&](LocalTx& tx) { return Debit(tx, out); });
    if (local.code() == StatusCode::kUnavailable) DropThreadConnections();
    return local;
  });
  *outcome = s.ok() ? "submitted" : "";
  return s;
}

PlainResponse BankService::HandleTransfer(const BranchRequest& r) {
  if (r.method != "POST") return JsonResponse(405, {{"message", "use POST"}});
  if (options_.peer_url.empty()) {
    return JsonResponse(400, {{"message", "this service has no --peer to transfer to"}});
  }
  auto t = ParseTransfer(r.body);
  if (!t.ok()) return JsonResponse(400, {{"message", t.status().message()}});
  // Initiators block on branch calls that may come back to this service: keep half of the
  // workers free for them.
  if (transfers_in_flight_.fetch_add(1) >= std::max(1, options_.workers / 2)) {
    transfers_in_flight_.fetch_sub(1);
    return JsonResponse(503, {{"message", "too many transfers in flight; retry"}});
  }
  if (t->gid.empty() && t->mode != "direct") {
    auto gid = dtxd_->NewGid();
    if (!gid.ok()) {
      transfers_in_flight_.fetch_sub(1);
      return JsonResponse(503, {{"message", "newGid: " + gid.status().ToString()}});
    }
    t->gid = *gid;
  }
  std::string outcome;
  Status s = RunTransfer(*t, &outcome);
  transfers_in_flight_.fetch_sub(1);
  json body = {{"gid", t->gid}, {"mode", t->mode}};
  if (s.ok()) {
    body["result"] = outcome;
    return JsonResponse(200, body);
  }
  body["message"] = s.ToString();
  if (s.code() == StatusCode::kAborted) {
    body["result"] = "failed";
    return JsonResponse(409, body);
  }
  if (s.code() == StatusCode::kInvalidArgument) {
    body["result"] = "refused";
    return JsonResponse(400, body);
  }
  // Unknown outcome: dtxd finishes the transaction one way or the other.
  body["result"] = "pending";
  return JsonResponse(202, body);
}

PlainResponse BankService::HandleBalances() {
  auto store = ThreadStore();
  if (!store.ok()) return JsonResponse(503, {{"message", store.status().ToString()}});
  auto tx = (*store)->Begin();
  if (!tx.ok()) {
    DropThreadConnections();
    return JsonResponse(503, {{"message", tx.status().ToString()}});
  }
  auto rows = (*tx)->Query("SELECT id, balance, frozen FROM bank_account ORDER BY id");
  if (!rows.ok()) return JsonResponse(503, {{"message", rows.status().ToString()}});
  (void)(*tx)->Rollback();
  json accounts = json::array();
  int64_t total = 0;
  int64_t frozen = 0;
  for (const auto& row : *rows) {
    int64_t id = AsInt(row.at(0)), balance = AsInt(row.at(1)), f = AsInt(row.at(2));
    accounts.push_back({{"id", id}, {"balance", balance}, {"frozen", f}});
    total += balance;
    frozen += f;
  }
  return JsonResponse(
      200,
      {{"service", options_.name}, {"accounts", accounts}, {"total", total}, {"frozen", frozen}});
}

PlainResponse BankService::HandlePrepared() {
  auto xa = ThreadXa();
  if (!xa.ok()) return JsonResponse(503, {{"message", xa.status().ToString()}});
  auto list = (*xa)->ListPrepared();
  if (!list.ok()) {
    DropThreadConnections();
    return JsonResponse(503, {{"message", list.status().ToString()}});
  }
  json out = json::array();
  for (const auto& b : *list) out.push_back({{"gid", b.gid}, {"branch_id", b.branch_id}});
  return JsonResponse(200, {{"prepared", out}});
}

PlainResponse BankService::HandleRecover() {
  auto xa = ThreadXa();
  if (!xa.ok()) return JsonResponse(503, {{"message", xa.status().ToString()}});
  auto report = dtx::sdk::RecoverInDoubt(**xa, *dtxd_);
  if (!report.ok()) {
    DropThreadConnections();
    return JsonResponse(503, {{"message", report.status().ToString()}});
  }
  return JsonResponse(200, {{"committed", report->committed},
                            {"rolled_back", report->rolled_back},
                            {"left", report->left}});
}

Status BankService::Start() {
  if (options_.dsn.empty()) return dtx::InvalidArgument("--dsn is required");
  if (options_.accounts < 1 || options_.accounts > 1'000'000) {
    return dtx::InvalidArgument("--accounts must be in 1..1000000");
  }
  if (options_.initial_balance < 0 || options_.initial_balance > kMaxAmount) {
    return dtx::InvalidArgument("--initial-balance must be in 0.." + std::to_string(kMaxAmount));
  }
  if (options_.workers < 2 || options_.workers > 256) {
    return dtx::InvalidArgument("--workers must be in 2..256");
  }
  if (options_.xa_recovery_interval_s < 1) {
    return dtx::InvalidArgument("--xa-recovery-interval-s must be at least 1");
  }
  if (!options_.peer_url.empty()) {
    DTX_RETURN_IF_ERROR(dtx::sdk::ValidateUrl(options_.peer_url, "--peer"));
  }
  dtxd_ = std::make_unique<dtx::sdk::DtxClient>(options_.dtxd_url);
  DTX_RETURN_IF_ERROR(dtxd_->status());
  DTX_RETURN_IF_ERROR(Setup());

  dtx::sdk::BranchServerOptions so;
  so.host = options_.host;
  so.port = options_.port;
  so.worker_threads = options_.workers;
  so.store_factory = [this] { return OpenStore(); };
  so.xa_factory = [this] { return OpenXa(); };
  so.dtxd_url = options_.dtxd_url;
  so.xa_recovery_interval_s = options_.xa_recovery_interval_s;
  server_ = std::make_unique<dtx::sdk::BranchServer>(std::move(so));
  RegisterRoutes();
  DTX_RETURN_IF_ERROR(server_->Start());
  self_url_ = "http://" + options_.host + ":" + std::to_string(server_->port());
  return Status::Ok();
}

void BankService::Stop() {
  if (server_) server_->Stop();
}

}  // namespace bank
