// speedcli's UDP runner (client/runners/udp_runner.cpp) against the real speedsrv on 127.0.0.1, through a
// fake events sink. A real server, not an in-test peer: the UDP handshake, pacing and loss accounting are the
// server's to play. What the server measures varies from run to run, so the checks are the events' exact
// order and the identities the figures must satisfy exactly (packets x datagram size, intervals adding up to
// the totals, streams adding up to the direction).
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <exception>
#include <numeric>

#include "client/connect.hpp"
#include "client/runners/direction_runner.hpp"
#include "net/clock.hpp"
#include "net/control_channel.hpp"
#include "net/io_pool.hpp"
#include "tests/support/process.hpp"
#include "tests/support/recording_events.hpp"

using namespace std::chrono_literals;
using asio::ip::tcp;
namespace proto = speed::proto;
namespace client = speed::client;

namespace {

using net_clock = speed::net::clock;

constexpr std::uint32_t kDatagramBytes = 1'200;

proto::test_request udp_request(proto::direction dir) {
    proto::test_request request;
    request.dir = dir;
    request.proto = proto::transport::udp;
    request.streams = 2;
    request.omit_ms = 200;
    request.duration_ms = 800;
    request.interval_ms = 200;
    request.bitrate = 8'000'000;
    request.udp_payload_bytes = kDatagramBytes;
    return request;
}

// One session with the server at `port` (HELLO, WELCOME; the server needs no key), one direction run by the
// UDP runner.
asio::awaitable<client::direction_report> run_udp(std::uint16_t port, speed::net::io_pool& data_pool,
                                                  proto::test_request request,
                                                  speed::testing::recording_events& events) {
    const tcp::endpoint server(asio::ip::make_address("127.0.0.1"), port);
    const client::socket_settings sockets;  // named: GCC 12 frees a braced temporary in a co_await twice
    speed::net::control_channel control(co_await client::connect(server, 5.0, sockets));
    const proto::hello hello = client::make_hello(proto::connection_kind::control, {});
    co_await control.write(hello, net_clock::now() + proto::kReplyTimeout);
    const auto welcome =
        co_await control.expect<proto::welcome>(net_clock::now() + proto::kReplyTimeout, "WELCOME");
    client::client_auth auth;
    client::runner_session session{control, data_pool, server, welcome.token, auth, {}, 5.0, {}};
    const auto runner = client::make_udp_runner(session);
    co_return co_await runner->run(request, events);
}

client::direction_report run_direction(proto::direction dir, speed::testing::recording_events& events) {
    speed::testing::server_process server;
    asio::io_context context(1);
    speed::net::io_pool data_pool(1);
    data_pool.start("runner-test");
    client::direction_report report;
    std::exception_ptr failure;
    asio::co_spawn(context, run_udp(server.port(), data_pool, udp_request(dir), events),
                   [&](std::exception_ptr e, client::direction_report result) {
                       failure = e;
                       report = std::move(result);
                   });
    context.run();
    data_pool.stop();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return report;
}

// The identities every UDP direction's figures satisfy, whatever the run measured.
void check_udp_figures(const client::direction_report& report) {
    REQUIRE(report.intervals.size() == 5);
    CHECK(report.intervals[0].omitted);
    CHECK_FALSE(report.intervals[1].omitted);
    CHECK(report.datagram_bytes == kDatagramBytes);
    CHECK(report.target_bits_per_second == 8'000'000.0);
    REQUIRE(report.udp);
    REQUIRE(report.streams.size() == 2);
    CHECK(report.sender_bytes == report.sender_packets * kDatagramBytes);
    CHECK(report.udp->packets_sent == report.sender_packets);
    CHECK(report.bytes == report.streams[0].bytes + report.streams[1].bytes);
    CHECK(report.bytes % kDatagramBytes == 0);
    CHECK(report.bytes > 0);
    std::uint64_t window_bytes = 0;
    std::uint64_t warm_up_bytes = 0;
    for (const auto& interval : report.intervals) {
        (interval.omitted ? warm_up_bytes : window_bytes) += interval.bytes;
    }
    CHECK(window_bytes == report.bytes);
    CHECK(warm_up_bytes == report.omitted_bytes);
}

}  // namespace

TEST_CASE("UDP runner, download: events in order and figures that add up", "[client_runners][udp]") {
    speed::testing::recording_events events;
    const client::direction_report report = run_direction(proto::direction::download, events);
    CHECK(events.kinds() == std::vector<std::string>{"ready", "interval", "interval", "interval", "interval",
                                                     "interval", "window_closed", "result"});
    CHECK(events.seen.back() == "result bytes=" + std::to_string(report.bytes));
    CHECK(report.measured_by == "client");
    CHECK(report.server_cap_bits_per_second == 1'000'000'000);  // a default speedsrv's UDP cap
    check_udp_figures(report);
}

TEST_CASE("UDP runner, upload: events in order and figures that add up", "[client_runners][udp]") {
    speed::testing::recording_events events;
    const client::direction_report report = run_direction(proto::direction::upload, events);
    CHECK(events.kinds() == std::vector<std::string>{"ready", "interval", "interval", "interval", "interval",
                                                     "interval", "window_closed", "result"});
    CHECK(events.seen.back() == "result bytes=" + std::to_string(report.bytes));
    CHECK(report.measured_by == "server");
    CHECK(report.server_cap_bits_per_second == 1'000'000'000);
    check_udp_figures(report);
}
