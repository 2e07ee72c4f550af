#include <charconv>
#include <string>

#include "runtime/http.h"
#include "runtime/http_internal.h"

namespace dtx::runtime {
namespace {

using internal::AsciiLower;
using internal::EqualsIgnoreCase;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Quotes untrusted input inside error messages, shortened so a huge URL cannot bloat a log line.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 200;
  std::string out = "\"";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out.append("...");
  out.push_back('"');
  return out;
}

bool IsHostChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool IsIpv6Char(char c) { return HexValue(c) >= 0 || c == ':' || c == '.'; }

}  // namespace

std::string Url::HostPort() const {
  std::string out;
  out.reserve(host.size() + 8);
  if (host.find(':') != std::string::npos) {
    out.push_back('[');
    out.append(host);
    out.push_back(']');
  } else {
    out.append(host);
  }
  out.push_back(':');
  out.append(std::to_string(port));
  return out;
}

Result<Url> ParseUrl(std::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return InvalidArgument("URL contains a space or control character: " + Quote(url));
    }
  }
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return InvalidArgument("URL has no scheme (expected http://host...): " + Quote(url));
  }
  const std::string_view scheme = url.substr(0, sep);
  if (EqualsIgnoreCase(scheme, "https")) return InvalidArgument("https is not supported");
  if (!EqualsIgnoreCase(scheme, "http")) {
    return InvalidArgument("unsupported URL scheme " + Quote(scheme) + " (only http)");
  }
  std::string_view rest = url.substr(sep + 3);
  const size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument("user info in URLs is not supported: " + Quote(url));
  }

  Url out;
  out.scheme = "http";
  std::string_view host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument("unterminated IPv6 literal in URL: " + Quote(url));
    }
    host = authority.substr(1, close - 1);
    for (char c : host) {
      if (!IsIpv6Char(c)) return InvalidArgument("malformed IPv6 literal in URL: " + Quote(url));
    }
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument("malformed host in URL: " + Quote(url));
      port_text = after.substr(1);
      if (port_text.empty()) return InvalidArgument("empty port in URL: " + Quote(url));
    }
  } else {
    const size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return InvalidArgument("empty port in URL: " + Quote(url));
    }
    for (char c : host) {
      if (!IsHostChar(c)) return InvalidArgument("malformed host in URL: " + Quote(url));
    }
  }
  if (host.empty()) return InvalidArgument("URL has no host: " + Quote(url));
  out.host.assign(host);

  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return InvalidArgument("bad port " + Quote(port_text) + " in URL " + Quote(url));
    }
    out.port = static_cast<uint16_t>(value);
  }

  const size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) rest = rest.substr(0, fragment);
  if (rest.empty() || rest.front() == '?') out.target.push_back('/');
  out.target.append(rest);
  return out;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

Result<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) {
        return InvalidArgument("truncated percent-escape at offset " + std::to_string(i) + " in " +
                               Quote(s));
      }
      const int h = HexValue(s[i + 1]);
      const int l = HexValue(s[i + 2]);
      if (h < 0 || l < 0) {
        return InvalidArgument("malformed percent-escape at offset " + std::to_string(i) + " in " +
                               Quote(s));
      }
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    const std::string_view segment = query.substr(pos, amp - pos);
    pos = amp + 1;
    if (segment.empty()) continue;
    const size_t eq = segment.find('=');
    Result<std::string> key = PercentDecode(segment.substr(0, eq), true);
    if (!key.ok()) return key.status();
    std::string value;
    if (eq != std::string_view::npos) {
      Result<std::string> v = PercentDecode(segment.substr(eq + 1), true);
      if (!v.ok()) return v.status();
      value = std::move(v).value();
    }
    out.emplace_back(std::move(key).value(), std::move(value));
  }
  return out;
}

bool IsHttpToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool IsValidHeaderValue(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

std::optional<std::string> HttpRequest::QueryParam(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::Header(std::string_view lower_case_name) const {
  const auto it = headers.find(std::string(lower_case_name));
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

}  // namespace dtx::runtime
