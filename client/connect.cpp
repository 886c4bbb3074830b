#include "client/connect.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>

#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/socket_options.hpp"

namespace speed::client {

using asio::experimental::as_tuple;
using asio::ip::tcp;

std::string describe(const asio::ip::address& address, std::uint16_t port) {
    return address.to_string() + " port " + std::to_string(port);
}

std::string describe(const tcp::endpoint& endpoint) {
    return describe(endpoint.address(), endpoint.port());
}

namespace {

// The local end a connection binds to: -B's address, and --cport's port for data stream `data_stream`.
// Nothing when neither is asked for (the kernel picks, as for any connection).
template <class Protocol>
std::optional<typename Protocol::endpoint> local_end(const socket_settings& sockets, const Protocol& protocol,
                                                     std::optional<std::uint16_t> data_stream) {
    const std::uint16_t port = data_stream && sockets.data_port != 0
                                   ? static_cast<std::uint16_t>(sockets.data_port + *data_stream)
                                   : 0;
    if (sockets.bind_address.empty() && port == 0) {
        return std::nullopt;
    }
    asio::ip::address address = protocol == Protocol::v6() ? asio::ip::address(asio::ip::address_v6::any())
                                                           : asio::ip::address(asio::ip::address_v4::any());
    if (!sockets.bind_address.empty()) {
        address = asio::ip::make_address(sockets.bind_address);  // checked when the command line was read
    }
    return typename Protocol::endpoint(address, port);
}

template <class Socket, class Endpoint>
void bind_to(Socket& socket, const Endpoint& local) {
    asio::error_code ec;
    if (local.port() != 0) {
        // The previous test's data connections may still hold the port; they closed with a reset, so no
        // TIME_WAIT is left behind, but a stream of another speedcli may be.
        socket.set_option(asio::socket_base::reuse_address(true), ec);
    }
    socket.bind(local, ec);
    if (ec) {
        throw unreachable_error("cannot use the local address " + describe(local.address(), local.port()) +
                                ": " + ec.message());
    }
}

void apply_data_settings(int fd, bool ipv6, const socket_settings& sockets, bool tcp) {
    if (sockets.window != 0) {
        net::set_socket_buffers(fd, sockets.window);
    }
    if (tcp && sockets.mss != 0) {
        net::set_max_segment(fd, sockets.mss);
    }
    if (sockets.tos) {
        net::set_tos(fd, ipv6, *sockets.tos);
    }
}

}  // namespace

void prepare_udp_socket(asio::ip::udp::socket& socket, const asio::ip::udp::endpoint& server,
                        const socket_settings& sockets, std::optional<std::uint16_t> data_stream) {
    socket.open(server.protocol());
    if (data_stream && sockets.tos) {
        net::set_tos(socket.native_handle(), server.address().is_v6(), *sockets.tos);
    }
    if (const auto local = local_end(sockets, server.protocol(), data_stream)) {
        bind_to(socket, *local);
    }
}

asio::awaitable<tcp::socket> connect(const tcp::endpoint& endpoint, double timeout_seconds,
                                     const socket_settings& sockets,
                                     std::optional<std::uint16_t> data_stream) {
    using namespace asio::experimental::awaitable_operators;
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
    socket.open(endpoint.protocol());
    if (data_stream) {
        apply_data_settings(socket.native_handle(), endpoint.address().is_v6(), sockets, true);
    }
    if (const auto local = local_end(sockets, endpoint.protocol(), data_stream)) {
        bind_to(socket, *local);
    }
    asio::steady_timer timer(executor, std::chrono::milliseconds(units::seconds_to_wire_ms(timeout_seconds)));
    auto result = co_await (socket.async_connect(endpoint, as_tuple(asio::use_awaitable)) ||
                            timer.async_wait(as_tuple(asio::use_awaitable)));
    if (result.index() == 1) {
        throw unreachable_error("connecting to " + describe(endpoint) + " timed out after " +
                                units::format_milliseconds(timeout_seconds * 1000.0));
    }
    if (auto [ec] = std::get<0>(result); ec) {
        throw unreachable_error("cannot connect to " + describe(endpoint) + ": " + ec.message());
    }
    co_return socket;
}

asio::awaitable<std::vector<tcp::endpoint>> resolve(const std::string& host, std::uint16_t port,
                                                    address_family family) {
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    const std::string service = std::to_string(port);
    auto flags = tcp::resolver::numeric_service;
    asio::error_code ec;
    tcp::resolver::results_type results;
    switch (family) {
        case address_family::ipv4:
            std::tie(ec, results) = co_await resolver.async_resolve(tcp::v4(), host, service, flags,
                                                                    as_tuple(asio::use_awaitable));
            break;
        case address_family::ipv6:
            std::tie(ec, results) = co_await resolver.async_resolve(tcp::v6(), host, service, flags,
                                                                    as_tuple(asio::use_awaitable));
            break;
        case address_family::any:
            std::tie(ec, results) =
                co_await resolver.async_resolve(host, service, flags, as_tuple(asio::use_awaitable));
            break;
    }
    if (ec || results.empty()) {
        throw unreachable_error("cannot resolve '" + host +
                                "': " + (ec ? ec.message() : std::string("no addresses")));
    }
    std::vector<tcp::endpoint> endpoints;
    for (const auto& entry : results) {
        endpoints.push_back(entry.endpoint());
    }
    co_return endpoints;
}

proto::hello make_hello(proto::connection_kind kind, const proto::session_token& token, std::uint32_t test_id,
                        std::uint16_t stream_index) {
    proto::hello hello;
    hello.kind = kind;
    hello.token = token;
    hello.test_id = test_id;
    hello.stream_index = stream_index;
    hello.software = std::string("speedcli ") + SPEED_VERSION;
    return hello;
}

}  // namespace speed::client
