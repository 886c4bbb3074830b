// One direction of a UDP test (docs/protocol.md, "UDP tests"; docs/methodology.md, "UDP"): the load runs on
// UDP flows set up by a handshake; the client measures a download, the server an upload.
#include <asio/ip/udp.hpp>
#include <asio/this_coro.hpp>

#include "client/connect.hpp"
#include "client/runners/direction_runner.hpp"
#include "client/udp_run.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/udp_accounting.hpp"
#include "common/udp_rate_control.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/udp_flow.hpp"
#include "net/udp_window.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kReplyTimeout;
using proto::kResultsTimeout;
using proto::kUdpSetupTimeout;

// A download whose data stops this long ends with an error (speedsrv's default --stall-timeout).
constexpr auto kStallTimeout = 10s;

udp_interval_figures to_udp_interval(const proto::udp_interval_report& report, interval_report& entry) {
    udp_interval_figures figures;
    double jitter_sum_ns = 0;
    std::size_t jitter_streams = 0;
    entry.stream_bytes.clear();
    entry.bytes = 0;
    for (const auto& s : report.streams) {
        entry.stream_bytes.push_back(s.bytes);
        entry.bytes += s.bytes;
        figures.packets += s.packets;
        figures.lost_packets += s.lost_packets;
        if (s.jitter_ns > 0 || s.packets > 0) {
            jitter_sum_ns += static_cast<double>(s.jitter_ns);
            ++jitter_streams;
        }
    }
    figures.jitter_ms = jitter_streams == 0 ? 0.0 : jitter_sum_ns / static_cast<double>(jitter_streams) / 1e6;
    return figures;
}

asio::awaitable<void> record_udp_interval(direction_events& events, direction_report& report,
                                          const proto::udp_interval_report& closed) {
    interval_report entry;
    entry.start_seconds = units::ns_to_seconds(closed.start_ns);
    entry.end_seconds = units::ns_to_seconds(closed.end_ns);
    entry.omitted = closed.omitted;
    entry.udp = to_udp_interval(closed, entry);
    entry.bits_per_second = units::bits_per_second(entry.bytes, entry.end_seconds - entry.start_seconds);
    report.intervals.push_back(std::move(entry));
    events.interval(report.intervals.back());
    co_return;
}

udp_figures figures_of(const proto::udp_stream_received& r, std::uint64_t sent) {
    udp_figures f;
    f.packets_sent = sent;
    f.packets_received = r.packets_received;
    f.lost_packets = r.lost_packets;
    f.lost_percent = udp::lost_percent(r.lost_packets, sent);
    f.out_of_order = r.out_of_order;
    f.duplicates = r.duplicates;
    f.late_packets = r.late_packets;
    f.jitter_ms = units::ns_to_ms(r.jitter_ns);
    f.ipdv_p50_ms = units::ns_to_ms(r.ipdv_p50_ns);
    f.ipdv_p90_ms = units::ns_to_ms(r.ipdv_p90_ns);
    f.ipdv_p99_ms = units::ns_to_ms(r.ipdv_p99_ns);
    return f;
}

// The receiver's report (made here for a download, by the server for an upload) into the direction's figures.
void fill_udp_report(direction_report& report, const proto::test_request& request,
                     const proto::udp_receiver_report& received, const proto::udp_sender_report& sent) {
    if (received.streams.size() != request.streams || sent.streams.size() != request.streams) {
        throw session_error(proto::error_code::protocol_error,
                            "a UDP report has the wrong number of streams");
    }
    report.seconds = units::ns_to_seconds(received.window_ns);
    report.omitted_seconds = units::ns_to_seconds(received.omitted_ns);
    report.omitted_bytes = received.omitted_bytes;
    report.datagram_bytes = request.udp_payload_bytes;
    if (request.bitrate != 0) {
        report.target_bits_per_second = static_cast<double>(request.bitrate);
    }
    udp_figures total;
    double jitter_sum_ms = 0;
    std::size_t jitter_streams = 0;
    report.bytes = 0;
    report.sender_bytes = 0;
    report.sender_packets = 0;
    report.streams.resize(request.streams);
    for (std::size_t i = 0; i < request.streams; ++i) {
        const auto& r = received.streams[i];
        auto& stream = report.streams[i];
        stream.bytes = r.bytes;
        stream.bits_per_second = units::bits_per_second(r.bytes, report.seconds);
        stream.sender.bytes_sent = sent.streams[i].bytes;
        stream.sender_packets = sent.streams[i].packets;
        stream.udp = figures_of(r, sent.streams[i].packets);
        report.bytes += r.bytes;
        report.sender_bytes += sent.streams[i].bytes;
        report.sender_packets += sent.streams[i].packets;
        total.packets_sent += sent.streams[i].packets;
        total.packets_received += r.packets_received;
        total.lost_packets += r.lost_packets;
        total.out_of_order += r.out_of_order;
        total.duplicates += r.duplicates;
        total.late_packets += r.late_packets;
        if (r.packets_received > 0) {
            jitter_sum_ms += units::ns_to_ms(r.jitter_ns);
            ++jitter_streams;
        }
    }
    report.bits_per_second = units::bits_per_second(report.bytes, report.seconds);
    total.lost_percent = udp::lost_percent(total.lost_packets, total.packets_sent);
    // The direction's jitter is the mean of its streams' (each is a running estimate over its own flow).
    total.jitter_ms = jitter_streams == 0 ? 0.0 : jitter_sum_ms / static_cast<double>(jitter_streams);
    total.ipdv_p50_ms = units::ns_to_ms(received.ipdv_p50_ns);
    total.ipdv_p90_ms = units::ns_to_ms(received.ipdv_p90_ns);
    total.ipdv_p99_ms = units::ns_to_ms(received.ipdv_p99_ns);
    total.ipdv_pairs = received.ipdv_pairs;
    total.ipdv_pairs_excluded = received.ipdv_pairs_excluded;
    report.udp = total;
}

net::udp_flow_settings flow_settings(const proto::test_request& request, const proto::udp_setup& setup,
                                     net::udp_role role) {
    net::udp_flow_settings settings;
    settings.token = setup.token;
    settings.datagram_bytes = request.udp_payload_bytes;
    settings.role = role;
    settings.client = true;
    return settings;
}

class udp_runner final : public direction_runner {
  public:
    explicit udp_runner(runner_session& session) : session_(session) {}

    proto::test_request request_for(const test_options& options, proto::direction dir) const override {
        proto::test_request request = tcp_request_for(options, dir);
        request.proto = proto::transport::udp;
        request.congestion.clear();  // UDP has none
        request.udp_payload_bytes = udp_length_for(options, session_.server.address());
        return request;
    }

  private:
    // TEST_REQUEST (and its TEST_AUTH on an authenticated session) -> TEST_ACCEPT, UDP_SETUP.
    asio::awaitable<proto::udp_setup> request_test(const proto::test_request& request) {
        auto& control = session_.control;
        co_await send_test_request(control, session_.auth, request, clock::now() + kReplyTimeout);
        co_await control.expect<proto::test_accept>(clock::now() + kReplyTimeout, "TEST_ACCEPT");
        co_return co_await control.expect<proto::udp_setup>(clock::now() + kReplyTimeout, "UDP_SETUP");
    }

    // One connected socket per stream on the data-plane threads, then the handshake of every stream.
    asio::awaitable<void> open_flows(net::udp_flow_group& group, std::uint16_t port) {
        const asio::ip::udp::endpoint server(session_.server.address(), port);
        for (std::size_t index = 0; index < group.size(); ++index) {
            asio::ip::udp::socket socket(session_.data_pool.next());
            prepare_udp_socket(socket, server, session_.sockets, static_cast<std::uint16_t>(index));
            socket.connect(server);
            group.attach(index, std::move(socket));
        }
        const auto deadline = clock::now() + kUdpSetupTimeout;
        while (group.established_count() < group.size()) {
            if (auto failure = group.first_failure()) {
                throw udp_path_error("UDP to " + describe(server.address(), port) + " failed: " + *failure +
                                     ". The server does not take UDP there, or a firewall rejects it.");
            }
            if (clock::now() >= deadline) {
                throw udp_path_error(
                    "no answer to the UDP handshake from " + describe(server.address(), port) + " within " +
                    std::to_string(kUdpSetupTimeout.count()) +
                    " s: UDP is probably blocked (speedcli --udp needs UDP to and from that port)");
            }
            co_await group.wait_for_change(deadline);
        }
    }

    asio::awaitable<void> download(const proto::test_request& request, direction_events& events,
                                   direction_report& report) override {
        auto& control = session_.control;
        const proto::udp_setup setup = co_await request_test(request);
        report.server_cap_bits_per_second = setup.max_bitrate;
        net::udp_flow_settings settings = flow_settings(request, setup, net::udp_role::receiver);
        settings.stall_timeout = kStallTimeout;
        net::udp_flow_group group(co_await asio::this_coro::executor, request.streams, settings);
        // From the start, not at STREAMS_READY: the server's first DATA may overtake that message. The server
        // sends none before every stream's handshake, so the rate bound still holds from here.
        group.accept_data(udp::stream_rate_bound(request.bitrate, setup.max_bitrate, request.streams));
        co_await open_flows(group, setup.port);
        co_await control.expect<proto::streams_ready>(clock::now() + kReplyTimeout, "STREAMS_READY");
        events.ready(report);

        const net::udp_window_result window = co_await net::measure_udp_receiver_window(
            group, test_timing::of(request).plan(), clock::now() + kFirstByteTimeout,
            [&events, &report](const proto::udp_interval_report& closed) {
                return record_udp_interval(events, report, closed);
            });
        const proto::stop stop{proto::stop_reason::window_complete};
        co_await control.write(stop, clock::now() + kResultsTimeout);
        co_await events.window_closed(report);
        const auto sent = co_await control.expect<proto::udp_sender_report>(clock::now() + kResultsTimeout,
                                                                            "the server's UDP_SENDER_REPORT");
        co_await net::drain_and_close(group, sent, clock::now() + net::kDrainTimeout);
        const std::vector<net::udp_receiver_final> finals = group.receiver_finals();
        const proto::udp_receiver_report received = net::make_udp_receiver_report(window, finals, sent);
        fill_udp_report(report, request, received, sent);
        report.udp->receive_buffer_overflows = 0;
        for (const auto& final : finals) {
            *report.udp->receive_buffer_overflows += final.socket_drops;
        }
    }

    asio::awaitable<void> upload(const proto::test_request& request, direction_events& events,
                                 direction_report& report) override {
        auto& control = session_.control;
        const proto::udp_setup setup = co_await request_test(request);
        report.server_cap_bits_per_second = setup.max_bitrate;
        const net::udp_flow_settings settings = flow_settings(request, setup, net::udp_role::sender);
        net::udp_flow_group group(co_await asio::this_coro::executor, request.streams, settings);
        co_await open_flows(group, setup.port);
        co_await control.expect<proto::streams_ready>(clock::now() + kReplyTimeout, "STREAMS_READY");
        co_await events.load_may_start();
        net::udp_send_plan plan;
        plan.bits_per_second = static_cast<double>(request.bitrate) / request.streams;
        plan.max_bits_per_second = static_cast<double>(setup.max_bitrate) / request.streams;
        group.start_sending(plan);
        events.ready(report);

        // The server is the receiver: it reports each interval, then STOP when its window has closed.
        const auto stop_deadline = clock::now() + test_timing::of(request).client_stop_wait();
        for (;;) {
            proto::message msg = co_await control.read(stop_deadline, "the server's STOP");
            if (auto* interval = std::get_if<proto::udp_interval_report>(&msg)) {
                co_await record_udp_interval(events, report, *interval);
                continue;
            }
            if (std::holds_alternative<proto::stop>(msg)) {
                break;
            }
            throw net::control_channel::unexpected(msg, "the server's STOP");
        }
        group.stop_sending();
        co_await events.window_closed(report);
        co_await group.wait_senders_stopped(clock::now() + kResultsTimeout);
        if (auto failure = group.first_failure()) {
            throw session_error(proto::error_code::protocol_error, *failure);
        }
        proto::udp_sender_report sent;
        for (const auto& counts : group.sent_counts()) {
            sent.streams.push_back({counts.packets, counts.bytes});
        }
        co_await control.write(sent, clock::now() + kResultsTimeout);
        const auto received = co_await control.expect<proto::udp_receiver_report>(
            clock::now() + kResultsTimeout, "the server's UDP_RECEIVER_REPORT");
        group.close_all();
        co_await group.wait_all_closed(clock::now() + kResultsTimeout);
        fill_udp_report(report, request, received, sent);
        report.udp->receive_buffer_overflows = group.receiver_socket_drops();
    }

    runner_session& session_;
};

}  // namespace

std::unique_ptr<direction_runner> make_udp_runner(runner_session& session) {
    return std::make_unique<udp_runner>(session);
}

}  // namespace speed::client
