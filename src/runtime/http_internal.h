// Helpers shared by the HTTP translation units (http_util.cc, http_server.cc, http_client.cc).
// Internal: not part of the runtime's API.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dtx::runtime::internal {

inline char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline constexpr size_t kSmallRead = 4 * 1024;
inline constexpr size_t kLargeRead = 64 * 1024;

// How many bytes to read next with a Beast parser: small reads for the usual small message
// (little memory per connection), large ones while a big body streams in.
template <typename Parser>
size_t ReadSize(const Parser& p) {
  if (!p.is_header_done()) return kSmallRead;
  if (p.chunked()) return kLargeRead;
  const auto remaining = p.content_length_remaining();
  if (!remaining || *remaining <= kSmallRead) return kSmallRead;
  return static_cast<size_t>(std::min<std::uint64_t>(*remaining, kLargeRead));
}

}  // namespace dtx::runtime::internal
