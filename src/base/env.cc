#include "base/env.h"

#include <filesystem>

namespace dtx {

Status Env::WriteFileAtomic(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  Status st = [&]() -> Status {
    auto file = NewWritableFile(tmp);
    if (!file.ok()) return file.status();
    DTX_RETURN_IF_ERROR((*file)->Append(data));
    DTX_RETURN_IF_ERROR((*file)->Sync());
    DTX_RETURN_IF_ERROR((*file)->Close());
    return RenameFile(tmp, path);
  }();
  if (!st.ok()) {
    // Best effort: a leftover temp file is harmless (the next call truncates it).
    (void)RemoveFile(tmp);
    return st;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return SyncDir(parent.empty() ? std::filesystem::path(".") : parent);
}

}  // namespace dtx
