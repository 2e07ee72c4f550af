#include "process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>

namespace dtx::itest {
namespace {

using Steady = std::chrono::steady_clock;

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

int64_t RemainingMs(Steady::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
  return std::max<int64_t>(0, left.count());
}

}  // namespace

Result<std::unique_ptr<Subprocess>> Subprocess::Start(Options options) {
  if (options.argv.empty()) return InvalidArgument("Subprocess needs argv[0]");
  int log_fd = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Unavailable(Errno(("open " + options.log_path).c_str()));
  int out_pipe[2] = {-1, -1};
  if (options.pipe_stdout && ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    return Internal(Errno("pipe2"));
  }
  // The child reports an exec failure on this pipe; a successful exec closes it (CLOEXEC).
  auto close_all = [&](std::initializer_list<int> fds) {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  };
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    Status s = Internal(Errno("pipe2"));
    close_all({log_fd, out_pipe[0], out_pipe[1]});
    return s;
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    Status s = Internal(Errno("fork"));
    close_all({log_fd, out_pipe[0], out_pipe[1], exec_pipe[0], exec_pipe[1]});
    return s;
  }
  if (pid == 0) {
    ::dup2(log_fd, STDERR_FILENO);
    ::dup2(options.pipe_stdout ? out_pipe[1] : log_fd, STDOUT_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    int err = errno;
    (void)!::write(exec_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(exec_pipe[1]);
  if (options.pipe_stdout) ::close(out_pipe[1]);

  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->pid_ = pid;
  p->log_path_ = options.log_path;
  p->stdout_fd_ = options.pipe_stdout ? out_pipe[0] : -1;
  p->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));

  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    p->Reap(true);
    return Unavailable("exec " + options.argv[0] + ": " + std::strerror(child_errno));
  }
  if (p->pidfd_ < 0) return Internal(Errno("pidfd_open"));
  return p;
}

Subprocess::~Subprocess() {
  Kill();
  if (pidfd_ >= 0) ::close(pidfd_);
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

Result<std::string> Subprocess::ReadLine(int64_t timeout_ms) {
  if (stdout_fd_ < 0) return FailedPrecondition("stdout is not piped");
  const auto deadline = Steady::now() + std::chrono::milliseconds(timeout_ms);
  // Bounded: each round either consumes bytes, hits EOF, or waits out the deadline.
  for (;;) {
    if (size_t nl = stdout_buffer_.find('\n'); nl != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, nl);
      stdout_buffer_.erase(0, nl + 1);
      return line;
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(RemainingMs(deadline)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Internal(Errno("poll"));
    if (r == 0)
      return DeadlineExceeded("no line on stdout within " + std::to_string(timeout_ms) + " ms");
    char buf[4096];
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable("stdout closed before a full line");
    stdout_buffer_.append(buf, static_cast<size_t>(n));
  }
}

void Subprocess::Signal(int sig) {
  if (!exit_code_ && pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> Subprocess::Reap(bool block) {
  if (exit_code_) return exit_code_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return std::nullopt;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

Result<int> Subprocess::Wait(int64_t timeout_ms) {
  if (auto code = Reap(false)) return *code;
  pollfd pfd{pidfd_, POLLIN, 0};
  const auto deadline = Steady::now() + std::chrono::milliseconds(timeout_ms);
  int r;
  do {
    r = ::poll(&pfd, 1, static_cast<int>(RemainingMs(deadline)));
  } while (r < 0 && errno == EINTR);
  if (r > 0) {
    if (auto code = Reap(true)) return *code;
  }
  return DeadlineExceeded("process " + std::to_string(pid_) + " still running after " +
                          std::to_string(timeout_ms) + " ms");
}

std::optional<int> Subprocess::TryWait() { return Reap(false); }

void Subprocess::Kill() {
  if (exit_code_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  Reap(true);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dtx-itest-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error(Errno("mkdtemp"));
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<uint16_t> PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(Errno("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Status s = Internal(Errno("bind 127.0.0.1:0"));
    ::close(fd);
    return s;
  }
  ::close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace dtx::itest
