// bank-service: one account service of the bank example. It prints
// "listening on http://HOST:PORT" as its first line on stdout, then serves until SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "bank.h"

int main(int argc, char** argv) {
  bank::BankOptions o;
  std::string db = "postgres";
  CLI::App app{"bank-service: an account service of the dtx bank example"};
  app.add_option("--name", o.name, "Name shown in /balances");
  app.add_option("--db", db, "Database kind: postgres or mariadb")
      ->check(CLI::IsMember({"postgres", "mariadb"}));
  app.add_option("--dsn", o.dsn,
                 "Connection: libpq conninfo for postgres, "
                 "\"host=.. port=.. user=.. dbname=..\" for mariadb")
      ->required();
  app.add_option("--host", o.host, "Listen address");
  app.add_option("--port", o.port, "Listen port (0 = any free port)");
  app.add_option("--dtxd", o.dtxd_url, "dtxd base URL");
  app.add_option("--peer", o.peer_url, "Base URL of the other bank service (transfer target)");
  app.add_option("--accounts", o.accounts, "Accounts seeded when the table is empty");
  app.add_option("--initial-balance", o.initial_balance, "Balance of each seeded account");
  app.add_option("--workers", o.workers, "Worker threads (2..256)");
  app.add_option("--xa-recovery-interval-s", o.xa_recovery_interval_s,
                 "How often in-doubt XA branches are finished");
  CLI11_PARSE(app, argc, argv);
  o.db = db == "mariadb" ? bank::DbKind::kMariaDb : bank::DbKind::kPostgres;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Blocked before any thread starts, so only sigwait below receives them.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bank::BankService service(o);
  dtx::Status s = service.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "bank-service: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("listening on http://%s:%u\n", o.host.c_str(), static_cast<unsigned>(service.port()));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  service.Stop();
  return 0;
}
