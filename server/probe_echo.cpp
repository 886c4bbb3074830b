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
#include "net/timestamps.hpp"

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

    const bool kernel_stamps = net::enable_receive_timestamps(connection->socket.native_handle());
    proto::frame_buffer received;
    std::vector<proto::ping> pings;
    std::vector<std::uint8_t> replies;
    bool open = true;
    while (open) {
        const net::timestamped_read read =
            co_await net::async_read_with_timestamp(connection->socket, received.prepare(512));
        const auto read_at = net::clock::now();
        if (read.error) {
            break;
        }
        received.commit(read.bytes);
        connection->last_activity = read_at;
        pings.clear();
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
            pings.push_back(*probe);
        }
        if (!pings.empty()) {
            // The hold time runs from the PING's arrival in the kernel (or, without a stamp, from our read)
            // to just before the write.
            std::int64_t hold_ns =
                std::chrono::duration_cast<std::chrono::nanoseconds>(net::clock::now() - read_at).count();
            if (kernel_stamps && read.kernel_realtime_ns) {
                const std::int64_t since_arrival_ns = net::realtime_now_ns() - *read.kernel_realtime_ns;
                // A stamp more than a second before our read means the wall clock stepped: keep our own
                // figure.
                if (since_arrival_ns >= hold_ns && since_arrival_ns < hold_ns + 1'000'000'000) {
                    hold_ns = since_arrival_ns;
                }
            }
            replies.clear();
            for (const auto& probe : pings) {
                const proto::pong reply{probe.sequence, probe.client_time_ns,
                                        static_cast<std::uint64_t>(hold_ns)};
                proto::encode(reply, replies);
            }
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
