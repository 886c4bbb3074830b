// A minimal HTTP/1.x client for tests: GET over loopback with a time limit, and raw connections for abuse
// tests of speedsrv's --metrics endpoint.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "tests/support/exposition.hpp"

namespace speed::testing {

struct http_response {
    int status = 0;  // 0 when no status line arrived
    std::string head;
    std::string body;
};

// Sends `request` (raw bytes) to 127.0.0.1:`port` and reads until the server closes or `limit` passes.
http_response http_exchange(std::uint16_t port, const std::string& request, std::chrono::milliseconds limit);
// As http_exchange, from the loopback address `source` (127.0.0.0/8 is all loopback: another "host").
http_response http_exchange_from(const std::string& source, std::uint16_t port, const std::string& request,
                                 std::chrono::milliseconds limit);
// GET `target` with a Host header, Connection: close.
http_response http_get(std::uint16_t port, const std::string& target,
                       std::chrono::milliseconds limit = std::chrono::seconds(5));

// METHOD `target` with a Host header, Connection: close, `headers` ("Name: value\r\n" lines) and `body`
// (with its Content-Length).
http_response http_request(std::uint16_t port, const std::string& method, const std::string& target,
                           const std::string& body = {}, const std::string& headers = {},
                           std::chrono::milliseconds limit = std::chrono::seconds(5));
// A header's value in a response head (the name case-insensitively), or nothing.
std::optional<std::string> header_value(const http_response& response, const std::string& name);

// A TCP port on 127.0.0.1 that was free a moment ago (for programs that cannot be given port 0).
std::uint16_t free_loopback_port();

}  // namespace speed::testing
