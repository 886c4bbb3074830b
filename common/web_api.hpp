// The pure parts of speedsrv's browser test (docs/protocol.md, "Browser test (HTTP)"): which endpoint a
// request path names, a session id's text form, the `bytes=` of a download, and the receiver's binning of
// upload bodies. No sockets, no clocks: server/web_server.cpp feeds them peer bytes and its own timestamps.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace speed::web {

// A session id: this many random bytes, written as twice as many lowercase hex characters.
inline constexpr std::size_t kSessionIdBytes = 16;
inline constexpr std::size_t kSessionIdChars = 2 * kSessionIdBytes;

std::string session_id_text(std::span<const std::uint8_t, kSessionIdBytes> bytes);
bool is_session_id(std::string_view text);

// What a request path names. Session endpoints carry the id as written in the path (already checked by
// is_session_id).
enum class endpoint {
    page,             // GET /
    script,           // GET /speedtest.js
    style,            // GET /speedtest.css
    chart,            // GET /chart.min.js
    sessions,         // POST /api/sessions
    session,          // DELETE /api/sessions/ID
    ping,             // GET /api/sessions/ID/ping
    download,         // GET /api/sessions/ID/download?bytes=N
    upload,           // POST (a body) or GET (the figures) /api/sessions/ID/upload
    unknown_session,  // /api/sessions/X... where X is not a session id: 404 like an unknown id
    none,             // anything else: 404
};

struct route {
    endpoint target = endpoint::none;
    std::string_view id;  // for session endpoints, a view into the path
};

// `path` without the query (RESTinio's header().path()).
route parse_route(std::string_view path);

// The N of `bytes=N` in a query string ("bytes=1048576" or "r=0.3&bytes=1048576"): decimal digits only, at
// most 20; nothing when absent, empty, malformed or above `max`. A value of 0 is allowed (an empty body).
std::optional<std::uint64_t> parse_download_bytes(std::string_view query, std::uint64_t max);

// The receiver's figures of a session's upload: each body's bytes at the time it fully arrived, binned by
// that time into intervals counted from the first body's arrival (docs/methodology.md, "Browser test").
class upload_bins {
  public:
    // Bodies arriving after `max_intervals` intervals count into the last one (the session's deadline keeps
    // that from happening: a server clock, not the peer, decides arrival times).
    upload_bins(std::uint64_t interval_ns, std::size_t max_intervals);

    // `arrival_ns` on a monotonic clock; earlier than the first body's is taken as the first body's.
    void add(std::uint64_t arrival_ns, std::uint64_t bytes);

    struct interval {
        double start = 0;  // seconds from the first body's arrival
        double end = 0;
        std::uint64_t bytes = 0;
    };
    // Every interval from the first to the one with the latest body, empty ones included.
    std::vector<interval> intervals() const;
    std::uint64_t bytes_total() const { return bytes_total_; }
    std::uint64_t bodies() const { return bodies_; }
    double interval_seconds() const { return static_cast<double>(interval_ns_) / 1e9; }

  private:
    std::uint64_t interval_ns_;
    std::size_t max_intervals_;
    std::optional<std::uint64_t> first_ns_;
    std::vector<std::uint64_t> bins_;
    std::uint64_t bytes_total_ = 0;
    std::uint64_t bodies_ = 0;
};

}  // namespace speed::web
