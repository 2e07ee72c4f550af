// dtxkv's replicated state machine: a map from keys to values changed only by commands applied
// in log order. Commands are encoded into Raft entries by the node that proposes them and
// applied by every node; the same sequence of commands gives the same map and the same results
// on every node.
//
// Thread-safety: not thread-safe; the node's io thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"

namespace dtx::kv {

// Keys: 1..kMaxKeyBytes bytes, any byte but NUL. Values: up to kMaxValueBytes bytes.
inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxValueBytes = 1 << 20;

// kInvalidArgument naming the problem.
Status ValidateKey(std::string_view key);
Status ValidateValue(std::string_view value);

enum class CommandType : uint8_t { kPut = 1, kDelete = 2, kCas = 3 };

struct Command {
  CommandType type = CommandType::kPut;
  std::string key;
  std::string value;                    // kPut, kCas: the new value
  std::optional<std::string> expected;  // kCas: the value required; nullopt = key absent

  bool operator==(const Command&) const = default;
};

std::string EncodeCommand(const Command& c);
// kDataLoss when the bytes are not a command EncodeCommand produced (a replicated entry that
// does not decode means the log is corrupt).
Result<Command> DecodeCommand(std::string_view bytes);

// What applying a command did.
struct ApplyResult {
  bool existed = false;                // kPut/kDelete: the key had a value before
  bool swapped = false;                // kCas: the swap happened
  std::optional<std::string> current;  // kCas that did not swap: the value found (nullopt: absent)
};

class StateMachine {
 public:
  ApplyResult Apply(const Command& c);
  // The value of key, nullopt when absent.
  std::optional<std::string> Get(std::string_view key) const;
  size_t size() const { return map_.size(); }

  // The whole map as bytes (the Raft snapshot's data), and its inverse, which replaces the map.
  // Restore returns kDataLoss (and leaves the map unchanged) when the bytes are not an image
  // Serialize produced.
  std::string Serialize() const;
  Status Restore(std::string_view image);
  // Payload bytes held (keys + values), for status pages.
  uint64_t bytes() const { return bytes_; }

 private:
  using Map = std::unordered_map<std::string, std::string>;
  // Sets key (at `it`, or absent when it is end()) to value, keeping bytes_ right.
  void Store(Map::iterator it, const std::string& key, const std::string& value);

  Map map_;
  uint64_t bytes_ = 0;
};

}  // namespace dtx::kv
