#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/env.h"

namespace dtx {
namespace {

Status ErrnoStatus(std::string_view op, const std::string& path, int err) {
  std::string msg(op);
  msg += " ";
  msg += path;
  msg += ": ";
  msg += std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return NotFound(std::move(msg));
    case EEXIST:
      return AlreadyExists(std::move(msg));
    case EACCES:
    case EPERM:
    case EROFS:
    case EISDIR:
    case ENOTEMPTY:
    case EBADF:
      return FailedPrecondition(std::move(msg));
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return ResourceExhausted(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

// Runs a system call until it does not fail with EINTR, at most kMaxEintr times.
constexpr int kMaxEintr = 1000;
template <typename F>
auto RetryEintr(F f) {
  auto rc = f();
  for (int i = 0; i < kMaxEintr && rc < 0 && errno == EINTR; ++i) rc = f();
  return rc;
}

Status ClosedError(const std::string& path) {
  return FailedPrecondition("file " + path + " is closed");
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view data) override {
    if (fd_ < 0) return ClosedError(path_);
    const char* p = data.data();
    size_t left = data.size();
    // Each successful write makes progress, so this ends.
    while (left > 0) {
      ssize_t n = RetryEintr([&] { return ::write(fd_, p, left); });
      if (n < 0) return ErrnoStatus("write", path_, errno);
      p += n;
      left -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status Sync() override {
    if (fd_ < 0) return ClosedError(path_);
    // fdatasync also flushes the file size, which is all the metadata a reader needs.
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fdatasync", path_, errno);
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    int fd = fd_;
    fd_ = -1;
    // No retry on EINTR: on Linux the descriptor is released anyway.
    if (::close(fd) != 0) return ErrnoStatus("close", path_, errno);
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  // Closing the descriptor releases the flock.
  ~PosixFileLock() override { ::close(fd_); }

 private:
  int fd_;
};

Result<int> OpenFd(const std::string& path, int flags, std::string_view op) {
  int fd = RetryEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC, 0644); });
  if (fd < 0) return ErrnoStatus(op, path, errno);
  return fd;
}

std::string ParentDir(const std::string& path) {
  size_t pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return OpenWritable(path, O_WRONLY | O_CREAT | O_TRUNC);
  }

  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return OpenWritable(path, O_WRONLY | O_CREAT | O_APPEND);
  }

  Result<std::string> ReadFile(const std::string& path) override {
    auto fd = OpenFd(path, O_RDONLY, "open");
    if (!fd.ok()) return fd.status();
    std::string out;
    char buf[64 * 1024];
    Status st;
    // Ends at EOF or an error; every other iteration consumes bytes of a finite file.
    while (true) {
      ssize_t n = RetryEintr([&] { return ::read(*fd, buf, sizeof(buf)); });
      if (n < 0) {
        st = ErrnoStatus("read", path, errno);
        break;
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(*fd);
    if (!st.ok()) return st;
    return out;
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename", from + " -> " + to, errno);
    }
    return Status::Ok();
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return Status::Ok();
  }

  Status CreateDirs(const std::string& path) override {
    if (path.empty()) return InvalidArgument("create directory: empty path");
    // Walk the prefixes ending before each '/' and the full path; at most path.size() steps.
    for (size_t pos = 1; pos <= path.size(); ++pos) {
      if (pos != path.size() && path[pos] != '/') continue;
      std::string prefix = path.substr(0, pos);
      if (prefix.back() == '/') continue;
      if (::mkdir(prefix.c_str(), 0755) == 0) {
        DTX_RETURN_IF_ERROR(SyncDir(ParentDir(prefix)));
        continue;
      }
      if (errno != EEXIST) return ErrnoStatus("mkdir", prefix, errno);
      struct stat sb;
      if (::stat(prefix.c_str(), &sb) != 0) return ErrnoStatus("stat", prefix, errno);
      if (!S_ISDIR(sb.st_mode)) {
        return FailedPrecondition("mkdir " + prefix + ": exists and is not a directory");
      }
    }
    return Status::Ok();
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return ErrnoStatus("opendir", path, errno);
    std::vector<std::string> names;
    // readdir returns null at the end of a finite directory listing.
    while (true) {
      errno = 0;
      struct dirent* e = ::readdir(dir);
      if (e == nullptr) break;
      std::string_view name(e->d_name);
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0) return ErrnoStatus("readdir", path, err);
    std::sort(names.begin(), names.end());
    return names;
  }

  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat sb;
    if (::stat(path.c_str(), &sb) != 0) return ErrnoStatus("stat", path, errno);
    if (S_ISDIR(sb.st_mode)) return FailedPrecondition("file size " + path + ": is a directory");
    return static_cast<uint64_t>(sb.st_size);
  }

  Status SyncDir(const std::string& path) override {
    auto fd = OpenFd(path, O_RDONLY | O_DIRECTORY, "open directory");
    if (!fd.ok()) return fd.status();
    Status st;
    if (::fsync(*fd) != 0) st = ErrnoStatus("fsync directory", path, errno);
    ::close(*fd);
    return st;
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    auto fd = OpenFd(path, O_RDWR | O_CREAT, "open lock file");
    if (!fd.ok()) return fd.status();
    // flock (unlike fcntl locks) belongs to the open file description, so a second open of
    // the same file in this process conflicts too.
    int rc = RetryEintr([&] { return ::flock(*fd, LOCK_EX | LOCK_NB); });
    if (rc != 0) {
      int err = errno;
      ::close(*fd);
      if (err == EWOULDBLOCK) {
        return FailedPrecondition("lock " + path + ": already held (by this or another process)");
      }
      return ErrnoStatus("lock", path, err);
    }
    return std::unique_ptr<FileLock>(std::make_unique<PosixFileLock>(*fd));
  }

 private:
  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, int flags) {
    auto fd = OpenFd(path, flags, "open");
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<WritableFile>(std::make_unique<PosixWritableFile>(path, *fd));
  }
};

}  // namespace

Env* Env::Posix() {
  static PosixEnv* env = new PosixEnv();  // Never destroyed: usable during static teardown.
  return env;
}

}  // namespace dtx
