#include "server/config.h"

#include <yaml-cpp/yaml.h>
#include <CLI/CLI.hpp>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "coord/request.h"

namespace dtx::server {
namespace {

// One table drives YAML keys, flags and help text, so they cannot drift apart.
struct Field {
  const char* name;  // snake_case
  const char* help;
  std::function<Status(const YAML::Node&)> from_yaml;
  std::function<void(CLI::App&, const std::string& flag)> add_flag;
};

template <typename T>
Field MakeField(const char* name, const char* help, T* target) {
  return Field{name, help,
               [name, target](const YAML::Node& node) -> Status {
                 try {
                   *target = node.as<T>();
                 } catch (const YAML::Exception&) {
                   return InvalidArgument(std::string("config key '") + name +
                                          "' has a wrongly typed value");
                 }
                 return Status::Ok();
               },
               [help, target](CLI::App& app, const std::string& flag) {
                 app.add_option(flag, *target, help)->capture_default_str();
               }};
}

std::vector<Field> Fields(Config& c) {
  auto& e = c.engine;
  return {
      MakeField("listen", "HTTP listen address host:port", &c.listen),
      MakeField("data_dir", "Directory of the embedded store (created if missing)", &c.data_dir),
      MakeField("max_body_bytes", "Largest accepted request body in bytes", &c.max_body_bytes),
      MakeField("keep_finished_s", "Seconds to keep finished transactions (0 = forever)",
                &c.keep_finished_s),
      MakeField("purge_interval_s", "Seconds between purges of expired finished transactions",
                &c.purge_interval_s),
      MakeField("alert_webhook", "http URL that receives alerts as JSON POSTs (empty = log only)",
                &c.alert_webhook),
      MakeField("log_level", "trace, debug, info, warn, error or off", &c.log_level),
      MakeField("retry_interval_ms", "First retry delay after a temporary branch error",
                &e.retry_interval_ms),
      MakeField("max_retry_interval_ms", "Cap of the exponential retry backoff",
                &e.max_retry_interval_ms),
      MakeField("ongoing_interval_ms", "Delay before asking again a branch that answered ONGOING",
                &e.ongoing_interval_ms),
      MakeField("msg_timeout_ms", "How long a msg may stay prepared before it is checked back",
                &e.msg_timeout_ms),
      MakeField("prepared_timeout_ms",
                "How long a tcc or xa transaction may stay prepared before it is aborted",
                &e.prepared_timeout_ms),
      MakeField("request_timeout_ms", "Default timeout of one branch call", &e.request_timeout_ms),
      MakeField("wait_result_timeout_ms", "How long a wait_result submit waits before ONGOING",
                &e.wait_result_timeout_ms),
      MakeField("alert_after_failures",
                "Consecutive failures of one branch operation before an alert (0 = never)",
                &e.alert_after_failures),
      MakeField("retry_limit", "Default retry limit per branch operation (0 = unlimited)",
                &e.retry_limit),
  };
}

std::string Kebab(const char* snake) {
  std::string s = std::string("--") + snake;
  for (char& ch : s) {
    if (ch == '_') ch = '-';
  }
  return s;
}

bool IsLogLevel(const std::string& level) {
  for (const char* l : {"trace", "debug", "info", "warn", "error", "off"}) {
    if (level == l) return true;
  }
  return false;
}

}  // namespace

Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("listen address '" + listen + "' must be host:port");
  }
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return InvalidArgument("listen address '" + listen + "' has an invalid port");
  }
  return std::make_pair(host, static_cast<uint16_t>(std::stoul(port)));
}

Status ApplyYaml(const std::string& yaml, Config& config) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("config is not valid YAML: ") + e.what());
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap()) return InvalidArgument("config must be a YAML mapping of key: value");
  auto fields = Fields(config);
  for (const auto& item : root) {
    std::string key;
    try {
      key = item.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return InvalidArgument("config has a key that is not a string");
    }
    auto it =
        std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return key == f.name; });
    if (it == fields.end()) return InvalidArgument("unknown config key '" + key + "'");
    if (!item.second.IsScalar()) {
      return InvalidArgument("config key '" + key + "' must have a single value");
    }
    DTX_RETURN_IF_ERROR(it->from_yaml(item.second));
  }
  return Status::Ok();
}

Status Validate(const Config& c) {
  auto listen = ParseListen(c.listen);
  if (!listen.ok()) return listen.status();
  if (c.data_dir.empty()) return InvalidArgument("data_dir must not be empty");
  if (c.max_body_bytes < 1024 || c.max_body_bytes > (64u << 20)) {
    return InvalidArgument("max_body_bytes must be between 1024 and 67108864");
  }
  if (c.keep_finished_s < 0) return InvalidArgument("keep_finished_s must be >= 0");
  if (c.purge_interval_s <= 0) return InvalidArgument("purge_interval_s must be > 0");
  if (!c.alert_webhook.empty() && !coord::IsValidBranchUrl(c.alert_webhook)) {
    return InvalidArgument("alert_webhook '" + c.alert_webhook + "' is not an http URL");
  }
  if (!IsLogLevel(c.log_level)) {
    return InvalidArgument("log_level '" + c.log_level +
                           "' must be one of trace, debug, info, warn, error, off");
  }
  const auto& e = c.engine;
  struct Positive {
    const char* name;
    int64_t value;
  };
  for (auto [name, value] : {Positive{"retry_interval_ms", e.retry_interval_ms},
                             Positive{"max_retry_interval_ms", e.max_retry_interval_ms},
                             Positive{"ongoing_interval_ms", e.ongoing_interval_ms},
                             Positive{"msg_timeout_ms", e.msg_timeout_ms},
                             Positive{"prepared_timeout_ms", e.prepared_timeout_ms},
                             Positive{"request_timeout_ms", e.request_timeout_ms},
                             Positive{"wait_result_timeout_ms", e.wait_result_timeout_ms}}) {
    if (value <= 0) return InvalidArgument(std::string(name) + " must be > 0");
  }
  if (e.max_retry_interval_ms < e.retry_interval_ms) {
    return InvalidArgument("max_retry_interval_ms must be >= retry_interval_ms");
  }
  if (e.alert_after_failures < 0) return InvalidArgument("alert_after_failures must be >= 0");
  if (e.retry_limit < 0) return InvalidArgument("retry_limit must be >= 0");
  return Status::Ok();
}

CommandLine ParseCommandLine(int argc, const char* const* argv) {
  CommandLine out;
  const std::string description =
      "dtxd: the dtx transaction coordinator (DTM-compatible HTTP API).\n"
      "Settings come from defaults, then --config FILE (YAML, same keys in snake_case), then "
      "flags.";

  // First pass: only --config, so the file can set the defaults the flags then override.
  std::string config_path;
  {
    CLI::App pre(description, "dtxd");
    pre.allow_extras();
    pre.set_help_flag();
    pre.add_option("--config", config_path);
    try {
      pre.parse(argc, argv);
    } catch (const CLI::ParseError&) {
      // The full parse below reports it.
    }
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) {
      out.exit_now = true;
      out.exit_code = 2;
      out.output = "dtxd: cannot read config file '" + config_path + "'\n";
      return out;
    }
    std::stringstream text;
    text << in.rdbuf();
    Status s = ApplyYaml(text.str(), out.config);
    if (!s.ok()) {
      out.exit_now = true;
      out.exit_code = 2;
      out.output = "dtxd: " + config_path + ": " + s.message() + "\n";
      return out;
    }
  }

  CLI::App app(description, "dtxd");
  app.add_option("--config", config_path, "YAML config file");
  app.set_version_flag("--version", "dtxd 0.1.0");
  auto fields = Fields(out.config);
  for (auto& f : fields) f.add_flag(app, Kebab(f.name));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForVersion&) {
    out.exit_now = true;
    out.output = "dtxd 0.1.0\n";
    return out;
  } catch (const CLI::Success&) {
    out.exit_now = true;
    out.output = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    out.exit_now = true;
    out.exit_code = 2;
    out.output = std::string("dtxd: ") + e.what() + "\nRun 'dtxd --help' for the flags.\n";
    return out;
  }
  Status s = Validate(out.config);
  if (!s.ok()) {
    out.exit_now = true;
    out.exit_code = 2;
    out.output = "dtxd: " + s.message() + "\n";
  }
  return out;
}

}  // namespace dtx::server
