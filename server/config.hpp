// Everything speedsrv's command line controls.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/limits.hpp"
#include "common/protocol.hpp"

namespace speed::server {

struct server_config {
    std::string bind_address;  // empty: every address, IPv6 and IPv4 (dual-stack) where available
    std::uint16_t port = proto::kDefaultPort;
    std::size_t threads = 0;  // data-plane threads; 0 = one per core
    std::size_t max_sessions = 100;
    std::chrono::milliseconds handshake_timeout{10'000};
    server_limits limits;
};

}  // namespace speed::server
