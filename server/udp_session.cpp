// The server's UDP endpoints of a session: a test's flows as the listener creates them (the test itself runs
// in server/runners/udp_runner.cpp) and the latency echo.
#include "server/udp_session.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "common/ping_limiter.hpp"
#include "net/clock.hpp"
#include "net/errors.hpp"
#include "net/random.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

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

}  // namespace speed::server
