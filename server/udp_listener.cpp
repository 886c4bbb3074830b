#include "server/udp_listener.hpp"

#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/use_awaitable.hpp>
#include <functional>
#include <span>

#include "common/udp_wire.hpp"
#include "net/socket_options.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"

namespace speed::server {

using asio::experimental::as_tuple;

namespace {
// Drops are summed up in one log line at most this often, so a flood cannot flood the log.
constexpr std::chrono::seconds kDropLogInterval{10};
}  // namespace

asio::ip::address unmapped(const asio::ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    return address;
}

udp_listener::udp_listener(asio::io_context& control) : control_(control) {}

udp_listener::~udp_listener() {
    close();
}

namespace {

asio::awaitable<void> read_loop(
    std::shared_ptr<asio::ip::udp::socket> socket,
    std::function<void(std::span<const std::uint8_t>, const asio::ip::udp::endpoint&)> handle) {
    std::array<std::uint8_t, 2048> buffer{};
    asio::ip::udp::endpoint source;
    for (;;) {
        auto [ec, bytes] =
            co_await socket->async_receive_from(asio::buffer(buffer), source, as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !socket->is_open()) {
                co_return;
            }
            continue;  // e.g. an ICMP error for something we never sent: ignore
        }
        handle(std::span<const std::uint8_t>(buffer.data(), bytes), source);
    }
}

}  // namespace

void udp_listener::listen(const asio::ip::udp::endpoint& endpoint) {
    auto entry = std::make_shared<asio::ip::udp::socket>(control_);
    auto& socket = *entry;
    socket.open(endpoint.protocol());
    if (auto ec = net::set_reuse_port(socket.native_handle())) {
        throw std::system_error(ec, "SO_REUSEPORT");
    }
    if (endpoint.protocol() == asio::ip::udp::v6()) {
        // The wildcard serves IPv4-mapped clients too, as the TCP listener does.
        socket.set_option(asio::ip::v6_only(!endpoint.address().is_unspecified()));
    }
    socket.bind(endpoint);
    port_ = socket.local_endpoint().port();
    asio::co_spawn(
        control_,
        read_loop(entry, [this](std::span<const std::uint8_t> datagram,
                                const asio::ip::udp::endpoint& source) { handle(datagram, source); }),
        net::log_if_failed("udp listener"));
    sockets_.push_back(std::move(entry));
}

void udp_listener::close() {
    for (auto& entry : sockets_) {
        asio::error_code ignored;
        entry->close(ignored);
    }
    handlers_.clear();
}

void udp_listener::add(std::uint64_t token, std::weak_ptr<udp_hello_handler> handler) {
    handlers_[token] = std::move(handler);
}

void udp_listener::remove(std::uint64_t token) {
    handlers_.erase(token);
}

void udp_listener::handle(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source) {
    const auto h = udp::read_header(datagram);
    if (!h || h->type != udp::datagram_type::hello) {
        spdlog::debug("udp: dropped a datagram from {}: not a HELLO", fmt::streamed(source.address()));
        ++drops_.malformed;
        note_drop();
        return;
    }
    auto it = handlers_.find(h->token);
    auto handler = it == handlers_.end() ? nullptr : it->second.lock();
    if (!handler) {
        spdlog::debug("udp: dropped a HELLO from {}: unknown token", fmt::streamed(source.address()));
        ++drops_.unknown_token;
        note_drop();
        return;
    }
    if (unmapped(source.address()) != handler->control_peer()) {
        // Someone who knows the token but is not the control connection's host, e.g. a spoofed source
        // aiming our data at a third party.
        spdlog::debug("udp: dropped a HELLO from {}: its token belongs to a control connection from {}",
                      fmt::streamed(source.address()), fmt::streamed(handler->control_peer()));
        ++drops_.wrong_address;
        ++handler->wrong_address_hellos;
        note_drop();
        return;
    }
    handler->on_hello(h->stream, source);
}

void udp_listener::note_drop() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log_ < kDropLogInterval) {
        return;
    }
    last_log_ = now;
    spdlog::info(
        "udp: dropped {} datagrams since the last report ({} malformed or not a HELLO, {} with an unknown "
        "token, {} from an address other than the token's control connection)",
        drops_.total() - logged_.total(), drops_.malformed - logged_.malformed,
        drops_.unknown_token - logged_.unknown_token, drops_.wrong_address - logged_.wrong_address);
    logged_ = drops_;
}

}  // namespace speed::server
