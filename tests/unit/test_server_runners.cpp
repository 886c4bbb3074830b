// The server's test runners driven in-process through a fake events sink (the part a front-end plays), on
// loopback sockets: the exact sequence of events and the result's figures against known bytes.
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <exception>
#include <string>
#include <vector>

#include "common/udp_wire.hpp"
#include "net/io_pool.hpp"
#include "net/udp_flow.hpp"
#include "server/runners/tcp_runner.hpp"
#include "server/runners/udp_runner.hpp"
#include "server/udp_listener.hpp"

namespace {

using namespace std::chrono_literals;
using speed::net::clock;
namespace server = speed::server;
namespace proto = speed::proto;

const auto kLoopback = asio::ip::make_address("127.0.0.1");

// Records every event by name; the client's side of each test is in the subclasses.
class recording_events : public server::test_events {
  public:
    std::vector<std::string> seen;
    std::uint64_t interval_bytes = 0;

    asio::awaitable<void> accepted(const server::test_setup&) override {
        seen.emplace_back("accepted");
        co_return;
    }
    asio::awaitable<void> ready() override {
        seen.emplace_back("ready");
        co_return;
    }
    asio::awaitable<void> interval(const speed::measure::interval& closed) override {
        seen.emplace_back("interval");
        for (auto bytes : closed.stream_bytes) {
            interval_bytes += bytes;
        }
        co_return;
    }
    asio::awaitable<void> udp_interval(const proto::udp_interval_report& report) override {
        seen.emplace_back("udp_interval");
        for (const auto& stream : report.streams) {
            interval_bytes += stream.bytes;
        }
        co_return;
    }
    asio::awaitable<void> self_probe_marks(const std::vector<proto::self_probe_mark>&) override {
        seen.emplace_back("self_probe_marks");
        co_return;
    }
    asio::awaitable<void> window_closed() override {
        seen.emplace_back("window_closed");
        co_return;
    }
    asio::awaitable<void> result(const server::test_result&) override {
        seen.emplace_back("result");
        co_return;
    }
    // The client sends nothing on its own: the wait runs to its deadline.
    asio::awaitable<bool> input_pending(clock::time_point deadline) override {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_at(deadline);
        co_await timer.async_wait(asio::use_awaitable);
        co_return false;
    }
    std::chrono::milliseconds stop_timeout() const override { return 10s; }
    asio::awaitable<void> take_stop() override {
        seen.emplace_back("take_stop");
        co_return;
    }
    asio::awaitable<proto::self_probe_mark> take_self_probe_mark() override {
        seen.emplace_back("take_self_probe_mark");
        co_return proto::self_probe_mark{};
    }
    asio::awaitable<proto::udp_sender_report> take_udp_sender_counts() override {
        seen.emplace_back("take_udp_sender_counts");
        co_return proto::udp_sender_report{};
    }
    bool aborted() const override { return false; }
};

asio::awaitable<void> run_into(server::test_runner& runner, server::test_events& events,
                               server::test_result& out) {
    out = co_await server::run_test(runner, events);
}

// Runs `runner` on `control` through `events` to its end; rethrows a failure.
server::test_result run_to_end(asio::io_context& control, server::test_runner& runner,
                               server::test_events& events) {
    server::test_result result;
    std::exception_ptr failure;
    asio::co_spawn(control, run_into(runner, events, result),
                   [&failure](std::exception_ptr e) { failure = e; });
    control.run_for(20s);
    if (failure) {
        std::rethrow_exception(failure);
    }
    return result;
}

// 600 ms window, 200 ms intervals, no warm-up: three intervals, each closed at its planned instant. Each
// client sends its known bytes within about 60 ms of the first one (loopback: a few ms in release builds),
// so the window holds them all with ten times that to spare for a loaded machine or a sanitizer build.
server::runner_request upload_request(proto::transport transport) {
    server::runner_request request;
    request.test.dir = proto::direction::upload;
    request.test.proto = transport;
    request.test.streams = 1;
    request.test.omit_ms = 0;
    request.test.duration_ms = 600;
    request.test.interval_ms = 200;
    request.test.udp_payload_bytes = speed::udp::kDefaultIpv4DatagramBytes;
    return request;
}

// The client of a TCP upload: one data connection, which writes kBytes as soon as the test is ready.
class tcp_upload_client : public recording_events {
  public:
    static constexpr std::size_t kBytes = 256 * 1024;
    server::tcp_runner* runner = nullptr;

    asio::awaitable<void> accepted(const server::test_setup& setup) override {
        co_await recording_events::accepted(setup);
        asio::ip::tcp::acceptor acceptor(io_, asio::ip::tcp::endpoint(kLoopback, 0));
        client_.connect(acceptor.local_endpoint());
        REQUIRE(runner->attach_connection(0, acceptor.accept()));
    }
    asio::awaitable<void> ready() override {
        co_await recording_events::ready();
        const std::vector<std::uint8_t> payload(kBytes, 0x5a);
        asio::write(client_, asio::buffer(payload));  // the loopback's buffers take it at once
    }

  private:
    asio::io_context io_;
    asio::ip::tcp::socket client_{io_};
};

}  // namespace

TEST_CASE("the TCP runner measures an upload of a known byte count through the events in order",
          "[runners]") {
    asio::io_context control;
    speed::net::io_pool pool(1);
    pool.start("runner-test");
    server::tcp_runner runner(control.get_executor(), pool, upload_request(proto::transport::tcp));
    tcp_upload_client client;
    client.runner = &runner;

    const auto result = run_to_end(control, runner, client);

    CHECK(client.seen == std::vector<std::string>{"accepted", "ready", "interval", "interval", "interval",
                                                  "window_closed", "result"});
    CHECK(result.completed);
    CHECK(result.transport == proto::transport::tcp);
    CHECK(result.direction == proto::direction::upload);
    CHECK(result.streams == 1);
    CHECK(result.received.stream_bytes == std::vector<std::uint64_t>{tcp_upload_client::kBytes});
    CHECK(result.received.omitted_bytes == 0);
    CHECK(client.interval_bytes == tcp_upload_client::kBytes);
    CHECK(result.self_probes.samples.empty());  // the client answered none
    CHECK(result.tcp_sent.empty());
}

namespace {

// The client of a UDP upload: one flow that sends kDatagrams DATA datagrams once the test is ready, and
// gives its count when the window closed.
class udp_upload_client : public recording_events {
  public:
    static constexpr std::uint64_t kDatagrams = 100;
    static constexpr std::uint32_t kLength = speed::udp::kDefaultIpv4DatagramBytes;

    explicit udp_upload_client(asio::io_context& control, speed::net::io_pool& pool)
        : control_(control), pool_(pool) {}

    asio::awaitable<void> accepted(const server::test_setup& setup) override {
        co_await recording_events::accepted(setup);
        REQUIRE(setup.udp);
        speed::net::udp_flow_settings settings;
        settings.token = setup.udp->token;
        settings.datagram_bytes = kLength;
        settings.role = speed::net::udp_role::sender;
        settings.client = true;
        flows_ = std::make_unique<speed::net::udp_flow_group>(control_.get_executor(), 1, settings);
        asio::ip::udp::socket socket(pool_.next());
        socket.connect(asio::ip::udp::endpoint(kLoopback, setup.udp->port));
        REQUIRE(flows_->attach(0, std::move(socket)));
    }
    asio::awaitable<void> ready() override {
        co_await recording_events::ready();
        // As speedcli does: DATA goes out once the client's side of the handshake is complete too.
        const auto deadline = clock::now() + 2s;
        while (flows_->established_count() < 1 && clock::now() < deadline) {
            co_await flows_->wait_for_change(deadline);
        }
        REQUIRE(flows_->established_count() == 1);
        speed::net::udp_send_plan plan;
        plan.bits_per_second = 20e6;  // 100 datagrams in about 60 ms
        plan.max_bytes = kDatagrams * kLength;
        flows_->start_sending(plan);
    }
    asio::awaitable<void> window_closed() override {
        co_await recording_events::window_closed();
        flows_->stop_sending();
    }
    asio::awaitable<proto::udp_sender_report> take_udp_sender_counts() override {
        seen.emplace_back("take_udp_sender_counts");
        co_await flows_->wait_senders_stopped(clock::now() + 2s);
        proto::udp_sender_report sent;
        for (const auto& counts : flows_->sent_counts()) {
            sent.streams.push_back({counts.packets, counts.bytes});
        }
        co_return sent;
    }

  private:
    asio::io_context& control_;
    speed::net::io_pool& pool_;
    std::unique_ptr<speed::net::udp_flow_group> flows_;
};

}  // namespace

TEST_CASE("the UDP runner accounts for an upload of a known number of datagrams through the events in order",
          "[runners]") {
    asio::io_context control;
    speed::net::io_pool pool(1);
    pool.start("runner-test");
    server::udp_listener listener(control);
    listener.listen(asio::ip::udp::endpoint(kLoopback, 0));
    server::udp_runner runner(control.get_executor(), pool,
                              server::udp_runner_place{listener, kLoopback, {kLoopback, listener.port()}},
                              upload_request(proto::transport::udp));
    udp_upload_client client(control, pool);

    const auto result = run_to_end(control, runner, client);
    listener.close();

    CHECK(client.seen == std::vector<std::string>{"accepted", "ready", "udp_interval", "udp_interval",
                                                  "udp_interval", "window_closed", "take_udp_sender_counts",
                                                  "result"});
    CHECK(result.completed);
    CHECK(result.transport == proto::transport::udp);
    CHECK(result.direction == proto::direction::upload);
    using client_t = udp_upload_client;
    REQUIRE(result.udp_peer_sent.streams.size() == 1);
    CHECK(result.udp_peer_sent.streams[0].packets == client_t::kDatagrams);
    CHECK(result.udp_peer_sent.streams[0].bytes == client_t::kDatagrams * client_t::kLength);
    REQUIRE(result.udp_received.streams.size() == 1);
    CHECK(result.udp_received.streams[0].packets_received == client_t::kDatagrams);
    CHECK(result.udp_received.streams[0].lost_packets == 0);
    CHECK(result.received.bytes() == client_t::kDatagrams * client_t::kLength);
    CHECK(client.interval_bytes == client_t::kDatagrams * client_t::kLength);
    CHECK(runner.flow_counters() == server::udp_flow_counters{});
}
