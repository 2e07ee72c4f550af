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
// Format version 2 = version 1 followed by the snapshot:
//   varint  snapshot index, snapshot term, data length, then the data bytes
// The encoder writes version 2 only for a message whose snapshot is not the default (empty) one,
// so every other message stays readable by a version-1 reader; a version-2 input with an empty
// snapshot is refused as non-canonical.
// Format version 3 = version 2 followed by the snapshot's configuration (ConfState):
//   varint  voter count, then the voter ids; varint learner count, then the learner ids
// written only when the configuration is not empty (a version-3 input with an empty one is
// refused). Entries of type kConfChange need no new version (the entry type byte carries them).
// The encoding is a function of the message, and decoding accepts only what the encoder could
// have produced, so Encode(Decode(b)) == b for every accepted b.
//
// Evolution: a field added to Message gets a new format version that appends it, written only
// when the field is not at its default; the decoder keeps accepting the older versions (the
// field then has its default), so nodes can be upgraded one at a time as long as the new field
// is not needed.
//
// Thread-safety: pure functions; safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "consensus/raft/types.h"

namespace dtx::raft {

// The encoding of m: format version 1, or 2 when m carries a snapshot.
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
