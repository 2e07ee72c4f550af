#include "kv/state_machine.h"

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <utility>

#include "base/coding.h"
#include "base/rocksdb.h"

namespace dtx::kv {

Status ValidateKey(std::string_view key) {
  if (key.empty()) return InvalidArgument("the key is empty");
  if (key.size() > kMaxKeyBytes) {
    return InvalidArgument("the key is longer than " + std::to_string(kMaxKeyBytes) + " bytes");
  }
  if (key.find('\0') != std::string_view::npos) return InvalidArgument("the key contains NUL");
  return Status::Ok();
}

Status ValidateValue(std::string_view value) {
  if (value.size() > kMaxValueBytes) {
    return InvalidArgument("the value is longer than " + std::to_string(kMaxValueBytes) + " bytes");
  }
  return Status::Ok();
}

std::string EncodeCommand(const Command& c) {
  std::string out;
  out.reserve(32 + c.key.size() + c.value.size());
  PutU8(out, static_cast<uint8_t>(c.type));
  PutBytes(out, c.key);
  PutBytes(out, c.value);
  PutU8(out, c.expected.has_value() ? 1 : 0);
  if (c.expected) PutBytes(out, *c.expected);
  return out;
}

Result<Command> DecodeCommand(std::string_view bytes) {
  ByteReader r(bytes);
  Command c;
  const uint8_t type = r.U8();
  c.key = std::string(r.Bytes());
  c.value = std::string(r.Bytes());
  const uint8_t has_expected = r.U8();
  if (has_expected == 1) c.expected = std::string(r.Bytes());
  if (!r.done() || type < 1 || type > 3 || has_expected > 1) {
    return DataLoss("dtxkv: a log entry is not a valid command");
  }
  c.type = static_cast<CommandType>(type);
  return c;
}

namespace {

constexpr uint8_t kImageVersion = 1;
constexpr uint8_t kMarkerVersion = 2;
constexpr std::string_view kMetaKey = "m";
// Data keys are "k" + key: they sort together, in [kDataBegin, kDataEnd).
constexpr std::string_view kDataBegin = "k";
constexpr std::string_view kDataEnd = "l";
// Restore writes the image in batches of about this size.
constexpr size_t kRestoreBatchBytes = 8 << 20;

std::string DataKey(std::string_view key) {
  std::string k;
  k.reserve(1 + key.size());
  k.append(kDataBegin);
  k.append(key);
  return k;
}

struct Meta {
  uint64_t applied = 0;
  uint64_t keys = 0;
  uint64_t bytes = 0;
};

std::string EncodeMeta(const Meta& m) {
  std::string out;
  PutU64(out, m.applied);
  PutU64(out, m.keys);
  PutU64(out, m.bytes);
  return out;
}

void DeleteDb(rocksdb::DB* db) {
  // Close flushes the memtables (no RocksDB WAL: otherwise a clean stop would re-apply them).
  db->Close().PermitUncheckedError();
  delete db;
}

}  // namespace

std::string LocalSnapshotMarker(uint64_t index) {
  std::string out;
  PutU8(out, kMarkerVersion);
  PutU64(out, index);
  return out;
}

bool IsLocalSnapshotMarker(std::string_view data) {
  return data.size() == 9 && static_cast<uint8_t>(data[0]) == kMarkerVersion;
}

class StateMachine::Impl {
 public:
  explicit Impl(std::shared_ptr<rocksdb::DB> db)
      : db_(std::move(db)), batch_(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true) {
    write_options_.disableWAL = true;
  }

  std::shared_ptr<rocksdb::DB> db_;
  rocksdb::WriteBatchWithIndex batch_;
  rocksdb::WriteOptions write_options_;
  bool pending_ = false;
};

namespace {

class RocksView final : public StateMachine::View {
 public:
  RocksView(std::shared_ptr<rocksdb::DB> db, uint64_t index, uint64_t keys)
      : db_(std::move(db)), snapshot_(db_->GetSnapshot()), index_(index), keys_(keys) {}
  ~RocksView() override { db_->ReleaseSnapshot(snapshot_); }
  uint64_t index() const override { return index_; }

  rocksdb::DB& db() const { return *db_; }
  const rocksdb::Snapshot* snapshot() const { return snapshot_; }
  uint64_t keys() const { return keys_; }

 private:
  std::shared_ptr<rocksdb::DB> db_;
  const rocksdb::Snapshot* snapshot_;
  uint64_t index_;
  uint64_t keys_;
};

}  // namespace

StateMachine::StateMachine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateMachine::~StateMachine() = default;

Result<std::unique_ptr<StateMachine>> StateMachine::Open(const std::string& dir,
                                                         const StateOptions& options) {
  RocksDbOptions ro;
  ro.block_cache_bytes = options.block_cache_bytes;
  ro.write_buffer_bytes = options.write_buffer_bytes;
  auto opened = OpenRocksDb(dir, ro, "dtxkv state", "dtxkv");
  if (!opened.ok()) return opened.status();
  std::shared_ptr<rocksdb::DB> db(opened->release(), DeleteDb);

  std::string meta;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), ToSlice(kMetaKey), &meta);
  Meta m;
  if (s.ok()) {
    ByteReader r(meta);
    m.applied = r.U64();
    m.keys = r.U64();
    m.bytes = r.U64();
    if (!r.done()) return DataLoss("dtxkv state in '" + dir + "': its metadata is malformed");
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "dtxkv state in '" + dir + "'");
  }
  std::unique_ptr<StateMachine> sm(new StateMachine(std::make_unique<Impl>(std::move(db))));
  sm->applied_ = m.applied;
  sm->keys_ = m.keys;
  sm->bytes_ = m.bytes;
  return sm;
}

Result<ApplyResult> StateMachine::Apply(uint64_t index, const Command& c) {
  const std::string key = DataKey(c.key);
  std::string found;
  rocksdb::Status s = impl_->batch_.GetFromBatchAndDB(impl_->db_.get(), rocksdb::ReadOptions(),
                                                      ToSlice(key), &found);
  if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "dtxkv state: read");
  const bool existed = s.ok();

  ApplyResult result;
  result.existed = existed;
  bool store = false;
  switch (c.type) {
    case CommandType::kPut:
      store = true;
      break;
    case CommandType::kDelete:
      if (existed) {
        impl_->batch_.Delete(ToSlice(key));
        keys_ -= 1;
        bytes_ -= c.key.size() + found.size();
      }
      break;
    case CommandType::kCas:
      store = c.expected ? (existed && found == *c.expected) : !existed;
      result.swapped = store;
      if (!store && existed) result.current = std::move(found);
      break;
  }
  if (store) {
    impl_->batch_.Put(ToSlice(key), ToSlice(c.value));
    if (existed) {
      bytes_ = bytes_ - found.size() + c.value.size();
    } else {
      keys_ += 1;
      bytes_ += c.key.size() + c.value.size();
    }
  }
  applied_ = index;
  impl_->pending_ = true;
  return result;
}

void StateMachine::Skip(uint64_t index) {
  applied_ = index;
  impl_->pending_ = true;
}

Status StateMachine::Commit() {
  if (!impl_->pending_) return Status::Ok();
  impl_->batch_.Put(ToSlice(kMetaKey), EncodeMeta({applied_, keys_, bytes_}));
  rocksdb::Status s = impl_->db_->Write(impl_->write_options_, impl_->batch_.GetWriteBatch());
  if (!s.ok()) return FromRocks(s, "dtxkv state: write");
  impl_->batch_.Clear();
  impl_->pending_ = false;
  return Status::Ok();
}

Result<std::optional<std::string>> StateMachine::Get(std::string_view key) const {
  std::string value;
  rocksdb::Status s = impl_->db_->Get(rocksdb::ReadOptions(), ToSlice(DataKey(key)), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "dtxkv state: read");
  return std::optional<std::string>(std::move(value));
}

std::shared_ptr<const StateMachine::View> StateMachine::Pin() const {
  return std::make_shared<RocksView>(impl_->db_, applied_, keys_);
}

Status StateMachine::Persist() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  fo.allow_write_stall = true;
  rocksdb::Status s = impl_->db_->Flush(fo);
  if (!s.ok()) return FromRocks(s, "dtxkv state: flush");
  return Status::Ok();
}

Result<std::string> StateMachine::Serialize(const View& view) const {
  const auto& v = static_cast<const RocksView&>(view);
  rocksdb::ReadOptions ro;
  ro.snapshot = v.snapshot();
  ro.fill_cache = false;
  rocksdb::Slice end = ToSlice(kDataEnd);
  ro.iterate_upper_bound = &end;
  std::unique_ptr<rocksdb::Iterator> it(v.db().NewIterator(ro));
  std::string out;
  PutU8(out, kImageVersion);
  PutU64(out, v.keys());
  uint64_t count = 0;
  for (it->Seek(ToSlice(kDataBegin)); it->Valid(); it->Next()) {
    PutBytes(out, ToView(it->key()).substr(kDataBegin.size()));
    PutBytes(out, ToView(it->value()));
    ++count;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "dtxkv state: snapshot read");
  if (count != v.keys()) {
    return DataLoss("dtxkv state: the view holds " + std::to_string(count) +
                    " keys, the metadata says " + std::to_string(v.keys()));
  }
  return out;
}

Status StateMachine::Restore(std::string_view image, uint64_t index) {
  ByteReader r(image);
  const uint8_t version = r.U8();
  const uint64_t count = r.U64();
  // Each pair takes at least 16 bytes: a count beyond that is corruption, not an allocation.
  if (!r.ok() || version != kImageVersion || count > r.remaining() / 16) {
    return DataLoss("dtxkv: the snapshot image is malformed");
  }
  // Validate everything before the first write, so a bad image changes nothing.
  const size_t pairs_start = image.size() - r.remaining();
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view key = r.Bytes();
    std::string_view value = r.Bytes();
    if (!r.ok() || !ValidateKey(key).ok() || !ValidateValue(value).ok()) {
      return DataLoss("dtxkv: the snapshot image is truncated or holds an invalid pair");
    }
    bytes += key.size() + value.size();
  }
  if (!r.done()) return DataLoss("dtxkv: the snapshot image is malformed");

  impl_->batch_.Clear();
  impl_->pending_ = false;
  rocksdb::WriteBatch batch;
  auto write = [&]() -> Status {
    rocksdb::Status s = impl_->db_->Write(impl_->write_options_, &batch);
    if (!s.ok()) return FromRocks(s, "dtxkv state: restore");
    batch.Clear();
    return Status::Ok();
  };
  rocksdb::Status s = batch.DeleteRange(ToSlice(kDataBegin), ToSlice(kDataEnd));
  if (!s.ok()) return FromRocks(s, "dtxkv state: restore");
  ByteReader pairs(image.substr(pairs_start));
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view key = pairs.Bytes();
    std::string_view value = pairs.Bytes();
    s = batch.Put(ToSlice(DataKey(key)), ToSlice(value));
    if (!s.ok()) return FromRocks(s, "dtxkv state: restore");
    if (batch.GetDataSize() >= kRestoreBatchBytes) DTX_RETURN_IF_ERROR(write());
  }
  // The metadata goes last: RocksDB keeps a prefix of the batches, so it is on disk only if the
  // whole image is.
  DTX_RETURN_IF_ERROR(write());
  s = batch.Put(ToSlice(kMetaKey), EncodeMeta({index, count, bytes}));
  if (!s.ok()) return FromRocks(s, "dtxkv state: restore");
  DTX_RETURN_IF_ERROR(write());
  DTX_RETURN_IF_ERROR(Persist());
  applied_ = index;
  keys_ = count;
  bytes_ = bytes;
  return Status::Ok();
}

}  // namespace dtx::kv
