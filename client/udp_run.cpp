#include "client/udp_run.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "client/connect.hpp"
#include "client/latency.hpp"
#include "common/time_units.hpp"
#include "common/udp_wire.hpp"
#include "net/clock.hpp"
#include "net/udp_socket.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;

namespace {

using proto::kReplyTimeout;
using proto::kUdpSetupTimeout;

// A probe whose PONG has not come back this long after the last PING was sent is lost.
constexpr auto kProbeLossTimeout = 1s;

}  // namespace

std::uint32_t udp_length_for(const test_options& options, const asio::ip::address& server) {
    if (options.udp_length != 0) {
        return options.udp_length;
    }
    const bool ipv6 = server.is_v6() && !server.to_v6().is_v4_mapped();
    return ipv6 ? udp::kDefaultIpv6DatagramBytes : udp::kDefaultIpv4DatagramBytes;
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

asio::awaitable<latency_report> measure_udp_latency(const test_options& options,
                                                    const asio::ip::tcp::endpoint& server_control,
                                                    net::control_channel& control) {
    const proto::udp_echo_request ask;
    co_await control.write(ask, clock::now() + kReplyTimeout);
    const auto setup = co_await control.expect<proto::udp_setup>(clock::now() + kReplyTimeout, "UDP_SETUP");
    auto executor = co_await asio::this_coro::executor;
    asio::ip::udp::socket socket(executor);
    const asio::ip::udp::endpoint server(server_control.address(), setup.port);
    prepare_udp_socket(socket, server, options.sockets, std::nullopt);
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
