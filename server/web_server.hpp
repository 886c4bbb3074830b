// speedsrv --http-port: the HTTP side of the browser speed test (docs/protocol.md, "Browser test (HTTP)";
// docs/architecture.md says why RESTinio). It serves the embedded page (server/web/) and the session API, on
// the web thread: sessions take their slots from the same admission control as native sessions, which
// lives on the control thread without locks. Every request is bounded in size (URL, headers, body) and time,
// connections are capped in total and per host, and each session has a byte budget, a deadline and an idle
// expiry.
#pragma once

#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace speed::server {

struct server_context;

struct web_limits {
    std::size_t max_connections = 256;  // open HTTP connections; more wait in the backlog
    // Open HTTP connections from one host (--ipv4-host-prefix, --ipv6-host-prefix); more are closed at
    // accept. A browser opens at most 6 to one server (HTTP/1.1), and one host may run
    // --max-sessions-per-host (4) sessions: 4 browsers behind one address still fit, while one host holds
    // less than a tenth of max_connections.
    std::size_t max_connections_per_host = 24;
    std::uint64_t upload_chunk_max_bytes = 1 << 20;          // one upload body (and any request body)
    std::uint64_t download_request_max_bytes = 64ull << 20;  // one download's N
    std::size_t max_url_bytes = 2048;
    std::size_t max_header_name_bytes = 256;
    std::size_t max_header_value_bytes = 8192;
    std::size_t max_header_fields = 64;
    // A whole request (head and body), and a kept-alive connection's wait for its next one, must arrive
    // within this: the slow-header (slowloris) bound. 1 MiB bodies need 0.84 Mbit/s per request at the
    // default.
    std::chrono::milliseconds request_timeout{10'000};
    // Each write of a response (up to 64 pieces of 32 KiB, 2 MiB) must complete within this.
    std::chrono::milliseconds write_timeout{30'000};
    // A session lives at most min(--max-session-time, 2 × --max-duration + this): a download and an upload
    // phase and the latency probes around them.
    std::chrono::milliseconds session_slack{30'000};
};

struct web_config {
    asio::ip::tcp::endpoint endpoint;
    std::string cors_origin;  // empty: no CORS headers at all
    web_limits limits;
};

class web_server {
  public:
    explicit web_server(std::shared_ptr<server_context> context, web_config config);
    ~web_server();
    web_server(const web_server&) = delete;
    web_server& operator=(const web_server&) = delete;

    // Binds and starts serving. Throws std::system_error (or RESTinio's exception) when it cannot.
    void start();
    asio::ip::tcp::endpoint local_endpoint() const;
    // Ends every web session and stops serving. On the control thread.
    void shutdown();

    struct state;

  private:
    std::shared_ptr<state> state_;
};

}  // namespace speed::server
