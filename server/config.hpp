// Everything speedsrv's command line controls (docs/operations.md lists every cap and its default).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/auth.hpp"
#include "common/limits.hpp"
#include "common/protocol.hpp"
#include "server/admission.hpp"
#include "server/web_server.hpp"

namespace speed::server {

struct server_config {
    std::string bind_address;  // empty: every address, IPv6 and IPv4 (dual-stack) where available
    std::uint16_t port = proto::kDefaultPort;
    std::size_t threads = 0;  // data-plane threads; 0 = one per core
    admission_limits admission;
    // A new connection's HELLO must arrive within this (and, with keys, the AUTH_RESPONSE after WELCOME).
    std::chrono::milliseconds handshake_timeout{5'000};
    // A session waits this long for its next test request.
    std::chrono::milliseconds idle_timeout{30'000};
    // A session ends this long after its HELLO, whatever it does: the default fits speedcli's tests many
    // times over, and 8 tests (--max-tests-per-session) of a minute each with a warm-up of up to 15 s.
    std::chrono::milliseconds max_session_time{600'000};
    // A test whose data stops moving for this long (client stopped reading or sending) is ended.
    std::chrono::milliseconds stall_timeout{10'000};
    server_limits limits;
    // Serve iperf3 clients on the same port (server/iperf3_session.hpp); --no-iperf3 turns it off.
    bool iperf3 = true;
    // The pre-shared keys of --auth-keys; null when the server does not require authentication.
    std::shared_ptr<const std::vector<auth::key>> auth_keys;
    // The browser test over HTTP (server/web_server.hpp) on this port of the --bind address; off when unset.
    std::optional<std::uint16_t> http_port;
    // --http-cors: the one origin allowed to call the API from elsewhere; empty: no CORS headers.
    std::string http_cors_origin;
    web_limits web;
};

}  // namespace speed::server
