// HTTP/1.1 runtime: URL helpers, an asynchronous server and a keep-alive client pool, both on a
// Boost.Asio io_context. This header is Beast-free on purpose (Beast is expensive to compile);
// only http_server.cc and http_client.cc include it.
//
// Both sides keep connections alive and carry one request at a time per connection. Every
// connection runs on its own strand, so the io_context may be run by one thread (the main mode)
// or by several.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "base/status.h"

namespace dtx::runtime {

// ---------------------------------------------------------------------------------------------
// URLs and query strings. Pure functions; thread-safe.

// An absolute http URL split into its parts.
struct Url {
  std::string scheme;  // always "http" (lower-cased)
  std::string host;    // name or IP literal; IPv6 without the brackets
  uint16_t port = 80;
  std::string target;  // path[?query], "/" when the URL has no path; the fragment is dropped

  // "host:port", with brackets around an IPv6 host. The key of the client's connection pool.
  std::string HostPort() const;
};

// Parses "http://host[:port][/path][?query][#fragment]". Errors (kInvalidArgument): another
// scheme ("https is not supported" for https), missing or malformed host, a bad or out-of-range
// port, user info ("user@host"), spaces or control characters anywhere.
Result<Url> ParseUrl(std::string_view url);

// Percent-encodes everything except the unreserved characters A-Z a-z 0-9 - . _ ~ (RFC 3986), so
// the result is safe as a query key or value.
std::string UrlEncode(std::string_view s);

// Decodes %XX escapes; with `plus_is_space` also '+' to ' ' (the query-string convention).
// A '%' not followed by two hex digits -> kInvalidArgument.
Result<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// Splits "a=1&b=x%20y" into decoded pairs in order: '+' means space, a key without '=' has an
// empty value, empty segments ("a=1&&b=2") are skipped. Malformed escapes -> kInvalidArgument.
Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

// RFC 7230 token (header names, methods): non-empty, only tchar characters.
bool IsHttpToken(std::string_view s);
// A header value we are willing to send: no CR, LF or NUL.
bool IsValidHeaderValue(std::string_view s);

// ---------------------------------------------------------------------------------------------
// Server.

struct HttpRequest {
  std::string method;                                      // "GET", "POST", ... as received
  std::string target;                                      // as received, path + query
  std::string path;                                        // percent-decoded path without query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::map<std::string, std::string> headers;  // names lower-cased; repeats joined with ", "
  std::string body;

  // Returns the first value of query parameter `name`, if any.
  std::optional<std::string> QueryParam(std::string_view name) const;
  // Returns the value of header `lower_case_name`, if any.
  std::optional<std::string> Header(std::string_view lower_case_name) const;
};

struct HttpResponse {
  int status = 200;  // 100..999; anything else is answered as 500
  std::string content_type = "application/json";
  std::string body;
  // Extra headers. Content-Length, Transfer-Encoding and Connection are set by the server and
  // ignored here; a name that is not a token or a value with CR/LF turns the response into a 500.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Sends the response. Call it exactly once, from any thread, while the io_context exists; later
// calls are ignored. If the connection died meanwhile the response is dropped silently. A
// Responder destroyed without being called answers 500 (unless the server was stopped).
using Responder = std::function<void(HttpResponse)>;
// Called once per complete request, on the connection's strand: with several io threads, calls
// for different connections run concurrently. It must not block; it may answer later.
using HttpHandler = std::function<void(HttpRequest&&, Responder)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                    // 0 = ephemeral
  size_t max_body_bytes = 1 << 20;      // larger bodies get 413
  size_t max_header_bytes = 16 * 1024;  // larger headers get 431
  int64_t idle_timeout_ms = 60'000;     // a connection waiting for the next request is closed
  int64_t read_timeout_ms = 30'000;     // to read the rest of a request; also the write timeout
};

// The server answers some requests by itself, always with a JSON {"message": "..."} body and
// closing the connection afterwards: 400 for malformed HTTP (or a malformed path/query escape,
// which keeps the connection), 413 for a body over the limit, 431 for a header over the limit.
// It answers "Expect: 100-continue" with an interim 100. HEAD responses carry no body.
//
// Thread-safety: port() and the counters are thread-safe; Stop() may be called from any thread,
// including from inside the handler.
class HttpServer {
 public:
  // Binds and starts accepting on `io`. Errors: a host that is neither an IP literal nor
  // resolvable -> kInvalidArgument; bind/listen failure (port in use, address not local) ->
  // kUnavailable. The messages name the address.
  // REQUIRES: `io` outlives the server, and the server's connections, which live until the
  // io_context has run their close or is destroyed.
  static Result<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io, HttpServerOptions o,
                                                   HttpHandler h);

  uint16_t port() const;

  // Stops accepting and closes every connection (asynchronously, on their strands); requests
  // whose handler has not answered yet are dropped. Idempotent. After Stop returns no new
  // handler call begins on the calling thread; with several io threads one that had already
  // begun may still be running.
  void Stop();

  // Calls Stop().
  ~HttpServer();

  // For tests and metrics.
  uint64_t connections_accepted() const;
  size_t open_connections() const;

  class Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Client.

struct HttpCallSpec {
  std::string method = "POST";
  std::string url;  // absolute http URL incl. query
  // Sent as given. Host, Content-Length, Transfer-Encoding and Connection are set by the client
  // and ignored here. Without a Content-Type, a non-empty body is sent as application/json.
  std::map<std::string, std::string> headers;
  std::string body;
  int64_t timeout_ms = 3'000;  // whole call: connect, send, receive
  // Whether a request written on a pooled connection that then ends without a byte of answer is
  // sent again on a fresh connection (the keep-alive race; see HttpClient). A server that
  // crashed after acting on it would then see it twice: set false for requests that must not
  // run twice; such a call fails with request_sent = true (outcome unknown) instead.
  bool retry_if_unanswered = true;
};

struct HttpCallResult {
  // OK when an HTTP response arrived (any status code). Otherwise:
  //   kInvalidArgument   bad URL, method or header; nothing was sent.
  //   kUnavailable       could not connect, or the connection failed; a request that may have
  //                      reached the peer is reported as kUnavailable only if the peer closed
  //                      or reset the connection, never on a timeout.
  //   kDeadlineExceeded  timeout after the request started to be sent: outcome unknown.
  //                      (A timeout while resolving or connecting is kUnavailable: nothing
  //                      was sent.)
  //   kResourceExhausted the response body exceeded max_response_bytes.
  Status status;
  int http_status = 0;
  std::string body;
  // True once the whole request was written to the peer: on an error the peer may have acted
  // on it (outcome unknown). False when nothing that the peer could act on was sent (connect
  // failures, a write cut short - a server acts only on complete requests).
  bool request_sent = false;
};

struct HttpClientOptions {
  size_t max_idle_per_host = 256;       // idle keep-alive connections kept per host:port
  size_t max_response_bytes = 8 << 20;  // larger response bodies fail the call
  // An idle connection older than this is closed instead of reused, so the pool rarely meets a
  // connection that the server's own idle timeout (60 s for HttpServer) has closed.
  int64_t max_idle_ms = 30'000;
  // A connection idle for at least this long is probed (one non-blocking peek) before reuse; if
  // the peer closed it or sent something unsolicited it is dropped instead of used.
  int64_t probe_idle_after_ms = 1'000;
};

// A pool of keep-alive connections keyed by host:port.
//
// Retry and at-most-once: a connection taken from the pool may have been closed by the peer
// while it sat idle (the keep-alive race, RFC 7230 section 6.3.1). Such a call is retried once on
// a fresh connection, and ONLY when the peer cannot have processed the request:
//   - writing the request failed: a server acts on a request only after reading all of it, and
//     the write fails only when the peer has closed or reset the connection before taking all of
//     it; or
//   - the read ended (EOF or reset) before a single byte of the response: a server closing an
//     idle connection does so without reading our request; only a server that read the
//     request, acted on it and then closed without answering (a crash) could have processed it.
//     dtx participants must absorb repeats anyway (at-least-once with the barrier), so this
//     narrow case is accepted, as in every HTTP client that retries the keep-alive race.
// A failure on a fresh connection, a timeout, or a failure after part of the response arrived
// is never retried: the outcome is reported to the caller.
//
// Thread-safety: Call() may be called from any thread. `done` runs on the io_context.
class HttpClient {
 public:
  explicit HttpClient(boost::asio::io_context& io, HttpClientOptions o = {});

  // Sends one request on a pooled keep-alive connection (a new connection if none is idle).
  // `done` runs exactly once, on the io_context (never inside Call), if the io_context runs.
  void Call(HttpCallSpec spec, std::function<void(HttpCallResult)> done);

  // Closes idle connections and aborts calls in flight: their `done` runs with kUnavailable
  // when the io_context runs next. REQUIRES: the io_context still exists.
  ~HttpClient();

  // For tests and metrics.
  uint64_t connections_opened() const;
  size_t idle_connections() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dtx::runtime
