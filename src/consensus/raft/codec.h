// The wire form of raft::Message, used by transports between nodes (dtxkv's TCP transport).
//
// Format version 1 (all integers unsigned; "varint" = LEB128, 7 bits per byte, low group first,
// at most 10 bytes, canonical: no redundant trailing zero groups):
//   u8      format version (1)
//   u8      MessageType
//   u8      flags: bit 0 reject, bit 1 transfer; other bits must be 0
//   varint  from, to, term, log_term, index, commit, reject_hint
//   varint  context length, then the context bytes
//   varint  entry count, then per entry:
//             varint term, varint index, u8 EntryType, varint data length, data bytes
// The encoding is a function of the message, and decoding accepts only what the encoder could
// have produced, so Encode(Decode(b)) == b for every accepted b.
//
// Evolution: a field added to Message gets a new format version (kMessageFormatVersion + 1)
// that appends it; the decoder keeps accepting the older versions (the new field then has its
// default), so nodes can be upgraded one at a time as long as the newest field is not needed.
//
// Thread-safety: pure functions; safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "consensus/raft/types.h"

namespace dtx::raft {

inline constexpr uint8_t kMessageFormatVersion = 1;

// The encoding of m (format version kMessageFormatVersion).
std::string EncodeMessage(const Message& m);
// Appends the encoding of m to *out (lets a transport put a frame header in front without a
// copy). REQUIRES: out != nullptr.
void EncodeMessageTo(const Message& m, std::string* out);

// Decodes one message that fills `bytes` exactly. Errors (kInvalidArgument, the message naming
// the problem and its byte offset): an empty input, an unknown format version, a truncated
// input, trailing bytes, an unknown MessageType or EntryType, unknown flag bits, a malformed or
// non-canonical varint, a length or entry count that cannot fit in the remaining input. Never
// crashes; allocates at most a small multiple of bytes.size() (an entry count is checked against
// the bytes left before anything is reserved).
Result<Message> DecodeMessage(std::string_view bytes);

}  // namespace dtx::raft
