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
// GET `target` with a Host header, Connection: close.
http_response http_get(std::uint16_t port, const std::string& target,
                       std::chrono::milliseconds limit = std::chrono::seconds(5));

// A TCP port on 127.0.0.1 that was free a moment ago (for programs that cannot be given port 0).
std::uint16_t free_loopback_port();

}  // namespace speed::testing
