// Everything the speed test part of speedcli's command line controls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/server_list.hpp"
#include "common/auth.hpp"
#include "common/protocol.hpp"
#include "common/time_units.hpp"

namespace speed::client {

enum class address_family { any, ipv4, ipv6 };

// What speedcli sets on its own sockets. They apply to speedcli's end of each connection only: the server's
// sockets keep its system's settings (docs/json.md, "parameters").
struct socket_settings {
    std::string bind_address;     // -B: every connection's local address ("" = the route's)
    std::uint16_t data_port = 0;  // --cport: data stream i uses local port data_port + i (0 = any)
    std::uint64_t window = 0;     // -w: SO_SNDBUF and SO_RCVBUF of the TCP data sockets (0 = the system's)
    std::uint32_t mss = 0;        // -M: TCP_MAXSEG of the TCP data sockets (0 = the path's)
    std::optional<std::uint8_t> tos;  // -S or --dscp: IP TOS / IPv6 traffic class of the data sockets
};

struct test_options {
    std::string host;
    std::uint16_t port = proto::kDefaultPort;
    address_family family = address_family::any;
    double duration_seconds = 10.0;  // per direction, the measured window
    double omit_seconds = 0.0;       // warm-up before the window, reported separately
    double interval_seconds = 1.0;   // 0 = no interval reports
    std::uint16_t streams = 1;
    std::uint64_t bitrate = 0;  // bits/s per direction (TCP: kernel pacing); 0 = unlimited (UDP: adaptive)
    std::string congestion;     // TCP congestion control for the data sockets
    bool download = true;
    bool upload = true;
    bool bidir = false;   // --bidir: download and upload at once, in two sessions
    unsigned pings = 20;  // idle latency probes; 0 skips the idle latency phase
    double ping_interval_seconds = 0.05;
    double loaded_ping_interval_seconds = 0.1;  // probes during download and upload; 0 = none
    double connect_timeout_seconds = 5.0;
    std::size_t threads = 0;  // data-plane threads; 0 = min(streams, cores)
    bool json = false;
    std::optional<auth::key> auth_key;  // --auth-key (and --auth-key-name), for servers that require one
    bool udp = false;                   // --udp: latency probes, download and upload over UDP
    std::uint32_t udp_length = 0;       // UDP payload bytes per datagram; 0 = fill a 1500-byte MTU
    bool iperf3 = false;                // --iperf3: the server is an iperf3 server (client/iperf3_run.hpp)
    socket_settings sockets;
    std::vector<server_address> servers;  // --servers: candidates to time; the test runs against the nearest
};

// The TEST_REQUEST of a TCP test in direction `dir` with these options.
inline proto::test_request tcp_request_for(const test_options& options, proto::direction dir) {
    proto::test_request request;
    request.dir = dir;
    request.proto = proto::transport::tcp;
    request.streams = options.streams;
    request.duration_ms = units::seconds_to_wire_ms(options.duration_seconds);
    request.omit_ms = units::seconds_to_wire_ms(options.omit_seconds);
    request.interval_ms = units::seconds_to_wire_ms(options.interval_seconds);
    request.bitrate = options.bitrate;
    request.congestion = options.congestion;
    return request;
}

}  // namespace speed::client
