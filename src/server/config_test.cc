#include "server/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace dtx::server {
namespace {

CommandLine Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "dtxd");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

std::string WriteTemp(const std::string& text) {
  char path[] = "/tmp/dtxd_config_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return path;
}

TEST(ConfigTest, DefaultsAreValid) {
  Config c;
  EXPECT_TRUE(Validate(c).ok());
  auto cli = Parse({});
  EXPECT_FALSE(cli.exit_now) << cli.output;
  EXPECT_EQ(cli.config.listen, "127.0.0.1:36789");
}

TEST(ConfigTest, YamlOverridesDefaults) {
  Config c;
  ASSERT_TRUE(
      ApplyYaml("listen: 127.0.0.1:9000\nretry_interval_ms: 250\nlog_level: debug\n", c).ok());
  EXPECT_EQ(c.listen, "127.0.0.1:9000");
  EXPECT_EQ(c.engine.retry_interval_ms, 250);
  EXPECT_EQ(c.log_level, "debug");
}

TEST(ConfigTest, YamlRejectsUnknownKeysAndWrongTypes) {
  Config c;
  Status s = ApplyYaml("lisen: 1.2.3.4:5\n", c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("lisen"), std::string::npos);
  s = ApplyYaml("retry_interval_ms: soon\n", c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("retry_interval_ms"), std::string::npos);
  EXPECT_EQ(ApplyYaml("[1, 2]", c).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyYaml("a: [", c).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyYaml("listen: [a, b]\n", c).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.engine.retry_interval_ms, coord::EngineConfig().retry_interval_ms);
}

TEST(ConfigTest, FlagsOverrideConfigFile) {
  std::string path = WriteTemp("listen: 127.0.0.1:9000\ndata_dir: /tmp/from-file\n");
  auto cli = Parse({"--config", path, "--listen", "127.0.0.1:9100"});
  ASSERT_FALSE(cli.exit_now) << cli.output;
  EXPECT_EQ(cli.config.listen, "127.0.0.1:9100");
  EXPECT_EQ(cli.config.data_dir, "/tmp/from-file");
  std::remove(path.c_str());
}

TEST(ConfigTest, HelpListsEveryFlag) {
  auto cli = Parse({"--help"});
  EXPECT_TRUE(cli.exit_now);
  EXPECT_EQ(cli.exit_code, 0);
  for (const char* flag :
       {"--config", "--listen", "--data-dir", "--max-body-bytes", "--keep-finished-s",
        "--retry-interval-ms", "--max-retry-interval-ms", "--request-timeout-ms", "--alert-webhook",
        "--alert-after-failures", "--retry-limit", "--msg-timeout-ms", "--log-level"}) {
    EXPECT_NE(cli.output.find(flag), std::string::npos) << flag;
  }
}

TEST(ConfigTest, BadCommandLinesExitTwoWithAMessage) {
  for (auto args : std::vector<std::vector<std::string>>{{"--no-such-flag"},
                                                         {"--listen", "nonsense"},
                                                         {"--listen", "127.0.0.1:70000"},
                                                         {"--retry-interval-ms", "abc"},
                                                         {"--retry-interval-ms", "0"},
                                                         {"--log-level", "loud"},
                                                         {"--alert-webhook", "ftp://x"},
                                                         {"--config", "/nonexistent/dtxd.yaml"}}) {
    auto cli = Parse(args);
    EXPECT_TRUE(cli.exit_now) << args[0];
    EXPECT_EQ(cli.exit_code, 2) << args[0];
    EXPECT_FALSE(cli.output.empty());
  }
}

TEST(ConfigTest, ParseListen) {
  auto ok = ParseListen("127.0.0.1:36789");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->first, "127.0.0.1");
  EXPECT_EQ(ok->second, 36789);
  auto v6 = ParseListen("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_FALSE(ParseListen("127.0.0.1").ok());
  EXPECT_FALSE(ParseListen(":80").ok());
  EXPECT_FALSE(ParseListen("h:-1").ok());
  EXPECT_FALSE(ParseListen("h:").ok());
}

}  // namespace
}  // namespace dtx::server

namespace dtx::server {
namespace {

// The example shipped in the repository documents every key; it must stay loadable and complete.
TEST(ConfigTest, ExampleConfigLoadsAndNamesEveryFlag) {
  std::ifstream in(std::string(DTX_SOURCE_DIR) + "/dtxd.example.yaml");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  Config c;
  Status s = ApplyYaml(text.str(), c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Validate(c).ok());
  auto help = Parse({"--help"}).output;
  for (const char* key :
       {"listen", "data_dir", "max_body_bytes", "keep_finished_s", "purge_interval_s",
        "alert_webhook", "log_level", "retry_interval_ms", "max_retry_interval_ms",
        "ongoing_interval_ms", "msg_timeout_ms", "request_timeout_ms", "wait_result_timeout_ms",
        "alert_after_failures", "retry_limit", "prepared_timeout_ms"}) {
    EXPECT_NE(text.str().find(std::string(key) + ":"), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace dtx::server
