// dtx-participant: the test participant service (see participant.h for its paths).
//
//   dtx-participant --listen 127.0.0.1:0
// prints "listening on 127.0.0.1:NNNN" as its first line on stdout, then serves until SIGINT or
// SIGTERM.
#include <utility>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <string>

#include "participant/participant.h"
#include "runtime/http.h"

namespace {

// "host:port" -> parts; the port 0..65535.
bool SplitListen(const std::string& listen, std::string& host, uint16_t& port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size() ||
      listen.size() - colon - 1 > 5) {
    return false;
  }
  unsigned long value = 0;
  for (size_t i = colon + 1; i < listen.size(); ++i) {
    if (listen[i] < '0' || listen[i] > '9') return false;
    value = value * 10 + static_cast<unsigned long>(listen[i] - '0');
  }
  if (value > 65535) return false;
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  dtx::participant::ParticipantOptions options;
  CLI::App app(
      "dtx-participant: a DTM branch service for tests and examples; the URL path chooses the "
      "answer (/ok, /fail, /ongoing/N, /flaky/N, /delay/MS, /timeout, /query/ok|fail|ongoing), "
      "GET /calls?gid=G lists the calls received.",
      "dtx-participant");
  app.add_option("--listen", listen, "host:port to listen on (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--max-records", options.max_records, "Calls kept in memory (oldest dropped)")
      ->capture_default_str();
  app.add_flag("--log-calls", options.log_calls, "Print one line per business call on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string host;
  uint16_t port = 0;
  if (!SplitListen(listen, host, port)) {
    std::fprintf(stderr, "dtx-participant: --listen '%s' must be host:port\n", listen.c_str());
    return 2;
  }

  boost::asio::io_context io(1);
  dtx::participant::Participant participant(io, options);
  dtx::runtime::HttpServerOptions server_options;
  server_options.host = host;
  server_options.port = port;
  auto server = dtx::runtime::HttpServer::Start(
      io, server_options,
      [&participant](dtx::runtime::HttpRequest&& req, dtx::runtime::Responder respond) {
        participant.Handle(std::move(req), std::move(respond));
      });
  if (!server.ok()) {
    std::fprintf(stderr, "dtx-participant: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>((*server)->port()));
  std::fflush(stdout);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    (*server)->Stop();
    io.stop();
  });
  io.run();
  return 0;
}
