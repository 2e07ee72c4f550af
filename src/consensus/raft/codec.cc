#include "consensus/raft/codec.h"

#include <string>
#include <utility>

namespace dtx::raft {
namespace {

constexpr uint8_t kFlagReject = 1;
constexpr uint8_t kFlagTransfer = 2;
constexpr uint8_t kKnownFlags = kFlagReject | kFlagTransfer;
// The smallest encoded entry: term, index, type and data length of one byte each.
constexpr size_t kMinEntryBytes = 4;

// MessageTypeName knows exactly the types the core defines, so a type added there is accepted
// here without a second list to forget.
bool KnownMessageType(uint8_t t) { return MessageTypeName(static_cast<MessageType>(t)) != "?"; }

bool KnownEntryType(uint8_t t) {
  switch (static_cast<EntryType>(t)) {
    case EntryType::kNormal:
    case EntryType::kConfChange:
      return true;
  }
  return false;
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytes(std::string_view b, std::string* out) {
  PutVarint(b.size(), out);
  out->append(b);
}

// Version 1: no snapshot; 2: a snapshot without a configuration; 3: a snapshot with one.
constexpr uint8_t kNewestVersion = 3;

bool CarriesSnapshot(const Message& m) { return !(m.snapshot == Snapshot{}); }

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  size_t pos() const { return pos_; }
  size_t left() const { return in_.size() - pos_; }

  Status Byte(const char* what, uint8_t* v) {
    if (left() < 1) return Truncated(what);
    *v = static_cast<uint8_t>(in_[pos_++]);
    return Status::Ok();
  }

  Status Varint(const char* what, uint64_t* v) {
    const size_t start = pos_;
    uint64_t result = 0;
    for (int i = 0; i < 10; ++i) {
      if (left() < 1) return Truncated(what);
      const uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (i == 9 && b > 1) return Bad(start, what, "varint overflows 64 bits");
      result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        // A zero last group after the first byte is a longer spelling of a shorter varint;
        // refusing it keeps the encoding unique.
        if (b == 0 && i > 0) return Bad(start, what, "non-canonical varint");
        *v = result;
        return Status::Ok();
      }
    }
    return Bad(start, what, "varint longer than 10 bytes");
  }

  Status Bytes(const char* what, std::string* out) {
    const size_t start = pos_;
    uint64_t n = 0;
    DTX_RETURN_IF_ERROR(Varint(what, &n));
    if (n > left()) {
      return Bad(
          start, what,
          "length " + std::to_string(n) + " exceeds the " + std::to_string(left()) + " bytes left");
    }
    out->assign(in_.substr(pos_, n));
    pos_ += n;
    return Status::Ok();
  }

  Status Bad(size_t at, std::string_view what, std::string_view problem) const {
    return InvalidArgument("raft message: " + std::string(what) + " at byte " + std::to_string(at) +
                           ": " + std::string(problem));
  }

 private:
  Status Truncated(std::string_view what) const {
    return InvalidArgument("raft message truncated: " + std::string(what) + " at byte " +
                           std::to_string(pos_) + " of " + std::to_string(in_.size()));
  }

  std::string_view in_;
  size_t pos_ = 0;
};

Status DecodeV1(Reader& r, Message* m) {
  uint8_t type = 0;
  size_t at = r.pos();
  DTX_RETURN_IF_ERROR(r.Byte("type", &type));
  if (!KnownMessageType(type)) {
    return r.Bad(at, "type", "unknown message type " + std::to_string(type));
  }
  m->type = static_cast<MessageType>(type);
  uint8_t flags = 0;
  at = r.pos();
  DTX_RETURN_IF_ERROR(r.Byte("flags", &flags));
  if ((flags & ~kKnownFlags) != 0) {
    return r.Bad(at, "flags", "unknown flag bits " + std::to_string(flags & ~kKnownFlags));
  }
  m->reject = (flags & kFlagReject) != 0;
  m->transfer = (flags & kFlagTransfer) != 0;
  DTX_RETURN_IF_ERROR(r.Varint("from", &m->from));
  DTX_RETURN_IF_ERROR(r.Varint("to", &m->to));
  DTX_RETURN_IF_ERROR(r.Varint("term", &m->term));
  DTX_RETURN_IF_ERROR(r.Varint("log_term", &m->log_term));
  DTX_RETURN_IF_ERROR(r.Varint("index", &m->index));
  DTX_RETURN_IF_ERROR(r.Varint("commit", &m->commit));
  DTX_RETURN_IF_ERROR(r.Varint("reject_hint", &m->reject_hint));
  DTX_RETURN_IF_ERROR(r.Bytes("context", &m->context));
  uint64_t count = 0;
  at = r.pos();
  DTX_RETURN_IF_ERROR(r.Varint("entry count", &count));
  // Checked before the resize, so a forged count cannot make us allocate.
  if (count > r.left() / kMinEntryBytes) {
    return r.Bad(at, "entry count",
                 std::to_string(count) + " entries cannot fit in the " + std::to_string(r.left()) +
                     " bytes left");
  }
  m->entries.resize(count);
  for (Entry& e : m->entries) {
    DTX_RETURN_IF_ERROR(r.Varint("entry term", &e.term));
    DTX_RETURN_IF_ERROR(r.Varint("entry index", &e.index));
    uint8_t et = 0;
    at = r.pos();
    DTX_RETURN_IF_ERROR(r.Byte("entry type", &et));
    if (!KnownEntryType(et)) {
      return r.Bad(at, "entry type", "unknown entry type " + std::to_string(et));
    }
    e.type = static_cast<EntryType>(et);
    DTX_RETURN_IF_ERROR(r.Bytes("entry data", &e.data));
  }
  return Status::Ok();
}

Status DecodeSnapshot(Reader& r, Message* m) {
  const size_t at = r.pos();
  DTX_RETURN_IF_ERROR(r.Varint("snapshot index", &m->snapshot.metadata.index));
  DTX_RETURN_IF_ERROR(r.Varint("snapshot term", &m->snapshot.metadata.term));
  DTX_RETURN_IF_ERROR(r.Bytes("snapshot data", &m->snapshot.data));
  if (!CarriesSnapshot(*m)) {
    return r.Bad(at, "snapshot", "version 2 with an empty snapshot (written as version 1)");
  }
  return Status::Ok();
}

Status DecodeConfState(Reader& r, ConfState* cs) {
  for (auto* ids : {&cs->voters, &cs->learners}) {
    uint64_t n = 0;
    const size_t at = r.pos();
    DTX_RETURN_IF_ERROR(r.Varint("conf state size", &n));
    // Checked before the loop, so a forged count cannot make us allocate.
    if (n > r.left()) {
      return r.Bad(
          at, "conf state size",
          std::to_string(n) + " ids cannot fit in the " + std::to_string(r.left()) + " bytes left");
    }
    ids->resize(n);
    for (NodeId& id : *ids) DTX_RETURN_IF_ERROR(r.Varint("conf state id", &id));
  }
  if (cs->empty()) {
    return r.Bad(r.pos(), "conf state", "version 3 with an empty configuration");
  }
  return Status::Ok();
}

}  // namespace

void EncodeMessageTo(const Message& m, std::string* out) {
  size_t data_bytes = m.context.size();
  for (const Entry& e : m.entries) data_bytes += e.data.size() + 32;
  const bool snapshot = CarriesSnapshot(m);
  const ConfState& cs = m.snapshot.metadata.conf_state;
  if (snapshot)
    data_bytes += m.snapshot.data.size() + 20 + 10 * (cs.voters.size() + cs.learners.size());
  out->reserve(out->size() + 80 + data_bytes);
  out->push_back(static_cast<char>(!snapshot ? 1 : cs.empty() ? 2 : 3));
  out->push_back(static_cast<char>(m.type));
  out->push_back(
      static_cast<char>((m.reject ? kFlagReject : 0) | (m.transfer ? kFlagTransfer : 0)));
  PutVarint(m.from, out);
  PutVarint(m.to, out);
  PutVarint(m.term, out);
  PutVarint(m.log_term, out);
  PutVarint(m.index, out);
  PutVarint(m.commit, out);
  PutVarint(m.reject_hint, out);
  PutBytes(m.context, out);
  PutVarint(m.entries.size(), out);
  for (const Entry& e : m.entries) {
    PutVarint(e.term, out);
    PutVarint(e.index, out);
    out->push_back(static_cast<char>(e.type));
    PutBytes(e.data, out);
  }
  if (snapshot) {
    PutVarint(m.snapshot.metadata.index, out);
    PutVarint(m.snapshot.metadata.term, out);
    PutBytes(m.snapshot.data, out);
    if (!cs.empty()) {
      for (const auto* ids : {&cs.voters, &cs.learners}) {
        PutVarint(ids->size(), out);
        for (NodeId id : *ids) PutVarint(id, out);
      }
    }
  }
}

std::string EncodeMessage(const Message& m) {
  std::string out;
  EncodeMessageTo(m, &out);
  return out;
}

Result<Message> DecodeMessage(std::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  if (!r.Byte("format version", &version).ok()) {
    return InvalidArgument("raft message: empty input");
  }
  if (version < 1 || version > kNewestVersion) {
    return InvalidArgument("raft message: unknown format version " + std::to_string(version) +
                           " (this build reads versions 1 to " + std::to_string(kNewestVersion) +
                           ")");
  }
  Message m;
  DTX_RETURN_IF_ERROR(DecodeV1(r, &m));
  if (version >= 2) DTX_RETURN_IF_ERROR(DecodeSnapshot(r, &m));
  if (version >= 3) DTX_RETURN_IF_ERROR(DecodeConfState(r, &m.snapshot.metadata.conf_state));
  if (r.left() != 0) {
    return InvalidArgument("raft message: " + std::to_string(r.left()) +
                           " trailing bytes after byte " + std::to_string(r.pos()));
  }
  return m;
}

}  // namespace dtx::raft
