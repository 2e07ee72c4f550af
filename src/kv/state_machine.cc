#include "kv/state_machine.h"

#include "base/coding.h"

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

void StateMachine::Store(Map::iterator it, const std::string& key, const std::string& value) {
  if (it == map_.end()) {
    bytes_ += key.size() + value.size();
    map_.emplace(key, value);
  } else {
    bytes_ = bytes_ - it->second.size() + value.size();
    it->second = value;
  }
}

ApplyResult StateMachine::Apply(const Command& c) {
  ApplyResult result;
  auto it = map_.find(c.key);
  result.existed = it != map_.end();
  switch (c.type) {
    case CommandType::kPut:
      Store(it, c.key, c.value);
      break;
    case CommandType::kDelete:
      if (it != map_.end()) {
        bytes_ -= it->first.size() + it->second.size();
        map_.erase(it);
      }
      break;
    case CommandType::kCas: {
      const bool matches =
          c.expected ? (it != map_.end() && it->second == *c.expected) : it == map_.end();
      if (!matches) {
        if (it != map_.end()) result.current = it->second;
        break;
      }
      result.swapped = true;
      Store(it, c.key, c.value);
      break;
    }
  }
  return result;
}

namespace {
constexpr uint8_t kImageVersion = 1;
}  // namespace

std::string StateMachine::Serialize() const {
  std::string out;
  out.reserve(16 + bytes_ + 16 * map_.size());
  PutU8(out, kImageVersion);
  PutU64(out, map_.size());
  for (const auto& [key, value] : map_) {
    PutBytes(out, key);
    PutBytes(out, value);
  }
  return out;
}

Status StateMachine::Restore(std::string_view image) {
  ByteReader r(image);
  const uint8_t version = r.U8();
  const uint64_t count = r.U64();
  // Each pair takes at least 16 bytes: a count beyond that is corruption, not an allocation.
  if (!r.ok() || version != kImageVersion || count > r.remaining() / 16) {
    return DataLoss("dtxkv: the snapshot image is malformed");
  }
  Map map;
  map.reserve(count);
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view key = r.Bytes();
    std::string_view value = r.Bytes();
    if (!r.ok()) return DataLoss("dtxkv: the snapshot image is truncated");
    bytes += key.size() + value.size();
    map.emplace(key, value);
  }
  if (!r.done() || map.size() != count) return DataLoss("dtxkv: the snapshot image is malformed");
  map_ = std::move(map);
  bytes_ = bytes;
  return Status::Ok();
}

std::optional<std::string> StateMachine::Get(std::string_view key) const {
  auto it = map_.find(std::string(key));
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

}  // namespace dtx::kv
