// The server's half of UDP tests (docs/protocol.md, "UDP tests"): setup over the control connection, the
// cookie handshake through the listener, then sending a download or receiving an upload on per-stream
// sockets, and the exact end-of-test exchange over the control connection again.
#include "server/udp_session.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "common/limits.hpp"
#include "common/ping_limiter.hpp"
#include "common/test_timing.hpp"
#include "common/udp_rate_control.hpp"
#include "common/units.hpp"
#include "net/clock.hpp"
#include "net/errors.hpp"
#include "net/random.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"
#include "net/udp_window.hpp"
#include "server/session.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

// As in server/session.cpp, every write and the end of a test share one deadline: kResultsTimeout.
using proto::kFirstByteTimeout;
using proto::kResultsTimeout;
using proto::kUdpSetupTimeout;

// How often a UDP sender's session checks its flows and the STOP deadline while it waits for STOP.
constexpr auto kSenderWatchInterval = 100ms;

// Runs on the probe thread (server/probe_echo.hpp), like the TCP probes: a PING flood costs that thread, not
// the control thread's deadlines. PINGs are rate-limited as on a TCP probe connection
// (common/ping_limiter.hpp); a peer that keeps flooding gets no more answers for this echo.
asio::awaitable<void> echo_loop(std::shared_ptr<asio::ip::udp::socket> socket, std::uint64_t token) {
    std::array<std::uint8_t, 2048> buffer{};
    ping_limiter limiter;
    for (;;) {
        auto [ec, bytes] =
            co_await socket->async_receive(asio::buffer(buffer), as_tuple(asio::use_awaitable));
        if (ec) {
            if (!socket->is_open() || ec == asio::error::operation_aborted) {
                co_return;
            }
            continue;  // an ICMP error from the client's side: keep answering whatever comes
        }
        auto h = udp::read_header(std::span<const std::uint8_t>(buffer.data(), bytes));
        if (!h || h->token != token) {
            continue;
        }
        // Every answer is at most as large as what came in.
        std::array<std::uint8_t, udp::kHandshakeSize> reply{};
        if (h->type == udp::datagram_type::hello && bytes >= udp::kHandshakeSize) {
            h->type = udp::datagram_type::hello_ack;
            if (net::drop_handshake_for_test()) {
                continue;
            }
            udp::write_handshake(reply, *h, 0);
            net::send_datagram(socket->native_handle(), reply);
        } else if (h->type == udp::datagram_type::ping) {
            const auto verdict = limiter.on_ping(net::now_ns());
            if (verdict == ping_limiter::verdict::close) {
                spdlog::info("udp echo: {} PINGs over {}/s dropped; no more answers", limiter.dropped(),
                             ping_limiter::kPingsPerSecond);
                asio::error_code ignored;
                socket->close(ignored);
                co_return;
            }
            if (verdict == ping_limiter::verdict::drop) {
                continue;
            }
            h->type = udp::datagram_type::pong;
            udp::write_header(reply, *h);
            net::send_datagram(socket->native_handle(), std::span(reply).first(udp::kHeaderSize));
        }
    }
}

asio::awaitable<void> send_udp_interval(net::control_channel& channel,
                                        const proto::udp_interval_report& report) {
    co_await channel.write(report, clock::now() + kResultsTimeout);
}

}  // namespace

asio::ip::udp::socket open_flow_socket(const asio::any_io_executor& executor, const udp_local& local,
                                       const asio::ip::udp::endpoint& peer, asio::error_code& ec) {
    asio::ip::udp::socket socket(executor);
    const asio::ip::udp::endpoint bind_to(local.address, local.port);
    socket.open(bind_to.protocol(), ec);
    if (ec) {
        return socket;
    }
    if (auto reuse = net::set_reuse_port(socket.native_handle())) {
        ec = reuse;
        return socket;
    }
    if (bind_to.protocol() == asio::ip::udp::v6()) {
        socket.set_option(asio::ip::v6_only(false), ec);  // IPv4-mapped peers on a dual-stack server
    }
    if (!ec) {
        socket.bind(bind_to, ec);
    }
    if (!ec) {
        socket.connect(peer, ec);
    }
    return socket;
}

// ---- udp_test_flows ----

udp_test_flows::udp_test_flows(asio::any_io_executor control, std::size_t streams,
                               net::udp_flow_settings settings, asio::ip::address control_peer,
                               udp_local local, net::io_pool& data_pool)
    : control_peer_(unmapped(control_peer)),
      local_(std::move(local)),
      data_pool_(data_pool),
      group_(std::move(control), streams, settings) {}

void udp_test_flows::on_hello(std::uint16_t stream, const asio::ip::udp::endpoint& source,
                              std::size_t bytes) {
    if (stream >= group_.size() || group_.attached(stream)) {
        // Out of range, or a retransmission that raced the stream's own socket: that socket answers it.
        return;
    }
    asio::error_code ec;
    auto socket = open_flow_socket(data_pool_.next().get_executor(), local_, source, ec);
    if (ec) {
        spdlog::warn("udp: cannot open the socket for stream {} to {}: {}", stream,
                     source.address().to_string(), ec.message());
        return;
    }
    net::udp_path_cookie path;
    path.hello_bytes = bytes;
    path.cookie = net::random_nonzero_u64();  // 0 is the cookie of a first HELLO
    group_.attach(stream, std::move(socket), path);
}

// ---- udp_echo ----

udp_echo::udp_echo(asio::any_io_executor executor, std::uint64_t token, asio::ip::address control_peer,
                   udp_local local)
    : executor_(std::move(executor)),
      token_(token),
      control_peer_(unmapped(control_peer)),
      local_(std::move(local)) {}

udp_echo::~udp_echo() {
    if (socket_) {
        // The socket belongs to the probe thread, which may be waiting on it: close it there.
        asio::post(executor_, [socket = socket_] {
            asio::error_code ignored;
            socket->close(ignored);
        });
    }
}

void udp_echo::on_hello(std::uint16_t stream, const asio::ip::udp::endpoint& source, std::size_t bytes) {
    if (stream != 0 || socket_ || bytes < udp::kHandshakeSize) {
        return;
    }
    asio::error_code ec;
    auto socket = std::make_shared<asio::ip::udp::socket>(open_flow_socket(executor_, local_, source, ec));
    if (ec) {
        spdlog::warn("udp: cannot open the echo socket to {}: {}", source.address().to_string(),
                     ec.message());
        return;
    }
    socket_ = socket;
    if (!net::drop_handshake_for_test()) {
        std::array<std::uint8_t, udp::kHandshakeSize> ack{};
        udp::write_handshake(ack, {udp::datagram_type::hello_ack, 0, token_, 0, 0}, 0);
        net::send_datagram(socket->native_handle(), ack);
    }
    asio::co_spawn(executor_, echo_loop(socket, token_), net::log_if_failed("udp echo"));
}

// ---- the session's UDP tests ----

udp_local session::udp_local_endpoint() {
    asio::error_code ec;
    const auto local = channel_.socket().local_endpoint(ec);
    return {local.address(), context_->udp ? context_->udp->port() : std::uint16_t{0}};
}

void session::end_udp() {
    if (context_->udp) {
        context_->udp->remove(udp_token_);
    }
    if (udp_flows_) {
        if (const auto wrong = udp_flows_->wrong_address_hellos.load(); wrong > 0) {
            summaries_.push_back(fmt::format("{} UDP handshakes from a wrong address dropped", wrong));
        }
        if (const auto rejected = udp_flows_->group().rejected_datagrams(); rejected > 0) {
            summaries_.push_back(fmt::format("{} UDP datagrams without the test's token dropped", rejected));
        }
        if (const auto drops = udp_flows_->group().data_drops(); drops.total() > 0) {
            summaries_.push_back(fmt::format(
                "{} UDP DATA datagrams dropped ({} before the streams were ready, {} of a wrong length, {} "
                "with an implausible sequence number)",
                drops.total(), drops.before_ready, drops.wrong_length, drops.implausible_sequence));
        }
        context_->metrics.udp_flow_drops(udp_flows_->group().data_drops(),
                                         udp_flows_->group().rejected_datagrams());
        udp_flows_->group().close_all();
    }
    udp_flows_.reset();
    udp_echo_.reset();
}

asio::awaitable<void> session::start_udp_echo() {
    end_udp();
    if (!context_->udp || !context_->config.limits.udp) {
        throw session_error(proto::error_code::unsupported, "this server does not offer UDP tests");
    }
    udp_token_ = net::random_nonzero_u64();
    udp_echo_ = std::make_shared<udp_echo>(context_->probe_context->get_executor(), udp_token_,
                                           peer_.address(), udp_local_endpoint());
    context_->udp->add(udp_token_, udp_echo_);
    const proto::udp_setup setup{udp_token_, context_->udp->port(), 0};
    co_await channel_.write(setup, clock::now() + kResultsTimeout);
}

asio::awaitable<void> session::run_udp_test(const proto::test_request& request) {
    end_udp();
    if (!context_->udp) {
        throw session_error(proto::error_code::unsupported, "this server does not offer UDP tests");
    }
    const bool download = request.dir == proto::direction::download;
    net::udp_flow_settings settings;
    settings.token = net::random_nonzero_u64();
    settings.datagram_bytes = request.udp_payload_bytes;
    settings.role = download ? net::udp_role::sender : net::udp_role::receiver;
    settings.client = false;
    settings.stall_timeout = std::chrono::nanoseconds(stall_timeout_for(request));
    udp_token_ = settings.token;
    udp_flows_ = std::make_shared<udp_test_flows>(channel_.socket().get_executor(), request.streams, settings,
                                                  peer_.address(), udp_local_endpoint(), context_->data_pool);
    auto& group = udp_flows_->group();
    context_->udp->add(udp_token_, udp_flows_);

    const proto::test_accept accept{next_test_id_++, ""};
    co_await channel_.write(accept, clock::now() + kResultsTimeout);
    const std::uint64_t cap = server_rate_cap(request, context_->config.limits);
    const proto::udp_setup setup{udp_token_, context_->udp->port(), cap};
    co_await channel_.write(setup, clock::now() + kResultsTimeout);

    const auto setup_deadline = clock::now() + kUdpSetupTimeout;
    while (group.established_count() < request.streams) {
        if (clock::now() >= setup_deadline) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("only {} of {} UDP streams completed their handshake within {} s (is UDP "
                            "from the client to port {} blocked?)",
                            group.established_count(), request.streams, kUdpSetupTimeout.count(),
                            context_->udp->port()));
        }
        co_await group.wait_for_change(setup_deadline);
    }
    // Retransmitted HELLOs now reach the streams' own sockets; the token is done with the listener.
    context_->udp->remove(udp_token_);
    // An upload's DATA counts from here on; the client sends none before it reads STREAMS_READY.
    group.accept_data(udp::stream_rate_bound(request.bitrate, cap, request.streams));
    protocol_.streams_ready();
    const proto::streams_ready ready;
    co_await channel_.write(ready, clock::now() + kResultsTimeout);
    if (download) {
        co_await send_udp_download(request);
    } else {
        co_await receive_udp_upload(request);
    }
}

asio::awaitable<void> session::send_udp_download(const proto::test_request& request) {
    auto& group = udp_flows_->group();
    const std::uint64_t cap = server_rate_cap(request, context_->config.limits);
    net::udp_send_plan plan;
    plan.bits_per_second = static_cast<double>(request.bitrate) / request.streams;
    plan.max_bits_per_second = static_cast<double>(cap) / request.streams;
    // The test's byte budget (--max-bytes), as for TCP: what the receiver may see, so what the sender sends
    // at most, whatever the client does with FEEDBACK and STOP.
    const test_budget budget = test_budget::for_test(request, context_->config.limits);
    if (budget.max_bytes != 0) {
        plan.max_bytes = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(static_cast<double>(budget.max_bytes) * test_budget::kRateMargin) /
                   request.streams);
    }
    group.start_sending(plan);

    // The sender needs FEEDBACK that echoes its DATA's nonce to keep going (net/udp_flow.hpp), so a client
    // that vanishes stops the datagrams within a second. A client that stays but never sends STOP is given
    // the test's time plus max(1 s, that time), within the session protocol's own deadline for STOP.
    const auto test_length = std::chrono::milliseconds(std::uint64_t{request.omit_ms} + request.duration_ms);
    const auto grace = std::max<std::chrono::milliseconds>(1s, test_length);
    const auto now = clock::now();
    const auto give_up = std::min(now + test_length + grace, now + protocol_.read_timeout());
    while (!co_await channel_.wait_readable(std::min(give_up, clock::now() + kSenderWatchInterval))) {
        if (auto failure = group.first_failure()) {
            throw session_error(proto::error_code::protocol_error, *failure);
        }
        if (clock::now() >= give_up) {
            throw session_error(proto::error_code::timeout,
                                fmt::format("no STOP from the client within {:.1f} s after the test's time",
                                            std::chrono::duration<double>(grace).count()));
        }
    }
    const session_step step = co_await next_step();
    if (step.what != session_step::kind::stop_sending) {
        throw session_error(proto::error_code::internal, "session protocol out of step");
    }
    group.stop_sending();
    co_await group.wait_senders_stopped(clock::now() + kResultsTimeout);
    if (auto failure = group.first_failure()) {
        throw session_error(proto::error_code::protocol_error, *failure);
    }
    proto::udp_sender_report report;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    for (const auto& counts : group.sent_counts()) {
        report.streams.push_back({counts.packets, counts.bytes});
        packets += counts.packets;
        bytes += counts.bytes;
    }
    co_await channel_.write(report, clock::now() + kResultsTimeout);
    // The flows stay open until the next request: FEEDBACK still in flight lands on them, not the listener.
    metrics_.test_completed(request, bytes);
    summaries_.push_back(fmt::format(
        "udp download {} stream{}: sent {} datagrams ({}, {} target)", request.streams,
        request.streams == 1 ? "" : "s", packets, units::format_bytes(bytes),
        request.bitrate == 0 ? std::string("adaptive")
                             : units::format_bits_per_second(static_cast<double>(request.bitrate))));
}

asio::awaitable<void> session::receive_udp_upload(const proto::test_request& request) {
    auto& group = udp_flows_->group();
    const auto plan = test_timing::of(request).plan();
    auto& channel = channel_;
    const net::udp_window_result window = co_await net::measure_udp_receiver_window(
        group, plan, clock::now() + kFirstByteTimeout,
        [&channel](const proto::udp_interval_report& report) { return send_udp_interval(channel, report); });

    protocol_.window_closed();
    const proto::stop stop{proto::stop_reason::window_complete};
    co_await channel_.write(stop, clock::now() + kResultsTimeout);
    const session_step step = co_await next_step();
    if (step.what != session_step::kind::test_complete) {
        throw session_error(proto::error_code::internal, "session protocol out of step");
    }
    const proto::udp_sender_report& sent = step.udp_sender_report;
    co_await net::drain_and_close(group, sent, clock::now() + net::kDrainTimeout);
    const proto::udp_receiver_report report =
        net::make_udp_receiver_report(window, group.receiver_finals(), sent);
    co_await channel_.write(report, clock::now() + kResultsTimeout);

    std::uint64_t sent_packets = 0;
    std::uint64_t lost = 0;
    for (std::size_t i = 0; i < report.streams.size(); ++i) {
        sent_packets += sent.streams[i].packets;
        lost += report.streams[i].lost_packets;
    }
    metrics_.test_completed(request, window.totals.bytes() + window.totals.omitted_bytes,
                            window.totals.bits_per_second());
    summaries_.push_back(fmt::format(
        "udp upload {} stream{}: received {} ({} in {:.2f} s, receiver side), lost {}/{}", request.streams,
        request.streams == 1 ? "" : "s", units::format_bits_per_second(window.totals.bits_per_second()),
        units::format_bytes(window.totals.bytes()), window.totals.seconds(), lost, sent_packets));
}

}  // namespace speed::server
