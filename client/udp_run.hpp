// speedcli --udp: idle latency over UDP echo probes, and download and upload over UDP flows
// (docs/protocol.md, "UDP tests"; docs/methodology.md, "UDP").
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <stdexcept>

#include "client/auth.hpp"
#include "client/options.hpp"
#include "client/progress.hpp"
#include "client/report.hpp"
#include "net/control_channel.hpp"
#include "net/io_pool.hpp"

namespace speed::client {

// UDP does not get through: ICMP port unreachable, or no answer to the handshake at all.
class udp_path_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct udp_run {
    const test_options& options;
    progress_sink& progress;
    net::io_pool& data_pool;
    asio::ip::tcp::endpoint server;
    client_auth& auth;  // the session's authentication state: each TEST_REQUEST carries its TEST_AUTH
};

asio::awaitable<latency_report> measure_udp_latency(const udp_run& run, net::control_channel& control);
asio::awaitable<void> run_udp_download(const udp_run& run, net::control_channel& control,
                                       direction_report& report);
asio::awaitable<void> run_udp_upload(const udp_run& run, net::control_channel& control,
                                     direction_report& report);

// --length when not given: the UDP payload that fills a 1500-byte MTU for the server's address family.
std::uint32_t udp_length_for(const test_options& options, const asio::ip::address& server);

}  // namespace speed::client
