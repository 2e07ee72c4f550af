#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>

#include "base/env.h"

namespace dtx {
namespace {

struct Node {
  std::string data;
  size_t synced_len = 0;
  // Meaningful only while data.size() > synced_len.
  size_t first_unsynced_end = 0;  // End of the first Append since the last Sync.
  size_t last_append_start = 0;   // Start of the most recent Append.
};

using NodePtr = std::shared_ptr<Node>;
using FileMap = std::map<std::string, NodePtr>;

// "/a/b" from "a//./b/", "/a/c/../b", ...
Result<std::string> Normalize(std::string_view path) {
  if (path.empty()) return InvalidArgument("empty path");
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return InvalidArgument("path " + std::string(path) + " leaves the root");
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (std::string_view part : parts) {
    out += '/';
    out += part;
  }
  if (out.empty()) out = "/";
  return out;
}

// REQUIRES: path is normalised.
std::string Parent(const std::string& path) {
  size_t pos = path.find_last_of('/');
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

// Prefix shared by every path inside normalised directory dir.
std::string ChildPrefix(const std::string& dir) { return dir == "/" ? dir : dir + "/"; }

bool IsDirectChild(const std::string& path, const std::string& prefix) {
  return path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
         path.find('/', prefix.size()) == std::string::npos;
}

Status StaleHandle(const std::string& path) {
  return FailedPrecondition("file " + path + ": handle opened before a simulated crash");
}

}  // namespace

struct MemEnv::State {
  std::mutex mu;
  std::set<std::string> dirs{"/"};
  FileMap files;       // What a reader sees now.
  FileMap durable;     // Directory entries as of each directory's last SyncDir.
  uint64_t epoch = 0;  // Incremented at each crash; handles remember the epoch they were opened in.
  std::map<std::string, uint64_t> locks;  // Path -> id of the FileLock holding it.
  uint64_t next_lock_id = 1;
  bool write_error = false;
  bool sync_error = false;

  // REQUIRES: mu held. The parent of normalised path p must be a directory and p not one.
  Status CheckFilePath(const std::string& op, const std::string& p) {
    if (dirs.count(p)) return FailedPrecondition(op + " " + p + ": is a directory");
    std::string parent = Parent(p);
    if (!dirs.count(parent)) {
      if (files.count(parent)) {
        return NotFound(op + " " + p + ": parent " + parent + " is not a directory");
      }
      return NotFound(op + " " + p + ": parent directory " + parent + " does not exist");
    }
    return Status::Ok();
  }

  // REQUIRES: mu held. The node of an existing file, or an error naming op and p.
  Result<NodePtr> FindFile(const std::string& op, const std::string& p) {
    auto it = files.find(p);
    if (it != files.end()) return it->second;
    if (dirs.count(p)) return FailedPrecondition(op + " " + p + ": is a directory");
    return NotFound(op + " " + p + ": no such file");
  }
};

namespace {

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(std::shared_ptr<MemEnv::State> state, NodePtr node, std::string path,
                  uint64_t epoch)
      : state_(std::move(state)), node_(std::move(node)), path_(std::move(path)), epoch_(epoch) {}

  Status Append(std::string_view data) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    DTX_RETURN_IF_ERROR(CheckUsable());
    if (state_->write_error) return Unavailable("append " + path_ + ": injected write error");
    if (data.empty()) return Status::Ok();
    Node& n = *node_;
    if (n.data.size() == n.synced_len) n.first_unsynced_end = n.data.size() + data.size();
    n.last_append_start = n.data.size();
    n.data.append(data);
    return Status::Ok();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    DTX_RETURN_IF_ERROR(CheckUsable());
    if (state_->sync_error) return Unavailable("sync " + path_ + ": injected sync error");
    node_->synced_len = node_->data.size();
    return Status::Ok();
  }

  Status Close() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (closed_) return Status::Ok();
    closed_ = true;
    if (epoch_ != state_->epoch) return StaleHandle(path_);
    return Status::Ok();
  }

 private:
  // REQUIRES: state_->mu held.
  Status CheckUsable() const {
    if (closed_) return FailedPrecondition("file " + path_ + " is closed");
    if (epoch_ != state_->epoch) return StaleHandle(path_);
    return Status::Ok();
  }

  std::shared_ptr<MemEnv::State> state_;
  NodePtr node_;
  std::string path_;
  uint64_t epoch_;
  bool closed_ = false;
};

class MemFileLock final : public FileLock {
 public:
  MemFileLock(std::shared_ptr<MemEnv::State> state, std::string path, uint64_t id)
      : state_(std::move(state)), path_(std::move(path)), id_(id) {}
  ~MemFileLock() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->locks.find(path_);
    // After a crash the path may be locked again by a newer FileLock; leave that one alone.
    if (it != state_->locks.end() && it->second == id_) state_->locks.erase(it);
  }

 private:
  std::shared_ptr<MemEnv::State> state_;
  std::string path_;
  uint64_t id_;
};

}  // namespace

MemEnv::MemEnv() : state_(std::make_shared<State>()) {}
MemEnv::~MemEnv() = default;

Result<std::unique_ptr<WritableFile>> MemEnv::NewWritableFile(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  DTX_RETURN_IF_ERROR(state_->CheckFilePath("open", *p));
  NodePtr& slot = state_->files[*p];
  if (slot) {
    *slot = Node{};
  } else {
    slot = std::make_shared<Node>();
  }
  return std::unique_ptr<WritableFile>(
      std::make_unique<MemWritableFile>(state_, slot, *p, state_->epoch));
}

Result<std::unique_ptr<WritableFile>> MemEnv::NewAppendableFile(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  DTX_RETURN_IF_ERROR(state_->CheckFilePath("open", *p));
  NodePtr& slot = state_->files[*p];
  if (!slot) slot = std::make_shared<Node>();
  return std::unique_ptr<WritableFile>(
      std::make_unique<MemWritableFile>(state_, slot, *p, state_->epoch));
}

Result<std::string> MemEnv::ReadFile(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  auto node = state_->FindFile("read", *p);
  if (!node.ok()) return node.status();
  return (*node)->data;
}

Status MemEnv::RenameFile(const std::string& from, const std::string& to) {
  auto f = Normalize(from);
  if (!f.ok()) return f.status();
  auto t = Normalize(to);
  if (!t.ok()) return t.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  auto node = state_->FindFile("rename", *f);
  if (!node.ok()) return node.status();
  DTX_RETURN_IF_ERROR(state_->CheckFilePath("rename " + *f + " to", *t));
  if (*f == *t) return Status::Ok();
  state_->files[*t] = *node;
  state_->files.erase(*f);
  return Status::Ok();
}

Status MemEnv::RemoveFile(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  auto node = state_->FindFile("remove", *p);
  if (!node.ok()) return node.status();
  state_->files.erase(*p);
  return Status::Ok();
}

Status MemEnv::CreateDirs(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  // Check every prefix before creating any, so a failure changes nothing.
  std::vector<std::string> prefixes;
  for (size_t pos = 1; pos <= p->size(); ++pos) {
    if (pos == p->size() || (*p)[pos] == '/') prefixes.push_back(p->substr(0, pos));
  }
  for (const std::string& prefix : prefixes) {
    if (state_->files.count(prefix)) {
      return FailedPrecondition("create directory " + *p + ": " + prefix +
                                " exists and is not a directory");
    }
  }
  state_->dirs.insert(prefixes.begin(), prefixes.end());
  return Status::Ok();
}

Result<std::vector<std::string>> MemEnv::ListDir(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!state_->dirs.count(*p)) {
    if (state_->files.count(*p)) return FailedPrecondition("list " + *p + ": not a directory");
    return NotFound("list " + *p + ": no such directory");
  }
  const std::string prefix = ChildPrefix(*p);
  std::vector<std::string> names;
  for (auto it = state_->files.lower_bound(prefix);
       it != state_->files.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (IsDirectChild(it->first, prefix)) names.push_back(it->first.substr(prefix.size()));
  }
  for (auto it = state_->dirs.lower_bound(prefix);
       it != state_->dirs.end() && it->compare(0, prefix.size(), prefix) == 0; ++it) {
    if (IsDirectChild(*it, prefix)) names.push_back(it->substr(prefix.size()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool MemEnv::FileExists(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return false;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->files.count(*p) > 0 || state_->dirs.count(*p) > 0;
}

Result<uint64_t> MemEnv::FileSize(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  auto node = state_->FindFile("file size", *p);
  if (!node.ok()) return node.status();
  return static_cast<uint64_t>((*node)->data.size());
}

Status MemEnv::SyncDir(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!state_->dirs.count(*p)) {
    if (state_->files.count(*p)) {
      return FailedPrecondition("sync directory " + *p + ": not a directory");
    }
    return NotFound("sync directory " + *p + ": no such directory");
  }
  const std::string prefix = ChildPrefix(*p);
  auto in_dir = [&](const std::string& name) { return IsDirectChild(name, prefix); };
  FileMap& durable = state_->durable;
  for (auto it = durable.lower_bound(prefix);
       it != durable.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    it = in_dir(it->first) ? durable.erase(it) : std::next(it);
  }
  for (auto it = state_->files.lower_bound(prefix);
       it != state_->files.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (in_dir(it->first)) durable[it->first] = it->second;
  }
  return Status::Ok();
}

Result<std::unique_ptr<FileLock>> MemEnv::LockFile(const std::string& path) {
  auto p = Normalize(path);
  if (!p.ok()) return p.status();
  std::lock_guard<std::mutex> lock(state_->mu);
  DTX_RETURN_IF_ERROR(state_->CheckFilePath("lock", *p));
  if (state_->locks.count(*p)) return FailedPrecondition("lock " + *p + ": already held");
  NodePtr& slot = state_->files[*p];
  if (!slot) slot = std::make_shared<Node>();
  const uint64_t id = state_->next_lock_id++;
  state_->locks[*p] = id;
  return std::unique_ptr<FileLock>(std::make_unique<MemFileLock>(state_, *p, id));
}

void MemEnv::SimulateCrash(Rand& rand, CrashOptions opts) {
  std::lock_guard<std::mutex> lock(state_->mu);
  ++state_->epoch;
  state_->locks.clear();
  if (opts.drop_unsynced) {
    state_->files = state_->durable;
  } else {
    state_->durable = state_->files;
  }
  std::unordered_set<const Node*> seen;
  for (auto& [path, node] : state_->files) {
    if (!seen.insert(node.get()).second) continue;
    Node& n = *node;
    const size_t size = n.data.size();
    if (size == n.synced_len) continue;
    size_t keep = size;
    if (opts.drop_unsynced) {
      keep = n.synced_len;
      if (opts.tear_last_write) keep += rand.Uniform(n.first_unsynced_end - n.synced_len);
    } else if (opts.tear_last_write) {
      keep = n.last_append_start + rand.Uniform(size - n.last_append_start);
    }
    n.data.resize(keep);
    n.synced_len = keep;
  }
}

void MemEnv::SetWriteError(bool on) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->write_error = on;
}

void MemEnv::SetSyncError(bool on) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->sync_error = on;
}

}  // namespace dtx
