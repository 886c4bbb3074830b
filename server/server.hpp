// The listening side of speedsrv: accepts connections, reads each one's HELLO, and hands it to its session
// (control), to a session's test (data) or to the probe echo (probe).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/io_pool.hpp"
#include "server/config.hpp"
#include "server/session_registry.hpp"
#include "server/udp_listener.hpp"
#include "server/web_server.hpp"

namespace speed::server {

class server {
  public:
    // Probe connections run on `probe_context` (server/probe_echo.hpp), the browser test (--http-port) on
    // `web_context` (server/web_server.hpp); both must outlive the server.
    server(asio::io_context& control_context, net::io_pool& data_pool, asio::io_context& probe_context,
           asio::io_context& web_context, server_config config);

    // Binds and starts accepting. Throws std::system_error when the address cannot be bound.
    void start();
    // The bound endpoint (useful with --port 0).
    asio::ip::tcp::endpoint local_endpoint() const;
    // The browser test's endpoint (--http-port), once started; nothing without --http-port.
    std::optional<asio::ip::tcp::endpoint> http_endpoint() const;
    // Stops accepting and ends every session. Call on the control context.
    void shutdown();
    // The --metrics exposition (server/metrics.hpp). Call on the control context.
    std::string render_metrics() const;

  private:
    std::shared_ptr<server_context> context_;
    std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
    std::unique_ptr<udp_listener> udp_;
    std::unique_ptr<web_server> web_;
};

}  // namespace speed::server
