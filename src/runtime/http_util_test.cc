#include <gtest/gtest.h>

#include "runtime/http.h"

namespace dtx::runtime {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(ParseUrlTest, FullUrl) {
  Result<Url> u = ParseUrl("http://example.com:8081/api/busi/TransOut?gid=abc&op=action#frag");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 8081);
  EXPECT_EQ(u->target, "/api/busi/TransOut?gid=abc&op=action");
  EXPECT_EQ(u->HostPort(), "example.com:8081");
}

TEST(ParseUrlTest, Defaults) {
  Result<Url> u = ParseUrl("HTTP://127.0.0.1");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/");

  Result<Url> q = ParseUrl("http://h?x=1");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->target, "/?x=1");
}

TEST(ParseUrlTest, Ipv6Literal) {
  Result<Url> u = ParseUrl("http://[::1]:9000/p");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 9000);
  EXPECT_EQ(u->target, "/p");
  EXPECT_EQ(u->HostPort(), "[::1]:9000");
}

TEST(ParseUrlTest, HttpsIsRejectedWithClearMessage) {
  Result<Url> u = ParseUrl("https://example.com/x");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(u.status().message(), "https is not supported");
}

TEST(ParseUrlTest, MalformedUrls) {
  const char* bad[] = {
      "",
      "example.com/x",
      "ftp://example.com/",
      "://example.com",
      "http://",
      "http:///path",
      "http://:80/",
      "http://host:/x",
      "http://host:0/",
      "http://host:65536/",
      "http://host:12a/",
      "http://host:-1/",
      "http://user:pw@host/",
      "http://ho st/",
      "http://host/a b",
      "http://host/\n",
      "http://[::1/",
      "http://[::1]x/",
      "http://[zz]/",
      "http://host%20/",
  };
  for (const char* url : bad) {
    Result<Url> u = ParseUrl(url);
    EXPECT_FALSE(u.ok()) << url;
    if (!u.ok()) {
      EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << url;
      EXPECT_FALSE(u.status().message().empty());
    }
  }
}

TEST(ParseUrlTest, ErrorNamesTheProblem) {
  EXPECT_NE(ParseUrl("http://h:99999/").status().message().find("port"), std::string::npos);
  EXPECT_NE(ParseUrl("gopher://h/").status().message().find("scheme"), std::string::npos);
}

TEST(UrlEncodeTest, KeepsUnreservedEscapesTheRest) {
  EXPECT_EQ(UrlEncode("abcXYZ019-._~"), "abcXYZ019-._~");
  EXPECT_EQ(UrlEncode("a b&c=d/e?f"), "a%20b%26c%3Dd%2Fe%3Ff");
  EXPECT_EQ(UrlEncode("+%"), "%2B%25");
  EXPECT_EQ(UrlEncode(std::string("\x00\xff", 2)), "%00%FF");
  EXPECT_EQ(UrlEncode(""), "");
}

TEST(UrlEncodeTest, RoundTripsThroughParseQuery) {
  const std::string key = "k y&=";
  const std::string value = "v+a%l/ue\xe4";
  Result<Pairs> q = ParseQuery(UrlEncode(key) + "=" + UrlEncode(value));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(*q, (Pairs{{key, value}}));
}

TEST(ParseQueryTest, SplitsAndDecodes) {
  Result<Pairs> q = ParseQuery("a=1&b=x%20y&c=p+q&flag&&d=&a=2");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(*q,
            (Pairs{{"a", "1"}, {"b", "x y"}, {"c", "p q"}, {"flag", ""}, {"d", ""}, {"a", "2"}}));
}

TEST(ParseQueryTest, EmptyAndValueWithEquals) {
  Result<Pairs> empty = ParseQuery("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  Result<Pairs> q = ParseQuery("x=a=b");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, (Pairs{{"x", "a=b"}}));
}

TEST(ParseQueryTest, MalformedEscapes) {
  for (const char* bad : {"a=%", "a=%4", "a=%zz", "%g1=1", "a=1&b=%2", "a=%%41"}) {
    Result<Pairs> q = ParseQuery(bad);
    EXPECT_FALSE(q.ok()) << bad;
    if (!q.ok()) {
      EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(PercentDecodeTest, PlusHandling) {
  EXPECT_EQ(PercentDecode("/a+b%2Fc", false).value(), "/a+b/c");
  EXPECT_EQ(PercentDecode("a+b", true).value(), "a b");
  EXPECT_FALSE(PercentDecode("abc%", false).ok());
}

TEST(HeaderValidationTest, TokensAndValues) {
  EXPECT_TRUE(IsHttpToken("Content-Type"));
  EXPECT_TRUE(IsHttpToken("X-Custom_1!"));
  EXPECT_FALSE(IsHttpToken(""));
  EXPECT_FALSE(IsHttpToken("Bad Name"));
  EXPECT_FALSE(IsHttpToken("a:b"));
  EXPECT_TRUE(IsValidHeaderValue("text/plain; q=1"));
  EXPECT_FALSE(IsValidHeaderValue("a\r\nX-Injected: 1"));
}

TEST(HttpRequestTest, QueryParamAndHeader) {
  HttpRequest r;
  r.query = {{"gid", "g1"}, {"op", "action"}, {"gid", "g2"}};
  r.headers = {{"content-type", "application/json"}};
  EXPECT_EQ(r.QueryParam("gid"), "g1");
  EXPECT_EQ(r.QueryParam("missing"), std::nullopt);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("x"), std::nullopt);
}

}  // namespace
}  // namespace dtx::runtime
