#include "client/connect.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>

#include "common/time_units.hpp"
#include "common/units.hpp"

namespace speed::client {

using asio::experimental::as_tuple;
using asio::ip::tcp;

std::string describe(const asio::ip::address& address, std::uint16_t port) {
    return address.to_string() + " port " + std::to_string(port);
}

std::string describe(const tcp::endpoint& endpoint) {
    return describe(endpoint.address(), endpoint.port());
}

asio::awaitable<tcp::socket> connect(const tcp::endpoint& endpoint, double timeout_seconds) {
    using namespace asio::experimental::awaitable_operators;
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
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
