#include "server/server.hpp"

#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/use_awaitable.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <array>
#include <stdexcept>
#include <string>

#include "common/iperf3_protocol.hpp"
#include "common/peer_text.hpp"
#include "net/address.hpp"
#include "net/errors.hpp"
#include "net/socket_options.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"
#include "server/iperf3_session.hpp"
#include "server/probe_echo.hpp"
#include "server/session.hpp"
#include "server/web_server.hpp"

namespace speed::server {

using asio::experimental::as_tuple;
using asio::ip::tcp;

namespace {

// Keepalive on control and probe connections, so a peer that vanished while the session waits is noticed:
// probes after 10 s of silence, every 5 s, 3 unanswered ones end the connection. TCP_USER_TIMEOUT ends a
// connection whose sent data stays unacknowledged for 20 s.
constexpr int kKeepaliveIdleSeconds = 10;
constexpr int kKeepaliveIntervalSeconds = 5;
constexpr int kKeepaliveProbes = 3;
constexpr unsigned kUserTimeoutMs = 20'000;
// How often the server reports log lines it held back (server/log_limiter.hpp).
constexpr auto kSuppressedSummaryInterval = std::chrono::seconds(10);

void watch_liveness(tcp::socket& socket) {
    net::set_keepalive(socket.native_handle(), kKeepaliveIdleSeconds, kKeepaliveIntervalSeconds,
                       kKeepaliveProbes);
    net::set_user_timeout(socket.native_handle(), kUserTimeoutMs);
}

// Data and probe connections must come from their session's control address: the token travels in clear
// text, and an on-path observer must not be able to attach streams to someone else's session.
constexpr const char* kForeignConnection =
    "this connection does not come from the address of its session's control connection";

// Whether two peers are the same host address (an IPv4 client seen as IPv4-mapped IPv6 or not).
bool same_address(const tcp::endpoint& a, const tcp::endpoint& b) {
    return net::plain_address(a.address()) == net::plain_address(b.address());
}

// The cheap "busy" answer for a connection refused at accept: discard what the client may have sent already,
// one non-blocking write of an ERROR frame (a fresh socket's send buffer always has room for it), close.
// No coroutine, no timer, no read of the HELLO.
void refuse_at_accept(tcp::socket& socket, const std::string& reason) {
    const int fd = socket.native_handle();
    std::array<std::uint8_t, 512> discard{};
    while (::recv(fd, discard.data(), discard.size(), MSG_DONTWAIT) > 0) {
    }
    const auto frame = proto::encode(proto::error{proto::error_code::server_busy, reason});
    [[maybe_unused]] const ssize_t sent = ::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    asio::error_code ignored;
    socket.close(ignored);
}

enum class opening { speedsrv, iperf3, unknown };

// What the first bytes a connection sent (left in the socket) open: an iperf3 cookie (four bytes of its
// alphabet), anything else (one byte outside it settles that: a speedsrv frame starts with its type, 0x01 for
// HELLO), or unknown when the peer closed or stayed silent before `deadline` (the HELLO read that follows
// reports that).
asio::awaitable<opening> peek_opening(net::control_channel& channel, net::clock::time_point deadline) {
    // A client that sends cookie-like bytes in pieces is polled at this pace until the deadline; the
    // handshake caps bound how many do so at once. speedcli's HELLO is told apart by its first byte, without
    // a poll.
    constexpr auto kPartialPoll = std::chrono::milliseconds(5);
    std::array<std::uint8_t, 4> first{};
    asio::steady_timer pause(channel.socket().get_executor());
    while (co_await channel.wait_readable(deadline)) {
        const ssize_t got =
            ::recv(channel.socket().native_handle(), first.data(), first.size(), MSG_PEEK | MSG_DONTWAIT);
        if (got > 0) {
            const auto bytes = std::span<const std::uint8_t>(first.data(), static_cast<std::size_t>(got));
            if (!iperf3::starts_like_iperf3(bytes)) {
                co_return opening::speedsrv;
            }
            if (bytes.size() == first.size()) {
                co_return opening::iperf3;
            }
        }
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            break;
        }
        // Fewer bytes and then the peer's FIN: nothing more comes, and the bytes cannot be a cookie.
        pollfd hangup{channel.socket().native_handle(), POLLRDHUP, 0};
        if (::poll(&hangup, 1, 0) > 0 && (hangup.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
            break;
        }
        // The socket stays readable while those bytes wait: the deadline is checked here, not by the wait.
        if (net::clock::now() >= deadline) {
            break;
        }
        pause.expires_after(kPartialPoll);
        co_await pause.async_wait(as_tuple(asio::use_awaitable));
    }
    co_return opening::unknown;
}

// A connection that opened like an iperf3 cookie: a data connection of the iperf3 session its cookie names,
// or a new iperf3 control connection under the same admission caps as any session.
asio::awaitable<void> handle_iperf3(std::shared_ptr<server_context> context, tcp::socket socket,
                                    tcp::endpoint peer, admission_control::slot handshake,
                                    net::clock::time_point deadline) {
    const host_key host = handshake.host();
    std::array<std::uint8_t, iperf3::kCookieSize> cookie{};
    const auto read_failed = co_await net::read_exactly(socket, asio::buffer(cookie), deadline);
    handshake.release();
    if (read_failed || !iperf3::is_cookie(cookie)) {
        const std::string reason = read_failed ? "no iperf3 cookie: " + read_failed.message()
                                               : std::string("the first 37 bytes are not an iperf3 cookie");
        log_limited(*context, log_kind::handshake, spdlog::level::info,
                    "connection from {} dropped during handshake: {}", fmt::streamed(peer), reason);
        context->metrics.handshake_failed(read_failed == asio::error::timed_out
                                              ? proto::error_code::timeout
                                              : proto::error_code::protocol_error);
        co_return;
    }
    const std::string name(cookie.begin(), cookie.end());
    if (const auto it = context->iperf3_sessions.find(name); it != context->iperf3_sessions.end()) {
        if (auto s = it->second.lock()) {
            context->metrics.handshake_done(proto::connection_kind::data);
            if (!same_address(s->peer(), peer)) {
                log_limited(*context, log_kind::stray_connection, spdlog::level::info,
                            "iperf3 data connection from {} refused: its control connection comes from {}",
                            fmt::streamed(peer), fmt::streamed(s->peer()));
                context->metrics.refused(refusal_reason::foreign_address);
                co_return;
            }
            // Not waiting for streams: a second control connection with a cookie in use names nothing new.
            s->attach_data(std::move(socket));
            co_return;
        }
    }
    context->metrics.handshake_done(proto::connection_kind::control);
    // iperf3 clients print "the server is busy running a test. try again later" for ACCESS_DENIED.
    const std::array<std::uint8_t, 1> denied{iperf3::byte_of(iperf3::state::access_denied)};
    if (context->shutting_down) {
        context->metrics.refused(refusal_reason::shutting_down);
        co_await net::write_all(socket, asio::buffer(denied), net::clock::now() + proto::kResultsTimeout);
        co_return;
    }
    auto admitted = context->admission.try_enter(admission_control::stage::session, host);
    if (!admitted.admitted()) {
        log_limited(*context, log_kind::refusal, spdlog::level::warn, "iperf3 session from {} refused: {}",
                    fmt::streamed(peer), admitted.refusal);
        context->metrics.refused(refusal_reason::session_admission);
        co_await net::write_all(socket, asio::buffer(denied), net::clock::now() + proto::kResultsTimeout);
        co_return;
    }
    context->metrics.admitted(true);
    watch_liveness(socket);
    auto created = std::make_shared<iperf3_session>(context, std::move(socket), peer, cookie,
                                                    std::move(admitted.granted));
    co_await iperf3_session::run(std::move(created));
}

// What to do with a connection once its HELLO has been read. `handshake` is its place under the handshake
// caps, given back as soon as the HELLO is in.
asio::awaitable<void> handle_connection(std::shared_ptr<server_context> context, tcp::socket socket,
                                        tcp::endpoint peer, admission_control::slot handshake) {
    const host_key host = handshake.host();
    net::control_channel channel(std::move(socket));
    const auto handshake_deadline = net::clock::now() + context->config.handshake_timeout;
    if (context->config.iperf3) {
        if (co_await peek_opening(channel, handshake_deadline) == opening::iperf3) {
            co_await handle_iperf3(context, channel.release_socket(), peer, std::move(handshake),
                                   handshake_deadline);
            co_return;
        }
    }
    proto::hello hello;
    std::optional<proto::error> refusal;
    try {
        hello = co_await channel.expect<proto::hello>(handshake_deadline, "HELLO", proto::kMaxHelloPayload);
    } catch (const net::session_error& e) {
        log_limited(*context, log_kind::handshake, spdlog::level::info,
                    "connection from {} dropped during handshake: {}", fmt::streamed(peer),
                    escape_for_log(e.what()));
        refusal = proto::error{e.code(), e.what()};
        context->metrics.handshake_failed(e.code());
    }
    handshake.release();
    if (refusal) {
        co_await channel.send_error_quietly(refusal->code, refusal->message);
        co_return;
    }
    if (hello.version != proto::kProtocolVersion) {
        const std::string reason = "this server speaks protocol version " +
                                   std::to_string(proto::kProtocolVersion) + ", the client version " +
                                   std::to_string(hello.version);
        log_limited(*context, log_kind::handshake, spdlog::level::info, "connection from {} refused: {}",
                    fmt::streamed(peer), reason);
        context->metrics.refused(refusal_reason::version);
        co_await channel.send_error_quietly(proto::error_code::version_mismatch, reason);
        co_return;
    }

    context->metrics.handshake_done(hello.kind);
    // The session a data or probe connection names, if it is live and the connection comes from its address.
    std::shared_ptr<session> s;
    if (hello.kind != proto::connection_kind::control) {
        s = context->sessions.find(hello.token);
        if (s && !same_address(s->peer(), peer)) {
            s->note_foreign_connection(hello.kind == proto::connection_kind::data ? "data" : "probe", peer);
            s.reset();
            context->metrics.refused(refusal_reason::foreign_address);
            const std::string reason = kForeignConnection;
            co_await channel.send_error_quietly(proto::error_code::unknown_session, reason);
            co_return;
        }
    }
    switch (hello.kind) {
        case proto::connection_kind::control: {
            if (context->shutting_down) {
                context->metrics.refused(refusal_reason::shutting_down);
                co_await channel.send_error_quietly(proto::error_code::shutting_down,
                                                    "the server is shutting down");
                co_return;
            }
            auto admitted = context->admission.try_enter(admission_control::stage::session, host);
            if (!admitted.admitted()) {
                log_limited(*context, log_kind::refusal, spdlog::level::warn, "session from {} refused: {}",
                            fmt::streamed(peer), admitted.refusal);
                context->metrics.refused(refusal_reason::session_admission);
                co_await channel.send_error_quietly(proto::error_code::server_busy, admitted.refusal);
                co_return;
            }
            context->metrics.admitted(true);
            watch_liveness(channel.socket());
            auto created = std::make_shared<session>(context, std::move(channel), peer, hello.software,
                                                     std::move(admitted.granted));
            co_await session::run(std::move(created));
            co_return;
        }
        case proto::connection_kind::data: {
            if (s) {
                s->attach_data(hello, channel.release_socket());
            } else {
                log_limited(*context, log_kind::stray_connection, spdlog::level::debug,
                            "data connection from {} names no live session; closed", fmt::streamed(peer));
            }
            co_return;
        }
        case proto::connection_kind::probe: {
            if (!s) {
                log_limited(*context, log_kind::stray_connection, spdlog::level::debug,
                            "probe connection from {} names no live session; closed", fmt::streamed(peer));
                co_await channel.send_error_quietly(proto::error_code::unknown_session,
                                                    "probe connection names no live session");
                co_return;
            }
            watch_liveness(channel.socket());
            auto probe =
                s->attach_probe(move_to_probe_echo(channel.release_socket(), *context->probe_context));
            s.reset();  // the probe connection must not keep its session alive
            if (!probe) {
                log_limited(*context, log_kind::stray_connection, spdlog::level::debug,
                            "probe connection from {} not taken by its session; closed", fmt::streamed(peer));
                co_return;
            }
            probe_connection::start(std::move(probe));
            co_return;
        }
    }
}

// Admits a new connection into the handshake stage and starts its handler, or turns it away cheaply.
void admit(const std::shared_ptr<server_context>& context, tcp::socket socket) {
    asio::error_code peer_error;
    const tcp::endpoint peer = socket.remote_endpoint(peer_error);
    if (peer_error) {
        return;  // already gone; the socket closes here
    }
    context->metrics.connection_accepted();
    const auto address = net::address_bytes(peer.address());
    auto admitted = context->admission.try_enter(admission_control::stage::handshake,
                                                 context->admission.host_of(address));
    if (!admitted.admitted()) {
        log_limited(*context, log_kind::refusal, spdlog::level::warn, "connection from {} refused: {}",
                    fmt::streamed(peer), admitted.refusal);
        context->metrics.refused(refusal_reason::handshake_admission);
        refuse_at_accept(socket, admitted.refusal);
        return;
    }
    context->metrics.admitted(false);
    const auto executor = socket.get_executor();
    asio::co_spawn(executor, handle_connection(context, std::move(socket), peer, std::move(admitted.granted)),
                   net::log_if_failed("connection handler"));
}

asio::awaitable<void> accept_loop(std::shared_ptr<server_context> context, tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            // Out of file descriptors or a transient error: log, pause briefly, carry on.
            log_limited(*context, log_kind::refusal, spdlog::level::warn, "accept failed: {}", ec.message());
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
            co_await pause.async_wait(as_tuple(asio::use_awaitable));
            continue;
        }
        // Nothing one connection does may end the loop: a failure here (out of memory) costs that connection.
        try {
            admit(context, std::move(socket));
        } catch (const std::exception& e) {
            spdlog::error("connection dropped at accept: {}", e.what());
        }
    }
}

// Reports log lines the rate limiter held back during a flood that has since stopped.
asio::awaitable<void> report_suppressed_logs(std::shared_ptr<server_context> context) {
    asio::steady_timer timer(context->control_context);
    while (!context->shutting_down) {
        timer.expires_after(kSuppressedSummaryInterval);
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
        for (std::size_t i = 0; i < kLogKinds; ++i) {
            const auto kind = static_cast<log_kind>(i);
            if (const std::uint64_t count = context->logs.take_suppressed(kind); count > 0) {
                spdlog::warn("{} similar {} message{} suppressed in the last {} s", count, name_of(kind),
                             count == 1 ? "" : "s", kSuppressedSummaryInterval.count());
            }
        }
    }
}

}  // namespace

server::server(asio::io_context& control_context, net::io_pool& data_pool, asio::io_context& probe_context,
               asio::io_context& web_context, server_config config)
    : context_(std::make_shared<server_context>(control_context, data_pool, std::move(config))) {
    context_->probe_context = &probe_context;
    context_->web_context = &web_context;
}

void server::start() {
    auto& cfg = context_->config;
    std::vector<tcp::endpoint> endpoints;
    if (cfg.bind_address.empty()) {
        endpoints.emplace_back(tcp::v6(), cfg.port);
    } else {
        endpoints.emplace_back(asio::ip::make_address(cfg.bind_address), cfg.port);
    }
    for (const auto& endpoint : endpoints) {
        auto acceptor = std::make_unique<tcp::acceptor>(context_->control_context);
        asio::error_code ec;
        acceptor->open(endpoint.protocol(), ec);
        if (ec && cfg.bind_address.empty()) {
            // No IPv6 on this host: listen on every IPv4 address instead.
            acceptor->open(tcp::v4());
            acceptor->set_option(tcp::acceptor::reuse_address(true));
            acceptor->bind(tcp::endpoint(tcp::v4(), cfg.port));
        } else {
            if (ec) {
                throw std::system_error(ec, "cannot open a socket for " + cfg.bind_address);
            }
            acceptor->set_option(tcp::acceptor::reuse_address(true));
            if (endpoint.protocol() == tcp::v6()) {
                // An explicit IPv6 address serves IPv6 only; the wildcard serves IPv4-mapped clients too.
                acceptor->set_option(asio::ip::v6_only(!cfg.bind_address.empty()));
            }
            acceptor->bind(endpoint);
        }
        acceptor->listen(asio::socket_base::max_listen_connections);
        acceptors_.push_back(std::move(acceptor));
    }
    if (cfg.limits.udp) {
        // UDP tests use the TCP listener's port number over UDP (server/udp_listener.hpp).
        udp_ = std::make_unique<udp_listener>(context_->control_context);
        for (const auto& acceptor : acceptors_) {
            const auto local = acceptor->local_endpoint();
            udp_->listen(asio::ip::udp::endpoint(local.address(), local.port()));
        }
        context_->udp = udp_.get();
        // What each UDP flow's receive buffer gets (net.core.rmem_max caps it), for operators sizing fast
        // tests.
        asio::ip::udp::socket probe(context_->control_context);
        asio::error_code ec;
        probe.open(asio::ip::udp::v4(), ec);
        if (!ec) {
            spdlog::info("udp: receive buffers of {} KiB per flow (net.core.rmem_max caps them)",
                         net::configure_udp_data_socket(probe.native_handle()) / 1024);
        }
    }
    for (auto& acceptor : acceptors_) {
        asio::co_spawn(context_->control_context, accept_loop(context_, *acceptor),
                       net::log_if_failed("accept loop"));
    }
    asio::co_spawn(context_->control_context, report_suppressed_logs(context_),
                   net::log_if_failed("log summary"));
    if (cfg.http_port) {
        // The browser test binds the same address as the native listener (its first one).
        web_config web{tcp::endpoint(acceptors_.front()->local_endpoint().address(), *cfg.http_port),
                       cfg.http_cors_origin, cfg.web};
        web_ = std::make_unique<web_server>(context_, std::move(web));
        try {
            web_->start();
        } catch (const std::exception& e) {
            // Said apart from the native listener's failure, which has the same words.
            throw std::runtime_error("the browser test's --http-port " + std::to_string(*cfg.http_port) +
                                     ": " + e.what());
        }
    }
}

std::optional<tcp::endpoint> server::http_endpoint() const {
    if (!web_) {
        return std::nullopt;
    }
    return web_->local_endpoint();
}

tcp::endpoint server::local_endpoint() const {
    return acceptors_.front()->local_endpoint();
}

std::string server::render_metrics() const {
    metrics_gauges gauges;
    gauges.sessions_active = context_->admission.count(admission_control::stage::session);
    gauges.handshakes_in_progress = context_->admission.count(admission_control::stage::handshake);
    if (udp_) {
        const auto drops = udp_->drops();
        gauges.udp_listener =
            udp_listener_drops{drops.malformed, drops.unknown_token, drops.wrong_address, drops.excess};
    }
    return context_->metrics.render(gauges);
}

void server::shutdown() {
    context_->shutting_down = true;
    if (web_) {
        web_->shutdown();
    }
    for (auto& acceptor : acceptors_) {
        asio::error_code ignored;
        acceptor->close(ignored);
    }
    for (auto& s : context_->sessions.all()) {
        s->abort();
    }
    for (auto& [cookie, weak] : context_->iperf3_sessions) {
        if (auto s = weak.lock()) {
            s->abort();
        }
    }
    if (udp_) {
        const auto& drops = udp_->drops();
        if (drops.total() > 0) {
            spdlog::info(
                "udp: {} datagrams dropped in all ({} malformed or not a HELLO, {} with an unknown token, {} "
                "from a wrong address)",
                drops.total(), drops.malformed, drops.unknown_token, drops.wrong_address);
        }
        udp_->close();
    }
}

}  // namespace speed::server
