// dtxd's command line and process behaviour: --help, bad flags, a locked data directory.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "harness.h"

namespace dtx::itest {
namespace {

TEST(DtxdCliTest, HelpListsTheMainFlagsAndExitsZero) {
  TempDir dir;
  const std::string log = dir.path() + "/help.log";
  auto code = RunToExit({DTXD_BIN, "--help"}, log, 10'000);
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 0);
  const std::string out = ReadFile(log);
  for (const char* flag : {"--config", "--listen", "--data-dir", "--retry-interval-ms",
                           "--max-body-bytes", "--keep-finished-s"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag << " missing from:\n" << out;
  }
}

TEST(DtxdCliTest, BadFlagExitsTwoWithAMessage) {
  TempDir dir;
  const std::string log = dir.path() + "/bad.log";
  auto code = RunToExit({DTXD_BIN, "--no-such-flag"}, log, 10'000);
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 2);
  EXPECT_NE(ReadFile(log).find("no-such-flag"), std::string::npos) << ReadFile(log);

  code = RunToExit({DTXD_BIN, "--listen", "127.0.0.1:99999"}, log, 10'000);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 2);
}

TEST(DtxdCliTest, ConfigFileIsReadAndValidated) {
  TempDir dir;
  const std::string log = dir.path() + "/config.log";
  {
    std::FILE* f = std::fopen((dir.path() + "/bad.yaml").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("no_such_key: 1\n", f);
    std::fclose(f);
  }
  auto code = RunToExit({DTXD_BIN, "--config", dir.path() + "/bad.yaml"}, log, 10'000);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 2);
  EXPECT_NE(ReadFile(log).find("no_such_key"), std::string::npos) << ReadFile(log);

  code = RunToExit({DTXD_BIN, "--config", dir.path() + "/missing.yaml"}, log, 10'000);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 2);
}

TEST(DtxdCliTest, SecondDtxdOnTheSameDataDirFailsCleanly) {
  TempDir dir;
  Http http;
  DtxdProcess first(http, dir.path() + "/data", dir.path() + "/first.log");
  ASSERT_TRUE(first.Start().ok()) << first.LogTail();

  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  const std::string log = dir.path() + "/second.log";
  auto code = RunToExit({DTXD_BIN, "--listen", "127.0.0.1:" + std::to_string(*port), "--data-dir",
                         dir.path() + "/data"},
                        log, 10'000);
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_NE(*code, 0);
  EXPECT_LT(*code, 128) << "the second dtxd crashed instead of exiting";
  EXPECT_NE(ReadFile(log).find("lock"), std::string::npos) << ReadFile(log);

  // The first one is unaffected.
  EXPECT_EQ(http.Get(first.Url("/api/ping")).status, 200);
}

TEST(DtxdCliTest, ListenAddressInUseFailsCleanly) {
  TempDir dir;
  Http http;
  DtxdProcess first(http, dir.path() + "/data1", dir.path() + "/first.log");
  ASSERT_TRUE(first.Start().ok()) << first.LogTail();
  const std::string log = dir.path() + "/second.log";
  auto code = RunToExit({DTXD_BIN, "--listen", "127.0.0.1:" + std::to_string(first.port()),
                         "--data-dir", dir.path() + "/data2"},
                        log, 10'000);
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 1) << ReadFile(log);
  EXPECT_EQ(http.Get(first.Url("/api/ping")).status, 200);
}

TEST(DtxdCliTest, SigtermStopsDtxd) {
  TempDir dir;
  Http http;
  DtxdProcess dtxd(http, dir.path() + "/data", dir.path() + "/dtxd.log");
  ASSERT_TRUE(dtxd.Start().ok()) << dtxd.LogTail();
  dtxd.process()->Signal(SIGTERM);
  auto code = dtxd.process()->Wait(10'000);
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 0) << dtxd.LogTail();
}

}  // namespace
}  // namespace dtx::itest
