// The --metrics endpoint: a deliberately small HTTP/1.x responder that answers GET /metrics and nothing else
// (docs/operations.md, "Metrics", says why not a library). One request per connection; the request head is
// bounded in bytes and headers (common/http_request.hpp), every connection has one deadline for reading the
// request and writing the answer, and only a few scrapes are served at once: connections beyond that are
// closed at accept. It runs on the control thread; a scrape renders the counters in microseconds.
#pragma once

#include "common/result.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/http_request.hpp"

namespace speed::server {

struct metrics_endpoint_limits {
    http::request_limits request;
    std::chrono::milliseconds deadline{5'000};  // from accept to the answer written (--handshake-timeout)
    std::size_t max_connections = 4;            // scrapes served at once
};

// "ADDRESS:PORT" or "[IPV6]:PORT" (port 0 picks a free one); nothing, with `error` set, when it is not one.
result<asio::ip::tcp::endpoint> parse_listen_endpoint(const std::string& text);

class metrics_endpoint {
  public:
    // `render` produces the exposition; called on `context`'s thread for each GET /metrics.
    metrics_endpoint(asio::io_context& context, std::function<std::string()> render,
                     metrics_endpoint_limits limits = {});
    ~metrics_endpoint();

    // Binds and starts accepting. Throws std::system_error.
    void listen(const asio::ip::tcp::endpoint& endpoint);
    asio::ip::tcp::endpoint local_endpoint() const;
    // Stops accepting and closes open scrapes. On the context's thread.
    void close();

    struct state;

  private:
    std::shared_ptr<state> state_;
};

}  // namespace speed::server
