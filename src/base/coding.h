// Little-endian fixed-width encoding for the binary formats of dtx (WAL payloads, Raft messages,
// state-machine commands and snapshots): writers append to a std::string, ByteReader consumes a
// string_view and latches the first failure instead of reading past the end.
//
// Thread-safety: functions are pure; a ByteReader is used by one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dtx {

inline void PutU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
// A length (u64) followed by the bytes.
inline void PutBytes(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s);
}

// Reads values in the order they were written. After a read past the end (or a length larger
// than what is left) ok() is false, every later read returns 0 or empty, and nothing is copied.
class ByteReader {
 public:
  explicit ByteReader(std::string_view s) : s_(s) {}

  uint8_t U8() {
    if (pos_ >= s_.size()) return static_cast<uint8_t>(Fail());
    return static_cast<uint8_t>(s_[pos_++]);
  }
  uint32_t U32() { return static_cast<uint32_t>(Fixed(4)); }
  uint64_t U64() { return Fixed(8); }
  // A PutBytes value; the view points into the input.
  std::string_view Bytes() {
    const uint64_t n = U64();
    if (!ok_ || s_.size() - pos_ < n) {
      Fail();
      return {};
    }
    std::string_view v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  // Everything not read yet.
  std::string_view Rest() {
    std::string_view v = s_.substr(pos_);
    pos_ = s_.size();
    return v;
  }

  bool ok() const { return ok_; }
  size_t remaining() const { return s_.size() - pos_; }
  // True when every byte was read and no read failed.
  bool done() const { return ok_ && pos_ == s_.size(); }

 private:
  uint64_t Fixed(int bytes) {
    if (s_.size() - pos_ < static_cast<size_t>(bytes)) return Fail();
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= uint64_t{static_cast<unsigned char>(s_[pos_ + i])} << (8 * i);
    }
    pos_ += bytes;
    return v;
  }
  uint64_t Fail() {
    ok_ = false;
    pos_ = s_.size();
    return 0;
  }

  std::string_view s_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace dtx
