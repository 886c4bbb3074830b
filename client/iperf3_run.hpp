// speedcli against an iperf3 server (`speedcli HOST --iperf3`): the download is one iperf3 test in reverse
// mode, measured by speedcli's own receiver; the upload is a second iperf3 test on a new control connection
// (iperf3 runs one test per connection), whose figure is the iperf3 server's receiver-side report. The
// control exchange is client/iperf3_client_protocol.hpp's; docs/methodology.md, "Against an iperf3 server".
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include "client/options.hpp"
#include "client/progress.hpp"
#include "client/report.hpp"
#include "net/io_pool.hpp"

namespace speed::client {

// Runs the directions `options` asks for against the iperf3 server at `server`; `control` is the first
// test's control connection, already connected. Throws unreachable_error for a server that never answers,
// net::session_error (from_peer, server_busy) for one that refuses or is busy, with iperf3's own words.
asio::awaitable<void> run_iperf3_tests(asio::ip::tcp::socket control, const asio::ip::tcp::endpoint& server,
                                       const test_options& options, progress_sink& progress,
                                       test_report& report, net::io_pool& data_pool);

}  // namespace speed::client
