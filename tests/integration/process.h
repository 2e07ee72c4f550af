// Child processes and scratch resources for the real-process integration tests.
//
// Thread-safety: a Subprocess and a TempDir are used from one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace dtx::itest {

// A child started with fork/exec. stderr (and stdout, unless piped) is appended to a log file.
// The destructor kills (SIGKILL) and reaps a child that is still running.
class Subprocess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the executable's path
    std::string log_path;           // created or appended to
    // Keep stdout on a pipe readable with ReadLine() instead of sending it to the log.
    bool pipe_stdout = false;
  };

  // Errors: fork, exec or pipe failure, unwritable log (kInternal / kUnavailable). An exec
  // failure is detected before Start returns (through a close-on-exec pipe).
  static Result<std::unique_ptr<Subprocess>> Start(Options options);

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Reads one line from the piped stdout, without the newline. kDeadlineExceeded after
  // timeout_ms without a full line, kUnavailable at EOF. REQUIRES: Options::pipe_stdout.
  Result<std::string> ReadLine(int64_t timeout_ms);

  // Sends a signal to a running child (ignored once it was reaped).
  void Signal(int sig);

  // Waits until the child exits (poll on a pidfd, no sleeping), at most timeout_ms. Returns the
  // exit code, or 128+signal for a child killed by a signal; kDeadlineExceeded if it is still
  // running. Once it has returned a code it keeps returning it.
  Result<int> Wait(int64_t timeout_ms);

  // The exit code if the child has exited, without blocking.
  std::optional<int> TryWait();

  // SIGKILL and reap. Idempotent.
  void Kill();

 private:
  Subprocess() = default;
  std::optional<int> Reap(bool block);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdout_fd_ = -1;
  std::string stdout_buffer_;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor.
// Throws std::runtime_error if none can be created: the environment cannot run any test.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago: bound with port 0, read back and
// released. Another process may take it before it is used, so callers report a bind failure
// clearly rather than retrying silently.
Result<uint16_t> PickFreePort();

// The whole content of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace dtx::itest
