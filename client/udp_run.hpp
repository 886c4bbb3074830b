// speedcli --udp: idle latency over UDP echo probes; the download and upload are
// client/runners/udp_runner.cpp (docs/protocol.md, "UDP tests"; docs/methodology.md, "UDP").
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <stdexcept>

#include "client/options.hpp"
#include "client/report.hpp"
#include "net/control_channel.hpp"

namespace speed::client {

// UDP does not get through: ICMP port unreachable, or no answer to the handshake at all.
class udp_path_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Idle latency over UDP: echo probes to the server's UDP echo (UDP_ECHO_REQUEST), `options.pings` of them.
asio::awaitable<latency_report> measure_udp_latency(const test_options& options,
                                                    const asio::ip::tcp::endpoint& server_control,
                                                    net::control_channel& control);

// --length when not given: the UDP payload that fills a 1500-byte MTU for the server's address family.
std::uint32_t udp_length_for(const test_options& options, const asio::ip::address& server);

}  // namespace speed::client
