#include "client/udp_run.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "client/latency.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/udp_accounting.hpp"
#include "common/udp_rate_control.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/udp_flow.hpp"
#include "net/udp_socket.hpp"
#include "net/udp_window.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kReplyTimeout;
using proto::kResultsTimeout;
using proto::kUdpSetupTimeout;

// A download whose data stops this long ends with an error (speedsrv's default --stall-timeout).
constexpr auto kStallTimeout = 10s;
// A probe whose PONG has not come back this long after the last PING was sent is lost.
constexpr auto kProbeLossTimeout = 1s;

std::string describe(const asio::ip::address& address, std::uint16_t port) {
    return address.to_string() + " port " + std::to_string(port);
}

proto::test_request make_udp_request(const udp_run& run, proto::direction dir) {
    proto::test_request request = tcp_request_for(run.options, dir);
    request.proto = proto::transport::udp;
    request.congestion.clear();  // UDP has none
    request.udp_payload_bytes = udp_length_for(run.options, run.server.address());
    return request;
}

// TEST_REQUEST (and its TEST_AUTH on an authenticated session) -> TEST_ACCEPT, UDP_SETUP.
asio::awaitable<proto::udp_setup> request_udp_test(const udp_run& run, net::control_channel& control,
                                                   const proto::test_request& request) {
    co_await send_test_request(control, run.auth, request, clock::now() + kReplyTimeout);
    co_await control.expect<proto::test_accept>(clock::now() + kReplyTimeout, "TEST_ACCEPT");
    co_return co_await control.expect<proto::udp_setup>(clock::now() + kReplyTimeout, "UDP_SETUP");
}

// One connected socket per stream on the data-plane threads, then the handshake of every stream.
asio::awaitable<void> open_udp_flows(const udp_run& run, net::udp_flow_group& group, std::uint16_t port) {
    const asio::ip::udp::endpoint server(run.server.address(), port);
    for (std::size_t index = 0; index < group.size(); ++index) {
        asio::ip::udp::socket socket(run.data_pool.next());
        socket.open(server.protocol());
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

asio::awaitable<void> record_udp_interval(const udp_run& run, direction_report& report,
                                          const proto::udp_interval_report& closed) {
    interval_report entry;
    entry.start_seconds = units::ns_to_seconds(closed.start_ns);
    entry.end_seconds = units::ns_to_seconds(closed.end_ns);
    entry.omitted = closed.omitted;
    entry.udp = to_udp_interval(closed, entry);
    entry.bits_per_second = units::bits_per_second(entry.bytes, entry.end_seconds - entry.start_seconds);
    report.intervals.push_back(std::move(entry));
    run.progress.interval_done(report.dir, report.intervals.back());
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

}  // namespace

std::uint32_t udp_length_for(const test_options& options, const asio::ip::address& server) {
    if (options.udp_length != 0) {
        return options.udp_length;
    }
    const bool ipv6 = server.is_v6() && !server.to_v6().is_v4_mapped();
    return ipv6 ? udp::kDefaultIpv6DatagramBytes : udp::kDefaultIpv4DatagramBytes;
}

asio::awaitable<void> run_udp_download(const udp_run& run, net::control_channel& control,
                                       direction_report& report) {
    const proto::test_request request = make_udp_request(run, proto::direction::download);
    const proto::udp_setup setup = co_await request_udp_test(run, control, request);
    report.server_cap_bits_per_second = setup.max_bitrate;
    net::udp_flow_settings settings;
    settings.token = setup.token;
    settings.datagram_bytes = request.udp_payload_bytes;
    settings.role = net::udp_role::receiver;
    settings.client = true;
    settings.stall_timeout = kStallTimeout;
    net::udp_flow_group group(co_await asio::this_coro::executor, request.streams, settings);
    // From the start, not at STREAMS_READY: the server's first DATA may overtake that message. The server
    // sends none before every stream's handshake, so the rate bound still holds from here.
    group.accept_data(udp::stream_rate_bound(request.bitrate, setup.max_bitrate, request.streams));
    co_await open_udp_flows(run, group, setup.port);
    co_await control.expect<proto::streams_ready>(clock::now() + kReplyTimeout, "STREAMS_READY");
    run.progress.direction_started(proto::direction::download, report);

    const net::udp_window_result window = co_await net::measure_udp_receiver_window(
        group, test_timing::of(request).plan(), clock::now() + kFirstByteTimeout,
        [&run, &report](const proto::udp_interval_report& closed) {
            return record_udp_interval(run, report, closed);
        });
    const proto::stop stop{proto::stop_reason::window_complete};
    co_await control.write(stop, clock::now() + kResultsTimeout);
    const auto sent = co_await control.expect<proto::udp_sender_report>(clock::now() + kResultsTimeout,
                                                                        "the server's UDP_SENDER_REPORT");
    co_await net::drain_and_close(group, sent, clock::now() + net::kDrainTimeout);
    const proto::udp_receiver_report received =
        net::make_udp_receiver_report(window, group.receiver_finals(), sent);
    fill_udp_report(report, request, received, sent);
}

asio::awaitable<void> run_udp_upload(const udp_run& run, net::control_channel& control,
                                     direction_report& report) {
    const proto::test_request request = make_udp_request(run, proto::direction::upload);
    const proto::udp_setup setup = co_await request_udp_test(run, control, request);
    report.server_cap_bits_per_second = setup.max_bitrate;
    net::udp_flow_settings settings;
    settings.token = setup.token;
    settings.datagram_bytes = request.udp_payload_bytes;
    settings.role = net::udp_role::sender;
    settings.client = true;
    net::udp_flow_group group(co_await asio::this_coro::executor, request.streams, settings);
    co_await open_udp_flows(run, group, setup.port);
    co_await control.expect<proto::streams_ready>(clock::now() + kReplyTimeout, "STREAMS_READY");
    net::udp_send_plan plan;
    plan.bits_per_second = static_cast<double>(request.bitrate) / request.streams;
    plan.max_bits_per_second = static_cast<double>(setup.max_bitrate) / request.streams;
    group.start_sending(plan);
    run.progress.direction_started(proto::direction::upload, report);

    // The server is the receiver: it reports each interval, then STOP when its window has closed.
    const auto stop_deadline = clock::now() + test_timing::of(request).client_stop_wait();
    for (;;) {
        proto::message msg = co_await control.read(stop_deadline, "the server's STOP");
        if (auto* interval = std::get_if<proto::udp_interval_report>(&msg)) {
            co_await record_udp_interval(run, report, *interval);
            continue;
        }
        if (std::holds_alternative<proto::stop>(msg)) {
            break;
        }
        throw net::control_channel::unexpected(msg, "the server's STOP");
    }
    group.stop_sending();
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
}

// ---- latency probes ----

namespace {

struct probe_state {
    std::vector<std::optional<double>> rtt_ms;
    std::size_t answered = 0;
};

// Reads every queued datagram; HELLO_ACKs set `established`, PONGs fill in their probe's round trip.
void read_probe_replies(asio::ip::udp::socket& socket, std::uint64_t token, probe_state& probes,
                        bool& established) {
    std::array<std::uint8_t, 2048> buffer{};
    for (;;) {
        asio::error_code ec;
        const std::size_t bytes = socket.receive(asio::buffer(buffer), 0, ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            return;
        }
        if (ec == asio::error::connection_refused) {
            throw udp_path_error("the server's UDP port is unreachable (ICMP port unreachable)");
        }
        if (ec) {
            return;
        }
        const std::int64_t now = net::now_ns();
        const auto h = udp::read_header(std::span<const std::uint8_t>(buffer.data(), bytes));
        if (!h || h->token != token) {
            continue;
        }
        if (h->type == udp::datagram_type::hello_ack) {
            established = true;
        } else if (h->type == udp::datagram_type::pong && h->sequence < probes.rtt_ms.size() &&
                   !probes.rtt_ms[h->sequence]) {
            probes.rtt_ms[h->sequence] =
                static_cast<double>(now - static_cast<std::int64_t>(h->timestamp_ns)) / 1e6;
            ++probes.answered;
        }
    }
}

// Waits until `socket` is readable or `until`, whichever comes first.
asio::awaitable<void> wait_readable(asio::ip::udp::socket& socket, asio::steady_timer& timer,
                                    clock::time_point until) {
    using namespace asio::experimental::awaitable_operators;
    timer.expires_at(until);
    co_await (socket.async_wait(asio::socket_base::wait_read, as_tuple(asio::use_awaitable)) ||
              timer.async_wait(as_tuple(asio::use_awaitable)));
}

// A PING, or a HELLO (with no cookie: the echo answers 1:1 and needs none).
void send_probe_datagram(asio::ip::udp::socket& socket, udp::datagram_type type, std::uint64_t token,
                         std::uint64_t sequence) {
    std::array<std::uint8_t, udp::kHandshakeSize> datagram{};
    const udp::header h{type, 0, token, sequence, static_cast<std::uint64_t>(net::now_ns())};
    std::span<const std::uint8_t> bytes(datagram);
    if (type == udp::datagram_type::hello) {
        udp::write_handshake(datagram, h, 0);
    } else {
        udp::write_header(datagram, h);
        bytes = bytes.first(udp::kHeaderSize);
    }
    if (auto ec = net::send_datagram(socket.native_handle(), bytes); ec == std::errc::connection_refused) {
        throw udp_path_error("the server's UDP port is unreachable (ICMP port unreachable)");
    }
}

}  // namespace

asio::awaitable<latency_report> measure_udp_latency(const udp_run& run, net::control_channel& control) {
    const auto& options = run.options;
    const proto::udp_echo_request ask;
    co_await control.write(ask, clock::now() + kReplyTimeout);
    const auto setup = co_await control.expect<proto::udp_setup>(clock::now() + kReplyTimeout, "UDP_SETUP");
    auto executor = co_await asio::this_coro::executor;
    asio::ip::udp::socket socket(executor);
    const asio::ip::udp::endpoint server(run.server.address(), setup.port);
    socket.open(server.protocol());
    socket.connect(server);
    socket.non_blocking(true);
    asio::steady_timer timer(executor);

    probe_state probes;
    probes.rtt_ms.resize(options.pings);
    bool established = false;
    try {
        const auto deadline = clock::now() + kUdpSetupTimeout;
        for (unsigned attempt = 0; !established; ++attempt) {
            if (clock::now() >= deadline) {
                throw udp_path_error(
                    "no answer to the UDP handshake from " + describe(server.address(), setup.port) +
                    " within " + std::to_string(kUdpSetupTimeout.count()) +
                    " s: UDP is probably blocked (speedcli --udp needs UDP to and from that port)");
            }
            if (!net::drop_handshake_for_test()) {
                send_probe_datagram(socket, udp::datagram_type::hello, setup.token, attempt);
            }
            const auto retry = std::min(clock::now() + net::handshake_retry_delay(attempt), deadline);
            while (!established && clock::now() < retry) {
                co_await wait_readable(socket, timer, retry);
                read_probe_replies(socket, setup.token, probes, established);
            }
        }
        // PINGs on a fixed schedule; PONGs are read whenever they come.
        const auto start = clock::now();
        const auto interval = units::seconds_to_ns(options.ping_interval_seconds);
        for (std::uint32_t sequence = 0; sequence < options.pings; ++sequence) {
            const auto scheduled = start + interval * sequence;
            while (clock::now() < scheduled) {
                co_await wait_readable(socket, timer, scheduled);
                read_probe_replies(socket, setup.token, probes, established);
            }
            send_probe_datagram(socket, udp::datagram_type::ping, setup.token, sequence);
        }
        const auto give_up = clock::now() + kProbeLossTimeout;
        while (probes.answered < options.pings && clock::now() < give_up) {
            co_await wait_readable(socket, timer, give_up);
            read_probe_replies(socket, setup.token, probes, established);
        }
    } catch (const asio::system_error& e) {
        throw udp_path_error(std::string("UDP latency probes failed: ") + e.what());
    }
    latency_report report;
    report.sent = options.pings;
    for (const auto& rtt : probes.rtt_ms) {
        if (rtt) {
            report.rtt_ms.push_back(*rtt);
        }
    }
    report.lost = report.sent - static_cast<std::uint32_t>(report.rtt_ms.size());
    summarize_latency(report);
    co_return report;
}

}  // namespace speed::client
