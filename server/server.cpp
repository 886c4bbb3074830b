#include "server/server.hpp"

#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/use_awaitable.hpp>

#include "net/errors.hpp"
#include "net/spawn.hpp"
#include "server/probe_echo.hpp"
#include "server/session.hpp"

namespace speed::server {

using asio::experimental::as_tuple;
using asio::ip::tcp;

namespace {

// What to do with a connection once its HELLO has been read.
asio::awaitable<void> handle_connection(std::shared_ptr<server_context> context, tcp::socket socket) {
    asio::error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec) {
        co_return;  // already gone
    }
    net::control_channel channel(std::move(socket));
    proto::hello hello;
    std::optional<proto::error> refusal;
    try {
        hello = co_await channel.expect<proto::hello>(net::clock::now() + context->config.handshake_timeout,
                                                      "HELLO", proto::kMaxHelloPayload);
    } catch (const net::session_error& e) {
        spdlog::info("connection from {} dropped during handshake: {}", fmt::streamed(peer), e.what());
        refusal = proto::error{e.code(), e.what()};
    }
    if (refusal) {
        co_await channel.send_error_quietly(refusal->code, refusal->message);
        co_return;
    }
    if (hello.version != proto::kProtocolVersion) {
        const std::string reason = "this server speaks protocol version " +
                                   std::to_string(proto::kProtocolVersion) + ", the client version " +
                                   std::to_string(hello.version);
        spdlog::info("connection from {} refused: {}", fmt::streamed(peer), reason);
        co_await channel.send_error_quietly(proto::error_code::version_mismatch, reason);
        co_return;
    }

    switch (hello.kind) {
        case proto::connection_kind::control: {
            if (context->shutting_down) {
                co_await channel.send_error_quietly(proto::error_code::shutting_down,
                                                    "the server is shutting down");
                co_return;
            }
            if (context->sessions.size() >= context->config.max_sessions) {
                spdlog::warn("connection from {} refused: {} sessions already running", fmt::streamed(peer),
                             context->sessions.size());
                co_await channel.send_error_quietly(proto::error_code::server_busy,
                                                    "the server is busy (" +
                                                        std::to_string(context->sessions.size()) +
                                                        " tests running); try again later");
                co_return;
            }
            auto s = std::make_shared<session>(context, std::move(channel), peer, hello.software);
            co_await session::run(std::move(s));
            co_return;
        }
        case proto::connection_kind::data: {
            if (auto s = context->sessions.find(hello.token)) {
                s->attach_data(hello, channel.release_socket());
            } else {
                spdlog::debug("data connection from {} names no live session; closed", fmt::streamed(peer));
            }
            co_return;
        }
        case proto::connection_kind::probe: {
            if (!context->sessions.find(hello.token)) {
                co_await channel.send_error_quietly(proto::error_code::unknown_session,
                                                    "probe connection names no live session");
                co_return;
            }
            co_await run_probe_echo(channel.release_socket());
            co_return;
        }
    }
}

asio::awaitable<void> accept_loop(std::shared_ptr<server_context> context, tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            // Out of file descriptors or a transient error: log, pause briefly, carry on.
            spdlog::warn("accept failed: {}", ec.message());
            asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
            co_await pause.async_wait(as_tuple(asio::use_awaitable));
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), handle_connection(context, std::move(socket)),
                       net::log_if_failed("connection handler"));
    }
}

}  // namespace

server::server(asio::io_context& control_context, net::io_pool& data_pool, server_config config)
    : context_(std::make_shared<server_context>(control_context, data_pool, std::move(config))) {}

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
    }
    for (auto& acceptor : acceptors_) {
        asio::co_spawn(context_->control_context, accept_loop(context_, *acceptor),
                       net::log_if_failed("accept loop"));
    }
}

tcp::endpoint server::local_endpoint() const {
    return acceptors_.front()->local_endpoint();
}

void server::shutdown() {
    context_->shutting_down = true;
    for (auto& acceptor : acceptors_) {
        asio::error_code ignored;
        acceptor->close(ignored);
    }
    for (auto& s : context_->sessions.all()) {
        s->abort();
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
