// The bank example end to end on real servers: dtxd, two bank-service processes (one on
// PostgreSQL, one on MariaDB), transfers in every mode, and the bank invariant checked directly in
// both databases: the total is unchanged, no account is negative, nothing stays frozen, no XA
// branch stays prepared, and every global transaction reached succeed or failed.
//
// DTX_PG_DSN and DTX_MARIADB_DSN name the servers (scripts/test.sh starts private ones); each test
// creates its own pair of databases, so it never meets another test's tables.
#include <libpq-fe.h>
#include <mysql.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dtx/barrier.h"
#include "dtx/xa.h"
#include "harness.h"
#include "process.h"

namespace dtx::itest {
namespace {

constexpr int kAccounts = 5;
constexpr int64_t kInitial = 1000;
constexpr int64_t kTotal = 2 * kAccounts * kInitial;
const char* const kModes[] = {"saga", "tcc", "xa", "msg"};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Replaces (or adds) the dbname=... entry of a key=value connection string.
std::string WithDbName(const std::string& dsn, const std::string& db) {
  std::string out;
  size_t i = 0;
  while (i < dsn.size()) {
    size_t end = dsn.find(' ', i);
    if (end == std::string::npos) end = dsn.size();
    std::string item = dsn.substr(i, end - i);
    if (!item.empty() && item.rfind("dbname=", 0) != 0) out += item + " ";
    i = end + 1;
  }
  return out + "dbname=" + db;
}

int64_t AsInt(const sdk::SqlValue& v) {
  if (std::holds_alternative<int64_t>(v)) return std::get<int64_t>(v);
  if (std::holds_alternative<double>(v)) return static_cast<int64_t>(std::get<double>(v));
  if (std::holds_alternative<std::string>(v)) return std::stoll(std::get<std::string>(v));
  return 0;
}

Status PgAdmin(const std::string& dsn, const std::string& sql) {
  PGconn* c = PQconnectdb(dsn.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = PQerrorMessage(c);
    PQfinish(c);
    return Unavailable(m);
  }
  PGresult* r = PQexec(c, sql.c_str());
  Status s = PQresultStatus(r) == PGRES_COMMAND_OK ? Status::Ok() : Internal(PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  return s;
}

Status MariaAdmin(const std::string& dsn, const std::string& sql) {
  auto o = sdk::MariaDbOptions::Parse(dsn);
  if (!o.ok()) return o.status();
  MYSQL* c = mysql_init(nullptr);
  const char* socket = o->unix_socket.empty() ? nullptr : o->unix_socket.c_str();
  if (!mysql_real_connect(c, o->host.c_str(), o->user.c_str(), o->password.c_str(), nullptr,
                          o->port, socket, 0)) {
    std::string m = mysql_error(c);
    mysql_close(c);
    return Unavailable(m);
  }
  Status s = mysql_query(c, sql.c_str()) == 0 ? Status::Ok() : Internal(mysql_error(c));
  mysql_close(c);
  return s;
}

// One bank-service child on a fixed port, restartable.
class BankProcess {
 public:
  BankProcess(std::string name, std::string db, std::string dsn, std::string log)
      : name_(std::move(name)), db_(std::move(db)), dsn_(std::move(dsn)), log_(std::move(log)) {}

  Status PickPort() {
    auto p = PickFreePort();
    if (!p.ok()) return p.status();
    port_ = *p;
    return Status::Ok();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  Status Start(const std::string& dtxd_url, const std::string& peer_url) {
    dtxd_url_ = dtxd_url;
    peer_url_ = peer_url;
    return Restart();
  }
  Status Restart() {
    Kill9();
    std::vector<std::string> argv = {BANK_BIN,
                                     "--name",
                                     name_,
                                     "--db",
                                     db_,
                                     "--dsn",
                                     dsn_,
                                     "--port",
                                     std::to_string(port_),
                                     "--dtxd",
                                     dtxd_url_,
                                     "--peer",
                                     peer_url_,
                                     "--accounts",
                                     std::to_string(kAccounts),
                                     "--initial-balance",
                                     std::to_string(kInitial),
                                     "--xa-recovery-interval-s",
                                     "1"};
    auto p = Subprocess::Start({std::move(argv), log_, /*pipe_stdout=*/true});
    if (!p.ok()) return p.status();
    process_ = std::move(*p);
    auto line = process_->ReadLine(30'000);
    if (!line.ok()) {
      return Unavailable(name_ + " did not start: " + line.status().ToString() + "\n" +
                         ReadFile(log_));
    }
    return Status::Ok();
  }
  void Kill9() {
    if (process_) process_->Kill();
  }

 private:
  std::string name_, db_, dsn_, log_;
  std::string dtxd_url_, peer_url_;
  uint16_t port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

struct Totals {
  int64_t total = 0;
  int64_t frozen = 0;
  int64_t min_balance = 0;
  int64_t accounts = 0;
};

class BankE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_admin_ = Env("DTX_PG_DSN");
    maria_admin_ = Env("DTX_MARIADB_DSN");
    if (pg_admin_.empty() || maria_admin_.empty()) {
      FAIL() << "DTX_PG_DSN and DTX_MARIADB_DSN must be set: run the tests through "
                "scripts/test.sh BUILD_DIR (it starts private servers); set either to \"skip\" "
                "to skip these tests.";
    }
    if (pg_admin_ == "skip" || maria_admin_ == "skip") GTEST_SKIP() << "database tests skipped";
    static int counter = 0;
    db_ = "dtx_bank_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
    ASSERT_TRUE(PgAdmin(pg_admin_, "CREATE DATABASE " + db_).ok());
    ASSERT_TRUE(MariaAdmin(maria_admin_, "CREATE DATABASE " + db_).ok());
    pg_dsn_ = WithDbName(pg_admin_, db_);
    maria_dsn_ = WithDbName(maria_admin_, db_);

    dtxd_ = std::make_unique<DtxdProcess>(http_, dir_.path() + "/dtxd", dir_.path() + "/dtxd.log");
    pg_ = std::make_unique<BankProcess>("pg-bank", "postgres", pg_dsn_, dir_.path() + "/pg.log");
    maria_ = std::make_unique<BankProcess>("maria-bank", "mariadb", maria_dsn_,
                                           dir_.path() + "/maria.log");
    ASSERT_TRUE(pg_->PickPort().ok());
    ASSERT_TRUE(maria_->PickPort().ok());
    // The msg check-back waits 5 s (not the harness's 500 ms): a loaded machine can take longer
    // than that between prepare and the local commit, and the check-back would then (correctly)
    // fail the message, which the exact-balance test does not expect.
    Status s = dtxd_->Start({"--prepared-timeout-ms", "8000", "--wait-result-timeout-ms", "3000",
                             "--msg-timeout-ms", "5000"});
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = pg_->Start(dtxd_->Url(""), maria_->Url());
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = maria_->Start(dtxd_->Url(""), pg_->Url());
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    if (pg_) pg_->Kill9();
    if (maria_) maria_->Kill9();
    if (dtxd_) dtxd_->Kill9();
    if (db_.empty()) return;
    if (HasFailure()) {
      // Keep the evidence: the databases stay, the logs are copied out of the temp dir.
      const std::string keep = std::filesystem::temp_directory_path() / ("dtx-" + db_);
      std::error_code ec;
      std::filesystem::copy(dir_.path(), keep, std::filesystem::copy_options::recursive, ec);
      std::printf("kept databases %s and logs in %s\n", db_.c_str(), keep.c_str());
      return;
    }
    // Best effort: a test that failed may have left prepared XA branches, which block the drop.
    (void)PgAdmin(pg_admin_, "DROP DATABASE IF EXISTS " + db_);
    (void)MariaAdmin(maria_admin_, "DROP DATABASE IF EXISTS " + db_);
  }

  // POST /transfer on the service of `from_pg` (true: pg-bank -> maria-bank).
  HttpReply Transfer(bool from_pg, const std::string& mode, const std::string& gid, int64_t from,
                     int64_t to, int64_t amount) {
    nlohmann::json body = {
        {"mode", mode}, {"gid", gid}, {"from", from}, {"to", to}, {"amount", amount}};
    return http_.Call("POST", (from_pg ? pg_->Url() : maria_->Url()) + "/transfer", body.dump(),
                      15'000);
  }

  // The dtxd status of gid: "" while dtxd cannot be asked, "none" if it never existed.
  std::string GidStatus(const std::string& gid) {
    HttpReply r = http_.Get(dtxd_->Url("/api/dtmsvr/query?gid=" + gid));
    if (!r.transport.ok() || r.status != 200) return "";
    auto j = r.Json();
    if (!j.is_object() || !j.contains("transaction") || j["transaction"].is_null()) return "none";
    return j["transaction"].value("status", "");
  }

  // Waits (bounded poll) until every gid is succeed, failed or never existed. Returns the ones
  // that did not get there.
  std::vector<std::string> Settle(const std::vector<std::string>& gids, int64_t budget_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
    std::vector<std::string> pending = gids;
    while (true) {
      std::vector<std::string> still;
      for (const auto& g : pending) {
        std::string s = GidStatus(g);
        if (s != "succeed" && s != "failed" && s != "none") still.push_back(g + "=" + s);
      }
      if (still.empty() || std::chrono::steady_clock::now() > deadline) return still;
      pending.clear();
      for (auto& g : still) pending.push_back(g.substr(0, g.find('=')));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling dtxd's progress
    }
  }

  Totals PgTotals() { return TotalsOf(sdk::PostgresBarrierStore::Open(pg_dsn_)); }
  Totals MariaTotals() {
    auto o = sdk::MariaDbOptions::Parse(maria_dsn_);
    EXPECT_TRUE(o.ok());
    return TotalsOf(sdk::MariaDbBarrierStore::Open(*o));
  }
  template <typename StorePtr>
  Totals TotalsOf(Result<StorePtr> store) {
    Totals t;
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return t;
    auto tx = (*store)->Begin();
    EXPECT_TRUE(tx.ok());
    if (!tx.ok()) return t;
    auto rows = (*tx)->Query(
        "SELECT COALESCE(SUM(balance), 0), COALESCE(SUM(frozen), 0), COALESCE(MIN(balance), 0), "
        "COUNT(*) FROM bank_account");
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok()) return t;
    const auto& row = rows->at(0);
    t = {AsInt(row.at(0)), AsInt(row.at(1)), AsInt(row.at(2)), AsInt(row.at(3))};
    (void)(*tx)->Rollback();
    return t;
  }
  int64_t Balance(bool pg, int64_t account) {
    std::string sql =
        std::string("SELECT balance FROM bank_account WHERE id = ") + std::to_string(account);
    Result<std::unique_ptr<sdk::BarrierStore>> store = Unavailable("unopened");
    if (pg) {
      auto s = sdk::PostgresBarrierStore::Open(pg_dsn_);
      if (s.ok()) store = std::unique_ptr<sdk::BarrierStore>(std::move(*s));
    } else {
      auto s = sdk::MariaDbBarrierStore::Open(*sdk::MariaDbOptions::Parse(maria_dsn_));
      if (s.ok()) store = std::unique_ptr<sdk::BarrierStore>(std::move(*s));
    }
    if (!store.ok()) return -1;
    auto tx = (*store)->Begin();
    if (!tx.ok()) return -1;
    auto rows = (*tx)->Query(sql);
    if (!rows.ok() || rows->empty()) return -1;
    return AsInt(rows->at(0).at(0));
  }

  // Prepared XA branches left on either server (bounded wait for the services' recovery loops).
  size_t PreparedLeft(int64_t budget_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
    while (true) {
      size_t n = 0;
      auto pg = sdk::OpenPostgresXa(pg_dsn_);
      auto maria = sdk::OpenMariaDbXa(*sdk::MariaDbOptions::Parse(maria_dsn_));
      EXPECT_TRUE(pg.ok() && maria.ok());
      if (!pg.ok() || !maria.ok()) return 999;
      auto a = (*pg)->ListPrepared();
      auto b = (*maria)->ListPrepared();
      EXPECT_TRUE(a.ok() && b.ok());
      if (!a.ok() || !b.ok()) return 999;
      n = a->size() + b->size();
      if (n == 0 || std::chrono::steady_clock::now() > deadline) return n;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling recovery progress
    }
  }

  // Rows of bank_journal as "gid step account delta frozen_delta".
  template <typename StorePtr>
  std::vector<sdk::SqlRow> JournalOf(Result<StorePtr> store) {
    if (!store.ok()) return {};
    auto tx = (*store)->Begin();
    if (!tx.ok()) return {};
    auto rows = (*tx)->Query(
        "SELECT gid, step, account, delta, frozen_delta FROM bank_journal ORDER BY id");
    return rows.ok() ? *rows : std::vector<sdk::SqlRow>{};
  }

  // The transactions whose journal entries over both databases do not sum to zero, with their
  // entries and dtxd's status: the evidence when the total is off.
  std::string UnbalancedTransactions() {
    std::map<std::string, int64_t> sum;
    std::map<std::string, std::string> steps;
    auto add = [&](const char* db, const std::vector<sdk::SqlRow>& rows) {
      for (const auto& r : rows) {
        const std::string gid = std::get<std::string>(r.at(0));
        sum[gid] += AsInt(r.at(3));
        steps[gid] += std::string(" ") + db + std::get<std::string>(r.at(1)) + "(" +
                      std::to_string(AsInt(r.at(3))) + "," + std::to_string(AsInt(r.at(4))) + ")";
      }
    };
    add("pg", JournalOf(sdk::PostgresBarrierStore::Open(pg_dsn_)));
    add("maria",
        JournalOf(sdk::MariaDbBarrierStore::Open(*sdk::MariaDbOptions::Parse(maria_dsn_))));
    std::string out;
    for (const auto& [gid, total] : sum) {
      if (total != 0 && !gid.empty()) {
        out += gid + " [" + GidStatus(gid) + "] sum " + std::to_string(total) + ":" + steps[gid] +
               "\n";
      }
    }
    return out;
  }

  void ExpectInvariant() {
    Totals pg = PgTotals();
    Totals maria = MariaTotals();
    if (pg.total + maria.total != kTotal) {
      ADD_FAILURE() << "unbalanced transactions (journal, both databases):\n"
                    << UnbalancedTransactions();
    }
    EXPECT_EQ(pg.accounts, kAccounts);
    EXPECT_EQ(maria.accounts, kAccounts);
    EXPECT_EQ(pg.total + maria.total, kTotal) << "pg " << pg.total << " maria " << maria.total;
    EXPECT_EQ(pg.frozen, 0);
    EXPECT_EQ(maria.frozen, 0);
    EXPECT_GE(pg.min_balance, 0);
    EXPECT_GE(maria.min_balance, 0);
    EXPECT_EQ(PreparedLeft(20'000), 0u);
  }

  Http http_;
  TempDir dir_;
  std::string pg_admin_, maria_admin_, db_, pg_dsn_, maria_dsn_;
  std::unique_ptr<DtxdProcess> dtxd_;
  std::unique_ptr<BankProcess> pg_, maria_;
};

TEST_F(BankE2eTest, EveryModeMovesMoneyBothWaysAndRefusedDebitsChangeNothing) {
  std::vector<std::string> gids;
  int n = 0;
  for (const char* mode : kModes) {
    std::string gid = std::string("ok-") + mode + "-" + std::to_string(++n);
    HttpReply r = Transfer(true, mode, gid, 1, 2, 100);
    EXPECT_EQ(r.status, 200) << mode << ": " << r.body;
    gids.push_back(gid);
    gid = std::string("back-") + mode + "-" + std::to_string(n);
    r = Transfer(false, mode, gid, 3, 4, 10);
    EXPECT_EQ(r.status, 200) << mode << ": " << r.body;
    gids.push_back(gid);
    gid = std::string("refused-") + mode + "-" + std::to_string(n);
    r = Transfer(true, mode, gid, 5, 5, 5000);
    EXPECT_EQ(r.status, 409) << mode << ": " << r.body;
    EXPECT_EQ(r.Json().value("result", ""), "failed") << r.body;
    gids.push_back(gid);
  }
  EXPECT_TRUE(Settle(gids, 30'000).empty());
  for (const auto& g : gids) {
    EXPECT_EQ(GidStatus(g), g.rfind("refused", 0) == 0 ? "failed" : "succeed") << g;
  }
  // pg account 1 sent 4 x 100; maria account 2 received them; maria 3 sent 4 x 10 to pg 4.
  EXPECT_EQ(Balance(true, 1), kInitial - 400);
  EXPECT_EQ(Balance(false, 2), kInitial + 400);
  EXPECT_EQ(Balance(false, 3), kInitial - 40);
  EXPECT_EQ(Balance(true, 4), kInitial + 40);
  EXPECT_EQ(Balance(true, 5), kInitial);
  EXPECT_EQ(Balance(false, 5), kInitial);
  ExpectInvariant();

  // Bad input is refused with 400 and moves nothing.
  for (std::string body : {"", "{}", R"({"mode":"2pc","from":1,"to":1,"amount":1})",
                           R"({"mode":"saga","from":0,"to":1,"amount":1})",
                           R"({"mode":"saga","from":1,"to":1,"amount":-5})",
                           R"({"mode":"saga","from":1,"to":1,"amount":1,"gid":"a b"})"}) {
    HttpReply r = http_.Call("POST", pg_->Url() + "/transfer", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
  }
  EXPECT_EQ(Balance(true, 1), kInitial - 400);
}

// Concurrent transfers in every mode, both directions, while a participant service or dtxd is
// killed with SIGKILL and restarted at random moments (seeded; bounded count and time).
TEST_F(BankE2eTest, InvariantHoldsWhileServicesAndDtxdAreKilled) {
  // DTX_BANK_SEED replays a run; otherwise every run explores a new schedule (the seed is printed).
  const std::string seed_env = Env("DTX_BANK_SEED");
  const unsigned seed =
      seed_env.empty() ? std::random_device{}() : static_cast<unsigned>(std::stoul(seed_env));
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int kDrivers = 4;
  constexpr int kMaxTransfersPerDriver = 400;
  constexpr int kKills = 6;
  const auto run_for = std::chrono::seconds(15);
  const auto stop_at = std::chrono::steady_clock::now() + run_for;

  std::mutex mu;
  std::vector<std::string> gids;
  std::map<std::string, int> answers;          // "mode status" -> count
  std::map<std::string, std::string> samples;  // "mode status" -> first body
  std::vector<std::thread> drivers;
  for (int d = 0; d < kDrivers; ++d) {
    drivers.emplace_back([&, d] {
      std::mt19937 rng(seed + d);
      for (int i = 0; i < kMaxTransfersPerDriver && std::chrono::steady_clock::now() < stop_at;
           ++i) {
        const char* mode = kModes[rng() % 4];
        std::string gid =
            "chaos-" + std::to_string(seed) + "-" + std::to_string(d) + "-" + std::to_string(i);
        bool from_pg = rng() % 2 == 0;
        int64_t amount = 1 + rng() % 400;  // sometimes more than an account holds
        HttpReply r =
            Transfer(from_pg, mode, gid, 1 + rng() % kAccounts, 1 + rng() % kAccounts, amount);
        std::lock_guard lock(mu);
        gids.push_back(gid);
        const std::string key = std::string(mode) + " " + std::to_string(r.status);
        if (++answers[key] == 1) samples[key] = r.body.substr(0, 300);
      }
    });
  }
  // Chaos: kill one of the three processes, let the others notice, restart it.
  std::mt19937 rng(seed);
  int kills = 0;
  std::string kill_log;
  while (kills < kKills && std::chrono::steady_clock::now() < stop_at) {
    std::this_thread::sleep_for(std::chrono::milliseconds(800 + rng() % 1200));  // fault timing
    int victim = rng() % 3;
    Status s;
    if (victim == 0) {
      dtxd_->Kill9();
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 500));
      s = dtxd_->Restart();
    } else {
      BankProcess& b = victim == 1 ? *pg_ : *maria_;
      b.Kill9();
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 500));
      s = b.Restart();
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    kill_log += std::string(victim == 0 ? "dtxd " : victim == 1 ? "pg-bank " : "maria-bank ");
    ++kills;
  }
  for (auto& t : drivers) t.join();
  std::string summary;
  for (auto& [k, v] : answers) summary += k + ": " + std::to_string(v) + ", ";
  std::string sample_text;
  for (auto& [k, v] : samples) sample_text += "  " + k + ": " + v + "\n";
  SCOPED_TRACE("killed: " + kill_log + "; answers: " + summary);
  EXPECT_GE(kills, 3);

  std::vector<std::string> stuck = Settle(gids, 60'000);
  EXPECT_TRUE(stuck.empty()) << stuck.size() << " unfinished, e.g. " << stuck.front();
  int succeeded = 0;
  for (const auto& g : gids) succeeded += GidStatus(g) == "succeed";
  EXPECT_GT(succeeded, 0);
  ExpectInvariant();
  std::printf("bank chaos: seed %u, %zu transfers, %d succeeded, kills: %s\nanswers: %s\n%s", seed,
              gids.size(), succeeded, kill_log.c_str(), summary.c_str(), sample_text.c_str());
}

}  // namespace
}  // namespace dtx::itest
