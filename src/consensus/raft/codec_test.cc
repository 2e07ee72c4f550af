#include "consensus/raft/codec.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "base/rand.h"

// The largest single allocation while tracking is on: proves a huge claimed length or count is
// refused before anything of that size is allocated.
namespace {
std::atomic<bool> g_track_alloc{false};
std::atomic<size_t> g_max_alloc{0};
}  // namespace

// GCC cannot see that these replace the global pair and warns about malloc/free vs new/delete.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  if (g_track_alloc.load(std::memory_order_relaxed)) {
    size_t prev = g_max_alloc.load(std::memory_order_relaxed);
    while (n > prev && !g_max_alloc.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace dtx::raft {
namespace {

// Counts the fields of an aggregate: the largest N for which T{Any x N} compiles. Message and
// Entry hold no nested aggregates, so brace elision cannot inflate the count.
struct Any {
  template <typename T>
  operator T() const;  // NOLINT: implicit by design, only used in unevaluated contexts
};
template <typename T, typename... A>
constexpr size_t FieldCount() {
  if constexpr (requires { T{A{}..., Any{}}; }) {
    return FieldCount<T, A..., Any>();
  } else {
    return sizeof...(A);
  }
}

uint64_t RandomInt(Rand& rnd) {
  // Mostly small values, but every varint length and the extremes too.
  switch (rnd.Uniform(4)) {
    case 0:
      return rnd.Uniform(128);
    case 1:
      return rnd.Next() >> rnd.Uniform(64);
    case 2:
      return std::numeric_limits<uint64_t>::max() - rnd.Uniform(3);
    default:
      return rnd.Uniform(1 << 20);
  }
}

std::string RandomBytes(Rand& rnd, size_t max_len) {
  std::string s(rnd.Uniform(max_len + 1), '\0');
  for (char& c : s) c = static_cast<char>(rnd.Uniform(256));
  return s;
}

// Every MessageType the core defines: the values MessageTypeName knows.
std::vector<MessageType> AllMessageTypes() {
  std::vector<MessageType> types;
  for (int v = 0; v < 256; ++v) {
    auto t = static_cast<MessageType>(v);
    if (MessageTypeName(t) != "?") types.push_back(t);
  }
  return types;
}

uint64_t RandomInt(Rand& rnd);
std::string RandomBytes(Rand& rnd, size_t max_len);

void RandomSnapshot(Rand& rnd, Message* m) {
  if (rnd.Chance(0.5)) return;  // half the messages carry none (format version 1)
  m->snapshot.metadata.index = RandomInt(rnd);
  m->snapshot.metadata.term = RandomInt(rnd);
  m->snapshot.data = RandomBytes(rnd, 200);
  if (rnd.Chance(0.5)) return;  // half of them carry no configuration (format version 2)
  ConfState& cs = m->snapshot.metadata.conf_state;
  for (size_t i = 0, n = 1 + rnd.Uniform(5); i < n; ++i) cs.voters.push_back(RandomInt(rnd));
  for (size_t i = 0, n = rnd.Uniform(3); i < n; ++i) cs.learners.push_back(RandomInt(rnd));
}

// Sets every field of Message (the FieldCount test below fails when one is added, so a new
// field cannot be forgotten here).
Message RandomMessage(Rand& rnd, MessageType type) {
  Message m;
  m.type = type;
  m.from = RandomInt(rnd);
  m.to = RandomInt(rnd);
  m.term = RandomInt(rnd);
  m.log_term = RandomInt(rnd);
  m.index = RandomInt(rnd);
  m.commit = RandomInt(rnd);
  m.reject = rnd.Chance(0.5);
  m.reject_hint = RandomInt(rnd);
  m.context = RandomBytes(rnd, rnd.Chance(0.5) ? 0 : 40);
  m.transfer = rnd.Chance(0.5);
  const size_t n = rnd.Chance(0.3) ? 0 : rnd.Uniform(8);
  for (size_t i = 0; i < n; ++i) {
    Entry e;
    e.term = RandomInt(rnd);
    e.index = RandomInt(rnd);
    e.type = rnd.Chance(0.2) ? EntryType::kConfChange : EntryType::kNormal;
    e.data = RandomBytes(rnd, rnd.Chance(0.1) ? 300 : 20);
    m.entries.push_back(std::move(e));
  }
  RandomSnapshot(rnd, &m);
  return m;
}

TEST(RaftCodecTest, EncodesEveryFieldOfMessageAndEntry) {
  // If this fails, a field was added to raft::Message or raft::Entry: encode it under a new
  // format version (codec.h), generate it in RandomMessage, then update the counts.
  EXPECT_EQ(FieldCount<Message>(), 13u);
  EXPECT_EQ(FieldCount<Entry>(), 4u);
  EXPECT_EQ(FieldCount<Snapshot>(), 2u);
  EXPECT_EQ(FieldCount<SnapshotMetadata>(), 3u);
  EXPECT_EQ(FieldCount<ConfState>(), 2u);
  EXPECT_EQ(AllMessageTypes().size(), 10u);
}

TEST(RaftCodecTest, DefaultMessageRoundTrips) {
  Message m;
  std::string b = EncodeMessage(m);
  EXPECT_EQ(b[0], 1);
  auto d = DecodeMessage(b);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, m);
}

TEST(RaftCodecTest, RandomMessagesOfEveryTypeRoundTrip) {
  Rand rnd(20261126);
  const auto types = AllMessageTypes();
  for (int i = 0; i < 5000; ++i) {
    Message m = RandomMessage(rnd, types[i % types.size()]);
    std::string b = EncodeMessage(m);
    auto d = DecodeMessage(b);
    ASSERT_TRUE(d.ok()) << d.status().ToString() << " for " << DescribeMessage(m);
    ASSERT_EQ(*d, m) << DescribeMessage(m);
    std::string prefixed = "hdr";
    EncodeMessageTo(m, &prefixed);
    ASSERT_EQ(prefixed, "hdr" + b);
  }
}

TEST(RaftCodecTest, EveryTruncationIsRefused) {
  Rand rnd(7);
  for (auto type : AllMessageTypes()) {
    Message m = RandomMessage(rnd, type);
    m.entries.push_back(Entry{3, 4, EntryType::kNormal, "data"});
    std::string b = EncodeMessage(m);
    for (size_t len = 0; len < b.size(); ++len) {
      auto d = DecodeMessage(std::string_view(b).substr(0, len));
      ASSERT_FALSE(d.ok()) << "prefix of " << len << " of " << b.size() << " bytes accepted";
      EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(RaftCodecTest, SnapshotsUseVersionTwoAndOnlyWhenPresent) {
  Message m;
  m.type = MessageType::kSnap;
  m.from = 1;
  m.to = 2;
  EXPECT_EQ(EncodeMessage(m)[0], 1);  // no snapshot: readable by version-1 readers
  m.snapshot = Snapshot{{7, 3}, "image"};
  std::string b = EncodeMessage(m);
  EXPECT_EQ(b[0], 2);
  auto d = DecodeMessage(b);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, m);
  // Version 2 with the default snapshot has a shorter spelling, so it is refused.
  std::string empty = EncodeMessage(Message{});
  empty[0] = 2;
  empty += std::string("\0\0\0", 3);
  auto e = DecodeMessage(empty);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("empty snapshot"), std::string::npos)
      << e.status().ToString();
  // A truncated snapshot is refused like any other truncation.
  for (size_t len = 0; len < b.size(); ++len) {
    ASSERT_FALSE(DecodeMessage(std::string_view(b).substr(0, len)).ok()) << len;
  }
}

TEST(RaftCodecTest, SnapshotConfigurationsUseVersionThree) {
  Message m;
  m.type = MessageType::kSnap;
  m.from = 1;
  m.to = 2;
  m.snapshot = Snapshot{{7, 3, ConfState{{1, 2, 300}, {4}}}, "image"};
  std::string b = EncodeMessage(m);
  EXPECT_EQ(b[0], 3);
  auto d = DecodeMessage(b);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, m);
  for (size_t len = 0; len < b.size(); ++len) {
    ASSERT_FALSE(DecodeMessage(std::string_view(b).substr(0, len)).ok()) << len;
  }
  // Version 3 with an empty configuration has a shorter spelling (version 2): refused.
  m.snapshot.metadata.conf_state = ConfState{};
  std::string v2 = EncodeMessage(m);
  v2[0] = 3;
  v2 += std::string("\0\0", 2);
  auto e = DecodeMessage(v2);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("empty configuration"), std::string::npos)
      << e.status().ToString();
  // A forged id count is refused before anything is allocated.
  std::string huge = EncodeMessage(m);
  huge[0] = 3;
  huge += std::string("\xff\xff\xff\xff\x0f", 5);
  auto h = DecodeMessage(huge);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("cannot fit"), std::string::npos) << h.status().ToString();
}

TEST(RaftCodecTest, TrailingBytesAreRefused) {
  std::string b = EncodeMessage(Message{});
  b.push_back('\0');
  auto d = DecodeMessage(b);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("trailing"), std::string::npos) << d.status().ToString();
}

TEST(RaftCodecTest, MalformedHeadersAreRefusedWithClearErrors) {
  const std::string good = EncodeMessage(Message{});
  struct Case {
    std::string bytes;
    std::string expect;
  };
  std::string v4 = good;
  v4[0] = 4;
  std::string v0 = good;
  v0[0] = 0;
  std::string bad_type = good;
  bad_type[1] = static_cast<char>(200);
  std::string bad_flags = good;
  bad_flags[2] = 4;
  std::string long_varint = good.substr(0, 3) + std::string("\x80\x00", 2) + good.substr(4);
  std::string overflow =
      good.substr(0, 3) + std::string(9, '\xff') + std::string("\x02", 1) + good.substr(4);
  std::string bad_entry_type =
      good.substr(0, good.size() - 1) + std::string("\x01\x01\x01\x07\x00", 5);
  for (const Case& c : {Case{"", "empty"}, Case{v4, "version 4"}, Case{v0, "version 0"},
                        Case{bad_type, "unknown message type 200"}, Case{bad_flags, "flag bits"},
                        Case{long_varint, "non-canonical"}, Case{overflow, "overflows"},
                        Case{bad_entry_type, "unknown entry type 7"}}) {
    auto d = DecodeMessage(c.bytes);
    ASSERT_FALSE(d.ok()) << c.expect;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find(c.expect), std::string::npos) << d.status().ToString();
  }
}

TEST(RaftCodecTest, RandomByteFlipsNeverCrashAndAcceptOnlyCanonicalEncodings) {
  Rand rnd(99);
  const auto types = AllMessageTypes();
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = EncodeMessage(RandomMessage(rnd, types[rnd.Uniform(types.size())]));
    const int flips = 1 + static_cast<int>(rnd.Uniform(3));
    for (int f = 0; f < flips; ++f) {
      b[rnd.Uniform(b.size())] ^= static_cast<char>(1 + rnd.Uniform(255));
    }
    auto d = DecodeMessage(b);
    if (d.ok()) {
      ++accepted;
      ASSERT_EQ(EncodeMessage(*d), b);
    } else {
      ASSERT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    }
  }
  // Flips inside integers and data are valid messages; the test must see both outcomes.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 20000);
}

TEST(RaftCodecTest, HugeClaimedLengthsAreRefusedWithoutAllocatingThem) {
  std::string head = EncodeMessage(Message{});
  // Header (version, type, flags, seven zero varints), then the context length.
  head.resize(10);
  std::string huge_context = head;
  huge_context += std::string("\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9);  // 2^63 - 1
  huge_context += "abc";
  std::string huge_count = head;
  huge_count.push_back('\0');                            // empty context
  huge_count += std::string("\xff\xff\xff\xff\x0f", 5);  // 2^32 - 1 entries
  huge_count += std::string(64, '\x01');
  std::string huge_entry = EncodeMessage(Message{});
  huge_entry.pop_back();                                     // the entry count 0
  huge_entry += std::string("\x01\x01\x01\x00", 4);          // one entry: term, index, type
  huge_entry += std::string("\xff\xff\xff\xff\xff\x01", 6);  // data length ~2^36
  huge_entry += "xyz";

  for (const std::string& b : {huge_context, huge_count, huge_entry}) {
    g_max_alloc = 0;
    g_track_alloc = true;
    auto d = DecodeMessage(b);
    g_track_alloc = false;
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("left"), std::string::npos) << d.status().ToString();
    EXPECT_LT(g_max_alloc.load(), 4096u) << d.status().ToString();
  }
}

TEST(RaftCodecTest, LargeEntriesRoundTrip) {
  Message m;
  m.type = MessageType::kApp;
  m.from = 1;
  m.to = 2;
  for (uint64_t i = 1; i <= 10; ++i) {
    m.entries.push_back(
        Entry{2, i, EntryType::kNormal, std::string(1 << 20, static_cast<char>(i))});
  }
  auto d = DecodeMessage(EncodeMessage(m));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, m);
}

}  // namespace
}  // namespace dtx::raft
