// dtxd's configuration: defaults, overridden by a YAML file (--config), overridden by flags.
// Every field has the same name in YAML (snake_case) and as a flag (--kebab-case).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "coord/engine.h"

namespace dtx::server {

struct Config {
  std::string listen = "127.0.0.1:36789";
  std::string data_dir = "./data";
  size_t max_body_bytes = 1 << 20;
  // Finished transactions are kept this long, then removed (0 = keep forever).
  int64_t keep_finished_s = 7 * 24 * 3600;
  int64_t purge_interval_s = 60;
  std::string alert_webhook;  // http URL that receives alerts as JSON POSTs; empty = log only
  std::string log_level = "info";
  coord::EngineConfig engine;
};

// Splits "host:port"; the port must be 0..65535 (0 = ephemeral, for tests).
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen);

// Parses the YAML document `yaml` over `config`. Unknown keys and wrongly typed values are
// kInvalidArgument naming the key.
Status ApplyYaml(const std::string& yaml, Config& config);

// Checks ranges and formats (listen address, positive intervals, webhook URL).
Status Validate(const Config& config);

// The outcome of parsing the command line.
struct CommandLine {
  Config config;
  bool exit_now = false;  // --help or --version was printed
  int exit_code = 0;
  std::string output;  // text to print (help, version, or the error)
};

// Parses argv: defaults, then the --config file (read from disk), then the other flags.
// Errors (unknown flag, bad value, unreadable or invalid config file) set exit_now with
// exit_code 2 and a message in `output`.
CommandLine ParseCommandLine(int argc, const char* const* argv);

}  // namespace dtx::server
