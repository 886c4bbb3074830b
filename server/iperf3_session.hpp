// One iperf3 client's control connection: the adapter between iperf3's control protocol and the server's
// test runners (server/runners/test_runner.hpp), as server/session.cpp is for speedsrv's own protocol.
//
// What each control byte means is decided by iperf3_session_protocol (pure, fuzzed); this class does the I/O:
// the cookie (read by server.cpp), PARAM_EXCHANGE and the parameters, CREATE_STREAMS and the data
// connections (server.cpp hands over each connection whose cookie names this session), TEST_START and
// TEST_RUNNING, the test on a tcp_runner (UDP: an iperf3_udp_runner, whose streams open with iperf3's connect
// datagram at the UDP listener) until the client's TEST_END, EXCHANGE_RESULTS with the server's
// receiver-side (upload) or sender-side (-R) figures (--bidir: both, on two runners at once), DISPLAY_RESULTS
// and IPERF_DONE. A refusal is SERVER_ERROR with iperf3's code, and the connection closes right after it
// (iperf3 3.21 waits for that); a failure of the server's own (a deadline, a stalled test) is
// SERVER_TERMINATE. Either way only this session ends.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "net/clock.hpp"
#include "net/control_channel.hpp"
#include "server/admission.hpp"
#include "server/iperf3_session_protocol.hpp"
#include "server/metrics.hpp"
#include "server/runners/iperf3_udp_runner.hpp"
#include "server/runners/test_result.hpp"
#include "server/runners/test_runner.hpp"
#include "server/session_registry.hpp"

namespace speed::server {

class iperf3_session : public std::enable_shared_from_this<iperf3_session> {
  public:
    // `cookie` is the 37 bytes the connection opened with; `admission` is the session's place under
    // --max-sessions and --max-sessions-per-host, given back when the session ends.
    iperf3_session(std::shared_ptr<server_context> context, asio::ip::tcp::socket socket,
                   asio::ip::tcp::endpoint peer, std::span<const std::uint8_t> cookie,
                   admission_control::slot admission);
    ~iperf3_session();

    static asio::awaitable<void> run(std::shared_ptr<iperf3_session> self);

    // Whether the session waits for its data connections (after CREATE_STREAMS, before TEST_START).
    bool creating_streams() const;
    // A data connection whose cookie (already read) names this session; closed if it does not fit.
    void attach_data(asio::ip::tcp::socket socket);
    // Ends the session from outside (server shutdown).
    void abort();

    const asio::ip::tcp::endpoint& peer() const { return peer_; }
    const std::string& cookie() const { return cookie_; }

  private:
    class events;  // iperf3's side of test_events

    asio::awaitable<void> serve();
    // Sends what the protocol replies and reads control bytes until it asks for something else than reading,
    // within `deadline`; throws session_error when the session ends with a failure.
    asio::awaitable<iperf3_step> next_step(net::clock::time_point deadline);
    asio::awaitable<void> send(const std::vector<std::uint8_t>& bytes);
    asio::awaitable<void> run_test(const iperf3_step& accepted);
    // --bidir: `upload` on runner_ and the same test the other way on reverse_runner_, at once.
    asio::awaitable<void> run_both_ways(const iperf3_step& accepted, runner_request upload);
    // A UDP test: waits until no other iperf3 session from the client's address waits for its UDP streams.
    asio::awaitable<void> wait_for_udp_connects_of_others();
    // The server's results for EXCHANGE_RESULTS, from what the runner measured or sent.
    // `first_stream` is the index of its first stream among the client's data connections (--bidir: the
    // server's sending streams follow the client's).
    iperf3::results results_of(const test_result& result, std::size_t first_stream = 0) const;
    iperf3::results udp_results_of(const test_result& result, std::size_t first_stream) const;
    std::unique_ptr<test_runner> make_udp_runner(runner_request what, iperf3_udp_runner::stream_roles roles);

    std::shared_ptr<server_context> context_;
    admission_control::slot admission_;  // declared after context_: given back before the context can go
    session_metrics metrics_;
    net::control_channel channel_;
    asio::ip::tcp::endpoint peer_;
    std::string cookie_;
    iperf3_session_protocol protocol_;
    net::clock::time_point test_end_deadline_{};  // the client's TEST_END, set when the test starts
    std::unique_ptr<test_runner> runner_;
    std::unique_ptr<test_runner> reverse_runner_;  // --bidir: the server's sending streams
    std::size_t streams_attached_ = 0;
    bool error_sent_ = false;  // SERVER_ERROR went out: nothing more is said
    std::vector<test_result> results_;
    // The payload bytes of the results the client was given: its upload's, and what the server sent.
    std::uint64_t reported_received_bytes_ = 0;
    std::uint64_t reported_sent_bytes_ = 0;
};

}  // namespace speed::server
