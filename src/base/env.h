// Env: the file system, injected. Code that persists anything takes an Env* so that the same
// code runs on the real disk (Env::Posix()) and on MemEnv, an in-memory file system that can
// lose unsynced data and tear the last write at a simulated crash.
//
// Every call returns a Status or Result<T>; errors name the path and, for POSIX, the errno
// text. Error codes:
//   kNotFound            the file or a parent directory does not exist.
//   kFailedPrecondition  the call is not valid in the current state: a lock already held, a
//                        handle used after Close or after a simulated crash, a directory where a
//                        file was expected, permission denied.
//   kResourceExhausted   out of disk space, quota or file descriptors.
//   kUnavailable         injected fault (MemEnv::SetWriteError / SetSyncError).
//   kInvalidArgument     a malformed path (empty, or ".." above the root in MemEnv).
//   kInternal            any other environment error (EIO included: a failed fsync is not
//                        safely retryable).
//
// Thread-safety: Env implementations are thread-safe. A WritableFile is used by one thread at a
// time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/rand.h"
#include "base/status.h"

namespace dtx {

// A file open for sequential writing. Data given to Append is visible to readers at once but
// durable only after Sync returns OK. Destroying an open file closes it (errors are ignored;
// call Close to see them).
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends data at the end of the file. After Close: kFailedPrecondition.
  virtual Status Append(std::string_view data) = 0;
  // Makes everything appended so far durable. After Close: kFailedPrecondition.
  virtual Status Sync() = 0;
  // Releases the handle. Closing an already closed file returns OK.
  virtual Status Close() = 0;
};

// An exclusive advisory lock on a file, held until this object is destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX environment. Never null; never destroyed.
  static Env* Posix();

  // Creates the file, or truncates it if it exists, and opens it for writing.
  // REQUIRES: the parent directory exists (else kNotFound).
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens the file for appending at its end, creating it empty if it does not exist.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;

  // The whole content of a file.
  virtual Result<std::string> ReadFile(const std::string& path) = 0;

  // Replaces the content of path with data so that a crash leaves either the old or the new
  // content, never a mix: writes "<path>.tmp", syncs it, renames it over path, syncs the
  // parent directory. Concurrent WriteFileAtomic calls on the same path are not supported.
  Status WriteFileAtomic(const std::string& path, std::string_view data);

  // Renames a file, atomically replacing `to` if it exists. Durable after SyncDir of both
  // parent directories.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Removes a file (not a directory). Durable after SyncDir of its parent.
  virtual Status RemoveFile(const std::string& path) = 0;
  // Creates a directory and any missing parents ("mkdir -p"); OK if it already exists. New
  // directories are durable when this returns (their parents are synced).
  virtual Status CreateDirs(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, files and directories, sorted; no "." or
  // "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // True if path names an existing file or directory.
  virtual bool FileExists(const std::string& path) = 0;
  // Size in bytes of a file (kFailedPrecondition for a directory).
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Makes the creations, renames and removals of entries in directory `path` durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Takes an exclusive lock on path, creating the file if needed. A second lock of the same
  // file fails with kFailedPrecondition, also from the same process, until the first
  // FileLock is destroyed.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
};

// An in-memory file system for tests and the simulator. Deterministic: the same calls and the
// same Rand seed give the same results.
//
// Paths are normalised ("//" and "." collapse, ".." goes up); a relative path is taken
// relative to "/". "/" always exists.
//
// Crash model (SimulateCrash):
//   - File data: Sync makes a file's current content durable. Appends after the last Sync
//     are unsynced. Writes reach the disk in order; the crash interrupts one of them.
//   - Directory entries: creating, renaming (both names) and removing a file change the
//     entries of its directory; they become durable only at SyncDir of that directory, which
//     makes all current entries of that directory durable at once. A file created since the
//     last SyncDir of its directory disappears at a crash; a removed one comes back.
//   - NewWritableFile on an existing file truncates it in place, and the truncation is
//     durable at once: the worst case for code that rewrites a file in place (use
//     WriteFileAtomic instead).
//   - Directories themselves are durable as soon as CreateDirs returns, and are never removed.
//   - Locks are released; handles (WritableFile) from before the crash fail with
//     kFailedPrecondition, and destroying an old FileLock does not release a newer lock.
//   - Injected faults (SetWriteError / SetSyncError) stay as they are.
//
// Thread-safety: all methods, including those of returned handles, are thread-safe. Handles
// stay valid (and fail cleanly) even after the MemEnv is destroyed.
class MemEnv final : public Env {
 public:
  struct CrashOptions {
    // Lose unsynced data and undo directory changes not made durable by SyncDir. If false,
    // everything written reaches the disk (subject to tear_last_write).
    bool drop_unsynced = true;
    // Keep a random strict prefix (possibly empty) of the write interrupted by the crash, so
    // a record can be half-written. With drop_unsynced that is the first Append since the
    // last Sync (later ones are lost); without it, the last Append. When a file is synced
    // after each Append, both are the same Append.
    bool tear_last_write = true;
  };

  MemEnv();
  ~MemEnv() override;
  MemEnv(const MemEnv&) = delete;
  MemEnv& operator=(const MemEnv&) = delete;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::string> ReadFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RemoveFile(const std::string& path) override;
  Status CreateDirs(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

  // Puts the file system in the state a machine crash at this instant may leave on disk (see
  // the crash model above). Random choices come from rand, files are visited in path order.
  void SimulateCrash(Rand& rand, CrashOptions opts);
  void SimulateCrash(Rand& rand) { SimulateCrash(rand, CrashOptions{}); }

  // While on, Append fails with kUnavailable and changes nothing.
  void SetWriteError(bool on);
  // While on, Sync fails with kUnavailable and makes nothing durable.
  void SetSyncError(bool on);

  struct State;  // Implementation detail, shared with open handles; see mem_env.cc.

 private:
  std::shared_ptr<State> state_;
};

}  // namespace dtx
