#include "server/runners/udp_runner.hpp"

#include <fmt/format.h>

#include "common/test_timing.hpp"
#include "common/udp_rate_control.hpp"
#include "net/errors.hpp"
#include "net/random.hpp"
#include "net/udp_window.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kResultsTimeout;
using proto::kUdpSetupTimeout;

// How often a UDP sender checks its flows and the STOP deadline while it waits for STOP.
constexpr auto kSenderWatchInterval = 100ms;

}  // namespace

udp_runner::udp_runner(asio::any_io_executor control, net::io_pool& data_pool, udp_runner_place place,
                       runner_request request)
    : control_(std::move(control)),
      data_pool_(data_pool),
      place_(std::move(place)),
      request_(std::move(request)) {}

udp_runner::~udp_runner() {
    abort();
}

test_setup udp_runner::open() {
    const auto& test = request_.test;
    net::udp_flow_settings settings;
    settings.token = net::random_nonzero_u64();
    settings.datagram_bytes = test.udp_payload_bytes;
    settings.role = test.dir == proto::direction::download ? net::udp_role::sender : net::udp_role::receiver;
    settings.client = false;
    settings.stall_timeout = request_.stall_timeout;
    token_ = settings.token;
    flows_ = std::make_shared<udp_test_flows>(control_, test.streams, settings, place_.control_peer,
                                              place_.local, data_pool_);
    place_.listener.add(token_, flows_);
    return {"",
            test_setup::udp_flows{token_, place_.listener.port(), server_rate_cap(test, request_.limits)}};
}

asio::awaitable<void> udp_runner::attach_all(test_events&) {
    auto& group = flows_->group();
    const auto streams = request_.test.streams;
    const auto setup_deadline = clock::now() + kUdpSetupTimeout;
    while (group.established_count() < streams) {
        if (clock::now() >= setup_deadline) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("only {} of {} UDP streams completed their handshake within {} s (is UDP "
                            "from the client to port {} blocked?)",
                            group.established_count(), streams, kUdpSetupTimeout.count(),
                            place_.listener.port()));
        }
        co_await group.wait_for_change(setup_deadline);
    }
    // Retransmitted HELLOs now reach the streams' own sockets; the token is done with the listener.
    place_.listener.remove(token_);
}

void udp_runner::start() {
    // An upload's DATA counts from here on; the client sends none before it is told to start.
    const auto& test = request_.test;
    flows_->group().accept_data(
        udp::stream_rate_bound(test.bitrate, server_rate_cap(test, request_.limits), test.streams));
}

asio::awaitable<test_result> udp_runner::send(test_events& events) {
    const auto& test = request_.test;
    auto& group = flows_->group();
    const std::uint64_t cap = server_rate_cap(test, request_.limits);
    net::udp_send_plan plan;
    plan.bits_per_second = static_cast<double>(test.bitrate) / test.streams;
    plan.max_bits_per_second = static_cast<double>(cap) / test.streams;
    // The test's byte budget (--max-bytes), as for TCP: what the receiver may see, so what the sender sends
    // at most, whatever the client does with FEEDBACK and STOP.
    const test_budget budget = test_budget::for_test(test, request_.limits);
    if (budget.max_bytes != 0) {
        plan.max_bytes = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(static_cast<double>(budget.max_bytes) * test_budget::kRateMargin) /
                   test.streams);
    }
    group.start_sending(plan);

    // The sender needs FEEDBACK that echoes its DATA's nonce to keep going (net/udp_flow.hpp), so a client
    // that vanishes stops the datagrams within a second. A client that stays but never asks for the end is
    // given the test's time plus max(1 s, that time), within the front-end's own deadline for it.
    const auto [give_up, grace] = sender_stop_wait::of(test, events);
    for (;;) {
        // GCC 12: no initializer list inside a co_await expression.
        const auto wake = std::min(give_up, clock::now() + kSenderWatchInterval);
        if (co_await events.input_pending(wake)) {
            break;
        }
        if (auto failure = group.first_failure()) {
            throw session_error(proto::error_code::protocol_error, *failure);
        }
        if (clock::now() >= give_up) {
            throw session_error(proto::error_code::timeout,
                                fmt::format("no STOP from the client within {:.1f} s after the test's time",
                                            std::chrono::duration<double>(grace).count()));
        }
    }
    co_await events.take_stop();
    group.stop_sending();
    co_await group.wait_senders_stopped(clock::now() + kResultsTimeout);
    if (auto failure = group.first_failure()) {
        throw session_error(proto::error_code::protocol_error, *failure);
    }
    test_result result = completed_result(request_.test);
    for (const auto& counts : group.sent_counts()) {
        result.udp_sent.streams.push_back({counts.packets, counts.bytes});
    }
    // The flows stay open until abort() (the front-end's next request): FEEDBACK still in flight lands on
    // them, not on the listener.
    co_return result;
}

asio::awaitable<test_result> udp_runner::receive(test_events& events) {
    const auto& test = request_.test;
    auto& group = flows_->group();
    const auto plan = test_timing::of(test).plan();
    const net::udp_window_result window = co_await net::measure_udp_receiver_window(
        group, plan, clock::now() + kFirstByteTimeout,
        [&events](const proto::udp_interval_report& report) { return events.udp_interval(report); });

    co_await events.window_closed();
    test_result result = completed_result(request_.test);
    result.udp_peer_sent = co_await events.take_udp_sender_counts();
    co_await net::drain_and_close(group, result.udp_peer_sent, clock::now() + net::kDrainTimeout);
    result.udp_received =
        net::make_udp_receiver_report(window, group.receiver_finals(), result.udp_peer_sent);
    result.received = window.totals;
    co_return result;
}

void udp_runner::abort() {
    if (token_ != 0) {
        place_.listener.remove(token_);
    }
    if (flows_) {
        flows_->group().close_all();
    }
}

udp_flow_counters udp_runner::flow_counters() const {
    if (!flows_) {
        return {};
    }
    return {flows_->wrong_address_hellos.load(), flows_->group().rejected_datagrams(),
            flows_->group().data_drops()};
}

}  // namespace speed::server
