#include "server/probe_echo.hpp"

#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/frame_buffer.hpp"
#include "net/buffer.hpp"
#include "net/clock.hpp"
#include "net/socket_options.hpp"
#include "net/spawn.hpp"

namespace speed::server {

using asio::experimental::as_tuple;

namespace {

// A probe connection that sends nothing for this long is closed.
constexpr auto kProbeIdleTimeout = std::chrono::seconds(30);
// PING is 12 bytes; nothing legitimate on a probe connection is larger than this.
constexpr std::uint32_t kMaxProbePayload = 64;

struct probe_connection {
    explicit probe_connection(asio::ip::tcp::socket s)
        : socket(std::move(s)), idle_timer(socket.get_executor()) {}

    asio::ip::tcp::socket socket;
    asio::steady_timer idle_timer;
    net::clock::time_point last_activity = net::clock::now();
    bool finished = false;
};

asio::awaitable<void> close_when_idle(std::shared_ptr<probe_connection> connection) {
    while (!connection->finished) {
        const auto deadline = connection->last_activity + kProbeIdleTimeout;
        if (net::clock::now() >= deadline) {
            spdlog::debug("probe connection idle for {} s: closed", kProbeIdleTimeout.count());
            asio::error_code ignored;
            connection->socket.close(ignored);
            co_return;
        }
        connection->idle_timer.expires_at(deadline);
        co_await connection->idle_timer.async_wait(as_tuple(asio::use_awaitable));
    }
}

}  // namespace

asio::awaitable<void> run_probe_echo(asio::ip::tcp::socket socket) {
    net::set_no_delay(socket.native_handle());
    auto connection = std::make_shared<probe_connection>(std::move(socket));
    asio::co_spawn(connection->socket.get_executor(), close_when_idle(connection),
                   net::log_if_failed("probe idle watchdog"));

    proto::frame_buffer received;
    std::vector<std::uint8_t> replies;
    bool open = true;
    while (open) {
        auto [read_error, bytes] = co_await connection->socket.async_read_some(
            net::as_buffer(received.prepare(512)), as_tuple(asio::use_awaitable));
        if (read_error) {
            break;
        }
        received.commit(bytes);
        connection->last_activity = net::clock::now();
        replies.clear();
        for (;;) {
            proto::decode_result frame = received.next(kMaxProbePayload);
            if (frame.status == proto::decode_status::need_more) {
                break;
            }
            const auto* probe = std::get_if<proto::ping>(&frame.msg);
            if (frame.status == proto::decode_status::bad || probe == nullptr) {
                spdlog::debug("probe connection closed: {}",
                              frame.status == proto::decode_status::bad ? frame.reason : "not a PING");
                open = false;
                break;
            }
            const proto::pong reply{probe->sequence, probe->client_time_ns};
            proto::encode(reply, replies);
        }
        if (!replies.empty()) {
            auto [write_error, written] = co_await asio::async_write(
                connection->socket, asio::buffer(replies), as_tuple(asio::use_awaitable));
            if (write_error) {
                break;
            }
        }
    }
    connection->finished = true;
    connection->idle_timer.cancel();
    asio::error_code ignored;
    connection->socket.close(ignored);
}

}  // namespace speed::server
