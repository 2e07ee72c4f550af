// dtxd: the dtx transaction coordinator.
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>

#include "server/config.h"
#include "server/coordinator.h"

int main(int argc, char** argv) {
  auto cli = dtx::server::ParseCommandLine(argc, argv);
  if (cli.exit_now) {
    std::fputs(cli.output.c_str(), cli.exit_code == 0 ? stdout : stderr);
    return cli.exit_code;
  }
  spdlog::set_level(spdlog::level::from_str(cli.config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  boost::asio::io_context io(1);
  auto coordinator = dtx::server::Coordinator::Start(io, cli.config);
  if (!coordinator.ok()) {
    spdlog::error("cannot start: {}", coordinator.status().ToString());
    return 1;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    (*coordinator)->Stop();
    io.stop();
  });
  io.run();
  return 0;
}
