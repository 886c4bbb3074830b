// The server's test engine, apart from any protocol a client speaks: a runner moves one test's data (TCP data
// connections or UDP flows) and measures it; a front-end (server/session.cpp for the speedsrv protocol; the
// iperf3 and HTTP front-ends to come) speaks to the client and implements test_events. The phases every test
// goes through are written once, in run_test():
//
//   open        the runner makes what the client attaches to          events.accepted(setup)
//   attach      every data connection or flow arrives (deadline)
//   start       the runner starts moving data                        events.ready()
//   window      download: send until the client asks to stop          events.take_stop()
//               upload: measure the receiver window                  events.interval / udp_interval
//               (a TCP upload that ends at the client's stop: until events.take_stop())
//   stop        upload: a timed window closed                         events.window_closed()
//   reports     the test's figures, as data                           events.result(result)
//   finish      the runner's connections end
//
// Failures throw net::session_error (code and text for the client). Everything runs on the front-end's
// control executor; the data moves on the data-plane threads (net::io_pool).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/limits.hpp"
#include "common/measurement.hpp"
#include "common/protocol.hpp"
#include "net/clock.hpp"
#include "net/stream_group.hpp"
#include "server/runners/test_result.hpp"

namespace speed::server {

// A test to run: validated against the server's limits before it gets here.
struct runner_request {
    proto::test_request test;
    server_limits limits;                      // pacing, the byte budget, the UDP rate cap
    std::chrono::nanoseconds stall_timeout{};  // --stall-timeout, stretched for the test's pace
    // A TCP upload's server probes the client's data connections (docs/protocol.md, "Self probes"); a client
    // that never reads them (iperf3's) gets none.
    bool self_probes = true;
    // How the data connections close at the test's normal end: with a reset (speedcli reads its results on
    // the control connection) or in order (iperf3 clients keep reading their data connections and fail on a
    // reset).
    net::stream_group::closing closing = net::stream_group::closing::abortive;
    // A TCP upload the client ends (iperf3's -n, -k, --bidir): the window runs from the first byte to its
    // stop (events.take_stop(), within events.stop_timeout()), not the plan, or to the arrival of the last
    // byte written before it, if later; it takes all those bytes, at least `least_bytes`.
    bool window_ends_at_stop = false;
    std::uint64_t least_bytes = 0;

    // The request for `test` under the server's caps and its --stall-timeout (`configured_stall`), stretched
    // for very slowly paced tests (common/limits.hpp): what every front-end hands its runner.
    static runner_request for_test(const proto::test_request& test, const server_limits& limits,
                                   std::chrono::nanoseconds configured_stall);
};

// What the client needs to attach to the test (speedsrv: TEST_ACCEPT and, for UDP, UDP_SETUP).
struct test_setup {
    std::string congestion;  // TCP: the congestion control of the server's data sockets
    struct udp_flows {
        std::uint64_t token = 0;
        std::uint16_t port = 0;
        std::uint64_t max_bitrate = 0;  // the server's cap in the test's direction, 0 = none
    };
    std::optional<udp_flows> udp;
};

// What a runner tells its front-end, and asks it, while a test runs. A call that throws ends the test.
class test_events {
  public:
    virtual ~test_events() = default;

    // The runner -> the client.
    virtual asio::awaitable<void> accepted(const test_setup& setup) = 0;
    // Every data connection or flow is attached and the runner moves data: the client may start.
    virtual asio::awaitable<void> ready() = 0;
    // An upload's receiver closed an interval (TCP; UDP with its loss figures).
    virtual asio::awaitable<void> interval(const measure::interval& closed) = 0;
    virtual asio::awaitable<void> udp_interval(const proto::udp_interval_report& report) = 0;
    // A TCP download's sender read self probe bytes on its data connections (docs/protocol.md, "Self
    // probes").
    virtual asio::awaitable<void> self_probe_marks(const std::vector<proto::self_probe_mark>& marks) = 0;
    // An upload's receiver window closed: the client stops sending.
    virtual asio::awaitable<void> window_closed() = 0;
    // The test's figures; the runner's connections are still open until finish.
    virtual asio::awaitable<void> result(const test_result& result) = 0;

    // The client -> the runner.
    // Whether the client has sent something (its STOP, a self probe mark, its counts) before `deadline`.
    virtual asio::awaitable<bool> input_pending(net::clock::time_point deadline) = 0;
    // A download: how long the client has to ask for the end, from when the runner starts waiting.
    virtual std::chrono::milliseconds stop_timeout() const = 0;
    // Reads the client's request to end a download; anything else fails the test.
    virtual asio::awaitable<void> take_stop() = 0;
    // A TCP upload while its window is open: reads the client's answer to a self probe.
    virtual asio::awaitable<proto::self_probe_mark> take_self_probe_mark() = 0;
    // A UDP upload after window_closed(): reads the client's own count of what it sent.
    virtual asio::awaitable<proto::udp_sender_report> take_udp_sender_counts() = 0;
    // The front-end was told to end (server shutdown): setup stops waiting.
    virtual bool aborted() const = 0;
};

class test_runner {
  public:
    virtual ~test_runner() = default;

    virtual const runner_request& request() const = 0;
    // Makes what the client attaches to.
    virtual test_setup open() = 0;
    // A TCP data connection for stream `index`: false (the socket closes) when it does not fit.
    virtual bool attach_connection(std::size_t index, asio::ip::tcp::socket socket) = 0;
    // Waits until every data connection or flow arrived; throws at the protocol's setup deadline.
    virtual asio::awaitable<void> attach_all(test_events& events) = 0;
    // Starts moving data, just before the client is told it may start.
    virtual void start() = 0;
    // A download, once the client was told: sends until the client asks to stop, and returns what was sent.
    virtual asio::awaitable<test_result> send(test_events& events) = 0;
    // An upload, once the client was told: measures the receiver window and returns the figures.
    virtual asio::awaitable<test_result> receive(test_events& events) = 0;
    // After the result went out.
    virtual asio::awaitable<void> finish() = 0;
    // A failure is being told to the client: a sender stops sending but keeps its connections, so the
    // client reads the reason before any data connection fails. True when it held something.
    virtual bool hold_sending() = 0;
    // Ends the test's connections or flows at once (a failure, the server's shutdown). Idempotent.
    virtual void abort() = 0;
    // What the test's UDP flows turned away (zero for TCP); valid after abort().
    virtual udp_flow_counters flow_counters() const = 0;
};

// How long a UDP sender waits for the client's request to end: the test's time plus `grace`, max(1 s, that
// time), within the front-end's own deadline (events.stop_timeout()), from now.
struct sender_stop_wait {
    net::clock::time_point give_up;
    std::chrono::milliseconds grace;
    static sender_stop_wait of(const proto::test_request& test, const test_events& events);
};

// The phase skeleton above, for every runner and front-end.
asio::awaitable<test_result> run_test(test_runner& runner, test_events& events);

}  // namespace speed::server
