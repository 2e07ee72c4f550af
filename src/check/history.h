// A client operation history for a key-value register, the input of the linearizability
// checker (linearizability.h).
//
// Clients issue operations on keys: read(key), write(key, value) and cas(key, expected, new)
// where `expected` may be "absent". Every operation is an invoke event followed (later, by the
// same client) by one completion event:
//   ok    the operation took effect; a read carries the value it saw (or absent), a cas whether
//         it swapped.
//   fail  the operation definitely did not take effect.
//   info  the outcome is unknown: it may or may not have taken effect, at any time after its
//         invoke (a client timeout). An invoke with no completion at the end of the history is
//         treated the same way.
// A client has at most one operation in flight. Every event carries a logical time; times
// strictly increase along the history, so "a completed before b was invoked" is well defined.
//
// Text format (one event per line; blank lines and lines starting with '#' are ignored; tokens
// separated by spaces or tabs; values and keys are tokens without whitespace, and the token
// `nil` means "absent"):
//   [@T] invoke C read K
//   [@T] invoke C write K V
//   [@T] invoke C cas K EXPECTED NEW       EXPECTED may be nil
//   [@T] ok C read K V                     V may be nil
//   [@T] ok C write K V       or  ok C
//   [@T] ok C cas K true|false
//   [@T] fail C
//   [@T] info C
// C is a decimal client id. `@T` sets the event's logical time; without it the time is the
// previous event's time plus one. Any operation details after `ok C` must match the client's
// pending invoke.
//
// Thread-safety: values; a History is not safe to mutate from several threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace dtx::check {

enum class OpType { kRead, kWrite, kCas };

// What a client asked for.
struct Op {
  OpType type = OpType::kRead;
  std::string key;
  // cas only: the value the key must hold for the swap; nullopt = the key must be absent.
  std::optional<std::string> expected;
  // write: the value written; cas: the new value; read: unused (empty).
  std::string value;

  static Op Read(std::string key);
  static Op Write(std::string key, std::string value);
  static Op Cas(std::string key, std::optional<std::string> expected, std::string value);

  bool operator==(const Op&) const = default;
};

enum class EventType { kInvoke, kOk, kFail, kInfo };

struct Event {
  EventType type = EventType::kInvoke;
  uint64_t client = 0;
  uint64_t time = 0;
  // kInvoke: the operation. Completions: a copy of the pending invoke's operation (filled in by
  // History::Append, so every event names its key).
  Op op;
  // kOk of a read: the value seen; nullopt = the key was absent.
  std::optional<std::string> read_value;
  // kOk of a cas: whether it swapped.
  bool cas_swapped = false;

  bool operator==(const Event&) const = default;
};

// One operation with its outcome, as the checker consumes it.
struct Operation {
  uint64_t client = 0;
  Op op;
  // kOk, kFail or kInfo (an operation still pending at the end of the history is kInfo).
  EventType outcome = EventType::kInfo;
  uint64_t invoke_time = 0;
  // Time of the completion event; UINT64_MAX for kInfo (it may take effect at any later time).
  uint64_t complete_time = 0;
  std::optional<std::string> read_value;  // kOk reads only
  bool cas_swapped = false;               // kOk cas only
};

// Renders an operation for messages, e.g. "client 3 read k1 -> v5 [t=4..9]".
std::string DescribeOperation(const Operation& op);

class History {
 public:
  // Appends an event. Returns InvalidArgument (and leaves the history unchanged) when the time
  // does not increase, the client already has an operation in flight (invoke) or has none
  // (completion), or an invoke names an empty key. A completion's `e.op` is ignored and
  // replaced by the pending invoke's op; its read_value / cas_swapped are kept only for kOk
  // (and cleared otherwise).
  Status Append(Event e);

  // Conveniences over Append with time = last time + 1.
  Status Invoke(uint64_t client, Op op);
  Status OkRead(uint64_t client, std::optional<std::string> value);
  Status OkWrite(uint64_t client);
  Status OkCas(uint64_t client, bool swapped);
  Status Fail(uint64_t client);
  Status Info(uint64_t client);

  // The operation `client` has in flight, if any.
  std::optional<Op> PendingOp(uint64_t client) const;

  const std::vector<Event>& events() const { return events_; }
  uint64_t last_time() const { return events_.empty() ? 0 : events_.back().time; }

  // The operations in invoke order, each paired with its completion.
  std::vector<Operation> Operations() const;

 private:
  Status Complete(EventType type, uint64_t client, std::optional<std::string> read_value,
                  bool cas_swapped, std::optional<OpType> must_be);

  std::vector<Event> events_;
  std::unordered_map<uint64_t, size_t> pending_;  // client -> index of its invoke in events_
};

// Parses the text format above. Errors are InvalidArgument naming the line number.
Result<History> ParseHistory(std::string_view text);

// Renders a history in the text format, every line with its `@T`. InvalidArgument when a key
// or value cannot be written as a token (empty, contains whitespace, or a value equal to "nil").
Result<std::string> FormatHistory(const History& history);

}  // namespace dtx::check
