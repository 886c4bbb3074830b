// speedcli's direction runners (client/runners/) driven through a fake events sink against an in-test peer
// that plays the server on real loopback sockets: the peer's replies are known bytes, so the events' order
// and the result's fields are exact.
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "client/runners/direction_runner.hpp"
#include "net/clock.hpp"
#include "net/control_channel.hpp"
#include "net/io_pool.hpp"
#include "tests/support/recording_events.hpp"

using namespace std::chrono_literals;
using asio::ip::tcp;
using net_clock = speed::net::clock;
namespace proto = speed::proto;
namespace client = speed::client;

namespace {

constexpr auto kPeerDeadline = 5s;

proto::test_request tcp_request(proto::direction dir) {
    proto::test_request request;
    request.dir = dir;
    request.proto = proto::transport::tcp;
    request.streams = 2;
    request.omit_ms = 0;
    request.duration_ms = 400;
    request.interval_ms = 200;
    request.bitrate = 1'000'000;  // paced uploads stay small
    return request;
}

// Reads a data connection until it ends (the client resets its streams when the window closes).
// Owns its socket: a drain still reading when the peer's coroutine has returned must not read a socket that
// went with the peer's frame (AddressSanitizer caught that once).
asio::awaitable<void> drain(tcp::socket socket) {
    std::array<std::uint8_t, 16384> buffer{};
    for (;;) {
        auto [ec, bytes] = co_await socket.async_read_some(asio::buffer(buffer),
                                                           asio::experimental::as_tuple(asio::use_awaitable));
        if (ec) {
            co_return;
        }
    }
}

// The server's side of a test up to STREAMS_READY: checks the TEST_REQUEST is the one the runner was given,
// accepts it as test 7 with "cubic", takes each data connection's HELLO and starts draining it.
asio::awaitable<std::vector<tcp::socket>> accept_test(tcp::acceptor& acceptor,
                                                      speed::net::control_channel& control,
                                                      const proto::test_request& expected) {
    const auto request =
        co_await control.expect<proto::test_request>(net_clock::now() + kPeerDeadline, "TEST_REQUEST");
    CHECK(request == expected);
    const proto::test_accept accept{7, "cubic"};
    co_await control.write(accept, net_clock::now() + kPeerDeadline);
    std::vector<tcp::socket> data;
    for (std::uint16_t index = 0; index < expected.streams; ++index) {
        speed::net::control_channel stream(co_await acceptor.async_accept(asio::use_awaitable));
        const auto hello = co_await stream.expect<proto::hello>(net_clock::now() + kPeerDeadline, "HELLO");
        CHECK(hello.kind == proto::connection_kind::data);
        CHECK(hello.test_id == 7);
        CHECK(hello.stream_index == index);
        data.push_back(stream.release_socket());
    }
    const proto::streams_ready ready;
    co_await control.write(ready, net_clock::now() + kPeerDeadline);
    co_return data;
}

// Client and peer in one process: the control connection, the data-plane thread, and the runner's session.
struct loopback_session {
    asio::io_context context{1};
    speed::net::io_pool data_pool{1};
    tcp::acceptor acceptor{context, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
    tcp::socket client_socket{context};
    tcp::socket peer_socket{context};
    std::unique_ptr<speed::net::control_channel> client_control;
    std::unique_ptr<speed::net::control_channel> peer_control;
    client::client_auth auth;
    std::unique_ptr<client::runner_session> session;

    loopback_session() {
        client_socket.connect(acceptor.local_endpoint());
        peer_socket = acceptor.accept();
        client_control = std::make_unique<speed::net::control_channel>(std::move(client_socket));
        peer_control = std::make_unique<speed::net::control_channel>(std::move(peer_socket));
        session = std::make_unique<client::runner_session>(client::runner_session{*client_control,
                                                                                  data_pool,
                                                                                  acceptor.local_endpoint(),
                                                                                  proto::session_token{},
                                                                                  auth,
                                                                                  {},
                                                                                  5.0,
                                                                                  {}});
        data_pool.start("runner-test");
    }
    ~loopback_session() { data_pool.stop(); }

    // Runs the runner and the peer to completion; rethrows the first failure of either.
    client::direction_report run(client::direction_runner& runner, const proto::test_request& request,
                                 client::direction_events& events, asio::awaitable<void> peer) {
        client::direction_report report;
        std::exception_ptr runner_failure;
        std::exception_ptr peer_failure;
        asio::co_spawn(context, runner.run(request, events),
                       [&](std::exception_ptr e, client::direction_report result) {
                           runner_failure = e;
                           report = std::move(result);
                       });
        asio::co_spawn(context, std::move(peer), [&](std::exception_ptr e) { peer_failure = e; });
        context.run();
        if (peer_failure) {
            std::rethrow_exception(peer_failure);
        }
        if (runner_failure) {
            std::rethrow_exception(runner_failure);
        }
        return report;
    }
};

// An upload: the peer is the receiver. It reports two intervals and STOP, takes the SENDER_REPORT, then sends
// the self probes it timed and its RECEIVER_REPORT.
asio::awaitable<void> upload_peer(tcp::acceptor& acceptor, speed::net::control_channel& control,
                                  const proto::test_request& expected, proto::sender_report& sender_seen) {
    auto data = co_await accept_test(acceptor, control, expected);
    auto executor = co_await asio::this_coro::executor;
    for (auto& socket : data) {
        asio::co_spawn(executor, drain(std::move(socket)), [](std::exception_ptr) {});
    }
    const proto::interval_report first{0, 0, 200'000'000, false, {1'000, 2'000}};
    const proto::interval_report second{1, 200'000'000, 400'000'000, false, {3'000, 4'000}};
    co_await control.write(first, net_clock::now() + kPeerDeadline);
    co_await control.write(second, net_clock::now() + kPeerDeadline);
    const proto::stop stop{proto::stop_reason::window_complete};
    co_await control.write(stop, net_clock::now() + kPeerDeadline);
    sender_seen =
        co_await control.expect<proto::sender_report>(net_clock::now() + kPeerDeadline, "SENDER_REPORT");
    const proto::self_probe_samples samples{3, 1, {{1'000, 500}, {2'000, 1'500}}};
    co_await control.write(samples, net_clock::now() + kPeerDeadline);
    const proto::receiver_report received{400'000'000, 0, 0, {4'000, 6'000}};
    co_await control.write(received, net_clock::now() + kPeerDeadline);
}

// A download: the peer is the sender. 64 KiB per stream at once, 32 KiB per stream 300 ms later, so each
// burst falls 100 ms or more from the client's samples at 200 and 400 ms (loopback delivers in well under a
// millisecond; the margin is for a busy machine's scheduler). After the client's STOP, its SENDER_REPORT.
asio::awaitable<void> download_peer(tcp::acceptor& acceptor, speed::net::control_channel& control,
                                    const proto::test_request& expected, const proto::sender_report& sender) {
    auto data = co_await accept_test(acceptor, control, expected);
    auto executor = co_await asio::this_coro::executor;
    const std::vector<std::uint8_t> first(64 * 1024, 0x5a);
    const std::vector<std::uint8_t> second(32 * 1024, 0xa5);
    for (auto& socket : data) {
        co_await asio::async_write(socket, asio::buffer(first), asio::use_awaitable);
    }
    asio::steady_timer timer(executor, 300ms);
    co_await timer.async_wait(asio::use_awaitable);
    for (auto& socket : data) {
        co_await asio::async_write(socket, asio::buffer(second), asio::use_awaitable);
    }
    for (auto& socket : data) {
        asio::co_spawn(executor, drain(std::move(socket)), [](std::exception_ptr) {});
    }
    const auto stop = co_await control.expect<proto::stop>(net_clock::now() + kPeerDeadline, "STOP");
    CHECK(stop.reason == proto::stop_reason::window_complete);
    co_await control.write(sender, net_clock::now() + kPeerDeadline);
}

}  // namespace

TEST_CASE("TCP runner, upload: events in order and the receiver's figures as the peer sent them",
          "[client_runners]") {
    loopback_session loopback;
    const auto runner = client::make_tcp_runner(*loopback.session);
    const proto::test_request request = tcp_request(proto::direction::upload);
    speed::testing::recording_events events;
    proto::sender_report sender_seen;
    const client::direction_report report =
        loopback.run(*runner, request, events,
                     upload_peer(loopback.acceptor, *loopback.peer_control, request, sender_seen));

    CHECK(events.seen == std::vector<std::string>{"ready congestion=cubic", "interval bytes=3000",
                                                  "interval bytes=7000", "window_closed intervals=2",
                                                  "result bytes=10000"});
    CHECK(report.dir == proto::direction::upload);
    CHECK(report.measured_by == "server");
    CHECK(report.congestion == "cubic");
    CHECK(report.server_cap_bits_per_second == 0);
    CHECK(report.seconds == 0.4);
    CHECK(report.bytes == 10'000);
    CHECK(report.bits_per_second == 200'000.0);
    CHECK(report.omitted_seconds == 0.0);
    CHECK(report.omitted_bytes == 0);
    REQUIRE(report.intervals.size() == 2);
    CHECK(report.intervals[1].start_seconds == 0.2);
    CHECK(report.intervals[1].end_seconds == 0.4);
    CHECK(report.intervals[1].stream_bytes == std::vector<std::uint64_t>{3'000, 4'000});
    REQUIRE(report.streams.size() == 2);
    CHECK(report.streams[0].bytes == 4'000);
    CHECK(report.streams[1].bytes == 6'000);
    CHECK(report.streams[1].bits_per_second == 120'000.0);
    // The sender's side is what the runner told the peer in its SENDER_REPORT.
    REQUIRE(sender_seen.streams.size() == 2);
    CHECK(report.streams[0].sender == sender_seen.streams[0]);
    CHECK(report.streams[1].sender == sender_seen.streams[1]);
    CHECK(report.sender_bytes == sender_seen.streams[0].bytes_sent + sender_seen.streams[1].bytes_sent);
    CHECK(report.self_probes_sent == 3);
    CHECK(report.self_probes_dropped == 1);
    CHECK(report.self_probe_rtt_ms == std::vector<double>{0.5, 1.5});
    REQUIRE(report.self_probe_sent_ns.size() == 2);
    CHECK(report.self_probe_sent_ns[1] - report.self_probe_sent_ns[0] == 1'000'000);
}

TEST_CASE("TCP runner, download: events in order, the client's own window and the peer's sender figures",
          "[client_runners]") {
    loopback_session loopback;
    const auto runner = client::make_tcp_runner(*loopback.session);
    const proto::test_request request = tcp_request(proto::direction::download);
    speed::testing::recording_events events;
    proto::sender_report sender;
    sender.streams = {{98'304, true, 2, 50, 10, 65'536}, {98'304, true, 3, 60, 20, 65'536}};
    sender.rtt_samples_us = {50, 60, 1'500};
    const client::direction_report report = loopback.run(
        *runner, request, events, download_peer(loopback.acceptor, *loopback.peer_control, request, sender));

    CHECK(events.seen == std::vector<std::string>{"ready congestion=cubic", "interval bytes=131072",
                                                  "interval bytes=65536", "window_closed intervals=2",
                                                  "result bytes=196608"});
    CHECK(report.dir == proto::direction::download);
    CHECK(report.measured_by == "client");
    CHECK(report.bytes == 196'608);
    REQUIRE(report.streams.size() == 2);
    CHECK(report.streams[0].bytes == 98'304);
    CHECK(report.streams[1].bytes == 98'304);
    REQUIRE(report.intervals.size() == 2);
    CHECK(report.intervals[0].stream_bytes == std::vector<std::uint64_t>{65'536, 65'536});
    CHECK(report.intervals[1].stream_bytes == std::vector<std::uint64_t>{32'768, 32'768});
    CHECK(report.bits_per_second == 196'608 * 8 / report.seconds);
    CHECK(report.streams[0].sender == sender.streams[0]);
    CHECK(report.streams[1].sender == sender.streams[1]);
    CHECK(report.sender_bytes == 196'608);
    CHECK(report.retransmits == 5);
    CHECK(report.sender_has_tcp_info);
    CHECK(report.in_band_rtt_ms == std::vector<double>{0.05, 0.06, 1.5});
}
