#include "wal/wal.h"

#include <array>
#include <cstdio>
#include <utility>

namespace dtx::wal {
namespace {

constexpr size_t kHeaderBytes = 17;  // crc 4 + length 4 + type 1 + index 8
constexpr uint8_t kTypeEntry = 1;
constexpr uint64_t kMaxRecordLimit = 1ull << 30;
constexpr std::string_view kSegmentSuffix = ".wal";
constexpr std::string_view kMetaSuffix = ".meta";

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

// Masked like leveldb, so that a checksum stored inside checksummed data does not weaken it.
uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

void PutU32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void EncodeRecord(std::string& out, uint64_t index, std::string_view payload) {
  size_t start = out.size();
  PutU32(out, 0);
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out.push_back(static_cast<char>(kTypeEntry));
  PutU64(out, index);
  out.append(payload);
  uint32_t crc = Mask(Crc32c(std::string_view(out).substr(start + 4)));
  for (int i = 0; i < 4; ++i) out[start + i] = static_cast<char>(crc >> (8 * i));
}

// Decodes the record at off. Returns its total size, or 0 with *why set.
size_t DecodeAt(std::string_view data, size_t off, uint64_t max_payload, uint64_t* index,
                std::string* why) {
  size_t rest = data.size() - off;
  if (rest < kHeaderBytes) {
    *why = "partial record header";
    return 0;
  }
  const char* p = data.data() + off;
  uint64_t len = GetU32(p + 4);
  if (len > max_payload) {
    *why = "record length " + std::to_string(len) + " above the limit";
    return 0;
  }
  if (kHeaderBytes + len > rest) {
    *why = "partial record";
    return 0;
  }
  if (Mask(Crc32c(std::string_view(p + 4, kHeaderBytes - 4 + len))) != GetU32(p)) {
    *why = "checksum mismatch";
    return 0;
  }
  if (static_cast<uint8_t>(p[8]) != kTypeEntry) {
    *why = "unknown record type " + std::to_string(static_cast<uint8_t>(p[8]));
    return 0;
  }
  *index = GetU64(p + 9);
  return kHeaderBytes + len;
}

// The offset of a well-formed record after start whose index is at least `expect` and could
// still fit, or npos. Index and type are checked before the checksum so the scan stays linear.
size_t FindValidAfter(std::string_view data, size_t start, uint64_t expect, uint64_t max_payload) {
  if (data.size() < kHeaderBytes) return std::string_view::npos;
  uint64_t max_index = expect + data.size() / kHeaderBytes + 1;
  for (size_t o = start; o + kHeaderBytes <= data.size(); ++o) {
    if (static_cast<uint8_t>(data[o + 8]) != kTypeEntry) continue;
    uint64_t idx = GetU64(data.data() + o + 9);
    if (idx < expect || idx > max_index) continue;
    uint64_t got = 0;
    std::string why;
    if (DecodeAt(data, o, max_payload, &got, &why) != 0) return o;
  }
  return std::string_view::npos;
}

struct ParseResult {
  uint64_t count = 0;
  size_t valid_bytes = 0;
};

// Parses a segment whose first record must have index `first`. With tolerate_tail, damage
// with no valid record after it ends the segment (valid_bytes < data.size()); all other damage
// is kDataLoss. Records with index >= from go to out if out is not null.
Status ParseSegment(const std::string& path, std::string_view data, uint64_t first,
                    uint64_t max_payload, bool tolerate_tail, uint64_t from,
                    std::vector<Record>* out, ParseResult* res) {
  size_t off = 0;
  uint64_t expect = first;
  while (off < data.size()) {
    uint64_t index = 0;
    std::string why;
    size_t n = DecodeAt(data, off, max_payload, &index, &why);
    if (n != 0 && index != expect) {
      return DataLoss(path + " at offset " + std::to_string(off) + ": record index " +
                      std::to_string(index) + ", expected " + std::to_string(expect));
    }
    if (n == 0) {
      if (!tolerate_tail) {
        return DataLoss(path + " at offset " + std::to_string(off) + ": " + why);
      }
      size_t next = FindValidAfter(data, off + 1, expect, max_payload);
      if (next != std::string_view::npos) {
        return DataLoss(path + " at offset " + std::to_string(off) + ": " + why +
                        ", followed by a valid record at offset " + std::to_string(next));
      }
      break;
    }
    if (out != nullptr && index >= from) {
      out->push_back(Record{index, std::string(data.substr(off + kHeaderBytes, n - kHeaderBytes))});
    }
    off += n;
    ++expect;
    ++res->count;
  }
  res->valid_bytes = off;
  return Status::Ok();
}

bool ParseSegmentName(const std::string& name, uint64_t* first) {
  if (name.size() != 16 + kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 16; ++i) {
    char c = name[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *first = v;
  return true;
}

bool ValidMetaName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

uint32_t Crc32c(std::string_view data, uint32_t crc) {
  crc = ~crc;
  for (unsigned char c : data) crc = kCrcTable[(crc ^ c) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Wal::Wal(Env* env, std::string dir, WalOptions options)
    : env_(env), dir_(std::move(dir)), options_(options) {}

Wal::~Wal() {
  if (file_) (void)file_->Close();
}

std::string Wal::SegmentPath(uint64_t first) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%016llx", static_cast<unsigned long long>(first));
  return dir_ + "/" + name + std::string(kSegmentSuffix);
}

Result<std::unique_ptr<Wal>> Wal::Open(Env* env, const std::string& dir, WalOptions options) {
  if (env == nullptr) return InvalidArgument("wal: null env");
  if (dir.empty()) return InvalidArgument("wal: empty directory");
  if (options.segment_bytes == 0) return InvalidArgument("wal: segment_bytes must be > 0");
  if (options.max_record_bytes == 0 || options.max_record_bytes > kMaxRecordLimit) {
    return InvalidArgument("wal: max_record_bytes must be in (0, 1 GiB]");
  }
  if (options.initial_index == 0) return InvalidArgument("wal: initial_index must be > 0");
  std::unique_ptr<Wal> wal(new Wal(env, dir, options));
  DTX_RETURN_IF_ERROR(env->CreateDirs(dir));
  auto lock = env->LockFile(dir + "/LOCK");
  if (!lock.ok()) return lock.status();
  wal->dir_lock_ = std::move(*lock);
  DTX_RETURN_IF_ERROR(wal->Recover());
  return wal;
}

Status Wal::Recover() {
  auto names = env_->ListDir(dir_);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> firsts;
  for (const std::string& name : *names) {
    uint64_t first = 0;
    if (ParseSegmentName(name, &first)) firsts.push_back(first);
  }
  for (size_t i = 0; i < firsts.size(); ++i) {
    const uint64_t first = firsts[i];
    const std::string path = SegmentPath(first);
    if (first == 0) return DataLoss(path + ": segment named with index 0");
    if (!segments_.empty()) {
      const Segment& prev = segments_.back();
      if (prev.count == 0) {
        return DataLoss(SegmentPath(prev.first) + ": empty segment is not the last one");
      }
      if (first != prev.first + prev.count) {
        return DataLoss(path + ": starts at index " + std::to_string(first) + " but " +
                        SegmentPath(prev.first) + " ends at " +
                        std::to_string(prev.first + prev.count - 1));
      }
    }
    auto data = env_->ReadFile(path);
    if (!data.ok()) return data.status();
    const bool is_last = i + 1 == firsts.size();
    ParseResult res;
    DTX_RETURN_IF_ERROR(
        ParseSegment(path, *data, first, options_.max_record_bytes, is_last, 0, nullptr, &res));
    if (res.valid_bytes < data->size()) {
      // A torn tail: rewrite without it so that later appends follow valid records.
      DTX_RETURN_IF_ERROR(
          env_->WriteFileAtomic(path, std::string_view(*data).substr(0, res.valid_bytes)));
    }
    segments_.push_back(Segment{first, res.count, res.valid_bytes});
  }
  segment_count_ = segments_.size();
  if (segments_.empty()) {
    empty_next_ = options_.initial_index;
    return Status::Ok();
  }
  const Segment& last = segments_.back();
  if (last.count == 0 && segments_.size() == 1) {
    empty_next_ = last.first;
  } else {
    first_index_ = segments_.front().first;
    last_index_ = last.first + last.count - 1;
  }
  auto f = env_->NewAppendableFile(SegmentPath(last.first));
  if (!f.ok()) return f.status();
  file_ = std::move(*f);
  return Status::Ok();
}

Status Wal::CheckUsable() const { return poison_; }

Status Wal::Poison(Status st) {
  if (poison_.ok()) {
    poison_ = FailedPrecondition("wal " + dir_ + " is unusable after an earlier failure (" +
                                 st.ToString() + "); reopen it");
  }
  return st;
}

Status Wal::AppendLocked(std::span<const RecordView> records) {
  DTX_RETURN_IF_ERROR(CheckUsable());
  uint64_t expect = last_index_ == 0 ? 0 : last_index_ + 1;
  for (const RecordView& r : records) {
    if (r.index == 0) return InvalidArgument("wal: record index 0");
    if (expect != 0 && r.index != expect) {
      return InvalidArgument("wal: record index " + std::to_string(r.index) + ", expected " +
                             std::to_string(expect));
    }
    if (r.payload.size() > options_.max_record_bytes) {
      return InvalidArgument("wal: payload of " + std::to_string(r.payload.size()) +
                             " bytes above max_record_bytes");
    }
    expect = r.index + 1;
  }
  if (records.empty()) return Status::Ok();
  for (const RecordView& r : records) {
    EncodeRecord(pending_.bytes, r.index, r.payload);
    pending_.records.emplace_back(r.index, pending_.bytes.size());
  }
  if (last_index_ == 0) first_index_ = records.front().index;
  last_index_ = records.back().index;
  ++append_seq_;
  return Status::Ok();
}

Status Wal::Append(std::span<const RecordView> records) {
  std::lock_guard<std::mutex> l(mu_);
  return AppendLocked(records);
}

Result<uint64_t> Wal::AppendNext(std::string_view payload) {
  std::lock_guard<std::mutex> l(mu_);
  RecordView r{last_index_ != 0 ? last_index_ + 1 : empty_next_, payload};
  DTX_RETURN_IF_ERROR(AppendLocked(std::span<const RecordView>(&r, 1)));
  return r.index;
}

Status Wal::Sync() {
  std::unique_lock<std::mutex> l(mu_);
  return SyncTo(l, append_seq_);
}

Status Wal::AppendAndSync(std::span<const RecordView> records) {
  std::unique_lock<std::mutex> l(mu_);
  DTX_RETURN_IF_ERROR(AppendLocked(records));
  return SyncTo(l, append_seq_);
}

Result<uint64_t> Wal::AppendNextAndSync(std::string_view payload) {
  std::unique_lock<std::mutex> l(mu_);
  RecordView r{last_index_ != 0 ? last_index_ + 1 : empty_next_, payload};
  DTX_RETURN_IF_ERROR(AppendLocked(std::span<const RecordView>(&r, 1)));
  DTX_RETURN_IF_ERROR(SyncTo(l, append_seq_));
  return r.index;
}

Status Wal::SyncTo(std::unique_lock<std::mutex>& lock, uint64_t target) {
  // Each turn either returns or waits for a running leader, which always finishes its turn.
  for (;;) {
    DTX_RETURN_IF_ERROR(CheckUsable());
    if (synced_seq_ >= target) return Status::Ok();
    if (io_busy_) {
      cv_.wait(lock);
      continue;
    }
    io_busy_ = true;
    Pending batch = std::move(pending_);
    pending_ = Pending{};
    const uint64_t upto = append_seq_;
    lock.unlock();
    Status st = WriteAndSync(batch);
    lock.lock();
    io_busy_ = false;
    if (st.ok()) {
      synced_seq_ = upto;
    } else {
      (void)Poison(st);
    }
    cv_.notify_all();
    if (!st.ok()) return st;
  }
}

void Wal::WaitIdle(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [this] { return !io_busy_; });
}

Status Wal::StartSegment(uint64_t first) {
  auto f = env_->NewWritableFile(SegmentPath(first));
  if (!f.ok()) return f.status();
  file_ = std::move(*f);
  segments_.push_back(Segment{first, 0, 0});
  segment_count_ = segments_.size();
  dir_dirty_ = true;
  return Status::Ok();
}

Status Wal::WriteAndSync(const Pending& batch) {
  size_t chunk_start = 0;
  size_t pos = 0;
  for (const auto& [index, end] : batch.records) {
    if (segments_.empty()) {
      DTX_RETURN_IF_ERROR(StartSegment(index));
    } else if (segments_.back().count == 0 && segments_.back().first != index) {
      // An emptied log restarting at another index: the empty segment's name must not lie.
      DTX_RETURN_IF_ERROR(file_->Close());
      file_.reset();
      DTX_RETURN_IF_ERROR(env_->RemoveFile(SegmentPath(segments_.back().first)));
      DTX_RETURN_IF_ERROR(env_->SyncDir(dir_));
      segments_.pop_back();
      DTX_RETURN_IF_ERROR(StartSegment(index));
    } else if (segments_.back().count > 0 && segments_.back().bytes >= options_.segment_bytes) {
      // The full segment is synced before the next exists, so only the last can be torn.
      DTX_RETURN_IF_ERROR(
          file_->Append(std::string_view(batch.bytes).substr(chunk_start, pos - chunk_start)));
      chunk_start = pos;
      DTX_RETURN_IF_ERROR(file_->Sync());
      if (dir_dirty_) DTX_RETURN_IF_ERROR(env_->SyncDir(dir_));
      dir_dirty_ = false;
      DTX_RETURN_IF_ERROR(file_->Close());
      DTX_RETURN_IF_ERROR(StartSegment(index));
    }
    Segment& cur = segments_.back();
    cur.bytes += end - pos;
    ++cur.count;
    pos = end;
  }
  if (!file_) return Status::Ok();
  if (pos > chunk_start) {
    DTX_RETURN_IF_ERROR(
        file_->Append(std::string_view(batch.bytes).substr(chunk_start, pos - chunk_start)));
  }
  DTX_RETURN_IF_ERROR(file_->Sync());
  if (dir_dirty_) DTX_RETURN_IF_ERROR(env_->SyncDir(dir_));
  dir_dirty_ = false;
  return Status::Ok();
}

Status Wal::DrainLocked() {
  DTX_RETURN_IF_ERROR(CheckUsable());
  if (pending_.records.empty()) return Status::Ok();
  Pending batch = std::move(pending_);
  pending_ = Pending{};
  Status st = WriteAndSync(batch);
  if (!st.ok()) return Poison(st);
  synced_seq_ = append_seq_;
  cv_.notify_all();
  return Status::Ok();
}

Status Wal::Truncate(uint64_t from_index) {
  std::unique_lock<std::mutex> l(mu_);
  WaitIdle(l);
  DTX_RETURN_IF_ERROR(CheckUsable());
  if (from_index == 0) return InvalidArgument("wal: truncate from index 0");
  if (last_index_ == 0) return Status::Ok();
  if (from_index < first_index_ || from_index > last_index_ + 1) {
    return InvalidArgument("wal: truncate from " + std::to_string(from_index) +
                           " outside the log [" + std::to_string(first_index_) + ", " +
                           std::to_string(last_index_) + "]");
  }
  DTX_RETURN_IF_ERROR(DrainLocked());
  if (from_index == last_index_ + 1) return Status::Ok();
  Status st = TruncateLocked(from_index);
  if (!st.ok()) return Poison(st);
  last_index_ = from_index - 1;
  if (from_index == first_index_) {
    first_index_ = last_index_ = 0;
    empty_next_ = from_index;
  }
  return Status::Ok();
}

Status Wal::TruncateLocked(uint64_t from_index) {
  size_t k = segments_.size() - 1;
  while (k > 0 && segments_[k].first > from_index) --k;
  DTX_RETURN_IF_ERROR(file_->Close());
  file_.reset();
  // Last to first, each removal durable before the next, so a crash leaves a prefix.
  while (segments_.size() > k + 1) {
    DTX_RETURN_IF_ERROR(env_->RemoveFile(SegmentPath(segments_.back().first)));
    DTX_RETURN_IF_ERROR(env_->SyncDir(dir_));
    segments_.pop_back();
    segment_count_ = segments_.size();
  }
  Segment& seg = segments_.back();
  const std::string path = SegmentPath(seg.first);
  auto data = env_->ReadFile(path);
  if (!data.ok()) return data.status();
  std::string_view view = std::string_view(*data).substr(0, seg.bytes);
  size_t off = 0;
  for (uint64_t idx = seg.first; idx < from_index; ++idx) {
    uint64_t got = 0;
    std::string why;
    size_t n = DecodeAt(view, off, options_.max_record_bytes, &got, &why);
    if (n == 0 || got != idx) {
      return DataLoss(path + " at offset " + std::to_string(off) + ": " +
                      (n == 0 ? why : "unexpected index " + std::to_string(got)));
    }
    off += n;
  }
  DTX_RETURN_IF_ERROR(env_->WriteFileAtomic(path, view.substr(0, off)));
  seg.count = from_index - seg.first;
  seg.bytes = off;
  auto f = env_->NewAppendableFile(path);
  if (!f.ok()) return f.status();
  file_ = std::move(*f);
  dir_dirty_ = false;
  return Status::Ok();
}

Status Wal::ReleaseBefore(uint64_t index) {
  std::unique_lock<std::mutex> l(mu_);
  WaitIdle(l);
  DTX_RETURN_IF_ERROR(CheckUsable());
  if (index == 0) return InvalidArgument("wal: release before index 0");
  DTX_RETURN_IF_ERROR(DrainLocked());
  bool removed = false;
  // First to last, each removal durable before the next, so a crash never leaves a gap.
  while (segments_.size() >= 2 && segments_[1].first <= index) {
    Status st = env_->RemoveFile(SegmentPath(segments_.front().first));
    if (st.ok()) st = env_->SyncDir(dir_);
    if (!st.ok()) return Poison(st);
    segments_.erase(segments_.begin());
    segment_count_ = segments_.size();
    removed = true;
  }
  if (removed) {
    const Segment& front = segments_.front();
    if (front.count > 0) {
      first_index_ = front.first;
    } else {
      first_index_ = last_index_ = 0;
      empty_next_ = front.first;
    }
  }
  return Status::Ok();
}

Status Wal::Reset(uint64_t next_index) {
  std::unique_lock<std::mutex> l(mu_);
  WaitIdle(l);
  DTX_RETURN_IF_ERROR(CheckUsable());
  if (next_index == 0) return InvalidArgument("wal: reset to index 0");
  DTX_RETURN_IF_ERROR(DrainLocked());
  Status st;
  if (file_) st = file_->Close();
  file_.reset();
  while (st.ok() && !segments_.empty()) {
    st = env_->RemoveFile(SegmentPath(segments_.back().first));
    if (st.ok()) st = env_->SyncDir(dir_);
    if (st.ok()) segments_.pop_back();
  }
  segment_count_ = segments_.size();
  if (st.ok()) st = StartSegment(next_index);
  if (st.ok()) st = env_->SyncDir(dir_);
  if (!st.ok()) return Poison(st);
  dir_dirty_ = false;
  first_index_ = last_index_ = 0;
  empty_next_ = next_index;
  return Status::Ok();
}

Result<std::vector<Record>> Wal::ReadFrom(uint64_t from_index) {
  std::unique_lock<std::mutex> l(mu_);
  WaitIdle(l);
  DTX_RETURN_IF_ERROR(CheckUsable());
  if (from_index == 0) return InvalidArgument("wal: read from index 0");
  if (first_index_ != 0 && from_index < first_index_) {
    return NotFound("wal: records from " + std::to_string(from_index) +
                    " were released; the log starts at " + std::to_string(first_index_));
  }
  DTX_RETURN_IF_ERROR(DrainLocked());
  std::vector<Record> out;
  for (const Segment& seg : segments_) {
    if (seg.count == 0 || seg.first + seg.count - 1 < from_index) continue;
    const std::string path = SegmentPath(seg.first);
    auto data = env_->ReadFile(path);
    if (!data.ok()) return data.status();
    if (data->size() < seg.bytes) {
      return DataLoss(path + ": shorter (" + std::to_string(data->size()) +
                      " bytes) than written (" + std::to_string(seg.bytes) + ")");
    }
    ParseResult res;
    DTX_RETURN_IF_ERROR(ParseSegment(path, std::string_view(*data).substr(0, seg.bytes), seg.first,
                                     options_.max_record_bytes, false, from_index, &out, &res));
  }
  return out;
}

uint64_t Wal::first_index() const {
  std::lock_guard<std::mutex> l(mu_);
  return first_index_;
}

uint64_t Wal::last_index() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_index_;
}

uint64_t Wal::next_index() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_index_ != 0 ? last_index_ + 1 : empty_next_;
}

size_t Wal::segment_count() const { return segment_count_; }

Status Wal::SaveMeta(std::string_view name, std::string_view bytes) {
  if (!ValidMetaName(name)) {
    return InvalidArgument("wal: bad meta name \"" + std::string(name) +
                           "\" (letters, digits, '_', '-'; 1 to 64 characters)");
  }
  std::string data;
  data.reserve(4 + bytes.size());
  PutU32(data, Mask(Crc32c(bytes)));
  data.append(bytes);
  std::lock_guard<std::mutex> l(meta_mu_);
  return env_->WriteFileAtomic(dir_ + "/" + std::string(name) + std::string(kMetaSuffix), data);
}

Result<std::string> Wal::LoadMeta(std::string_view name) {
  if (!ValidMetaName(name)) {
    return InvalidArgument("wal: bad meta name \"" + std::string(name) + "\"");
  }
  const std::string path = dir_ + "/" + std::string(name) + std::string(kMetaSuffix);
  std::lock_guard<std::mutex> l(meta_mu_);
  auto data = env_->ReadFile(path);
  if (!data.ok()) return data.status();
  if (data->size() < 4) return DataLoss(path + ": meta file shorter than its checksum");
  std::string_view body = std::string_view(*data).substr(4);
  if (Mask(Crc32c(body)) != GetU32(data->data())) return DataLoss(path + ": checksum mismatch");
  return std::string(body);
}

}  // namespace dtx::wal
