#include "server/probe_echo.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/frame_buffer.hpp"
#include "net/socket_options.hpp"
#include "net/spawn.hpp"
#include "net/timestamps.hpp"

namespace speed::server {

using asio::experimental::as_tuple;

namespace {

// A probe connection that sends nothing for this long is closed.
constexpr auto kProbeIdleTimeout = std::chrono::seconds(30);
// Bytes read at a time: a few hundred PINGs, so that a flood costs few system calls per PING.
constexpr std::size_t kReadChunk = 4096;

}  // namespace

asio::ip::tcp::socket move_to_probe_echo(asio::ip::tcp::socket socket, asio::io_context& echo_context) {
    asio::error_code ec;
    const auto local = socket.local_endpoint(ec);
    if (ec) {
        return asio::ip::tcp::socket(echo_context);
    }
    const auto fd = socket.release(ec);
    if (ec) {
        return asio::ip::tcp::socket(echo_context);
    }
    asio::ip::tcp::socket moved(echo_context);
    moved.assign(local.protocol(), fd, ec);
    if (ec) {
        ::close(fd);
    }
    return moved;
}

probe_connection::probe_connection(asio::ip::tcp::socket socket)
    : socket_(std::move(socket)), idle_timer_(socket_.get_executor()) {}

void probe_connection::start(std::shared_ptr<probe_connection> self) {
    auto executor = self->socket_.get_executor();
    asio::co_spawn(executor, run(std::move(self)), net::log_if_failed("probe echo"));
}

void probe_connection::close() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

void probe_connection::close_now() {
    finished_ = true;
    idle_timer_.cancel();
    asio::error_code ignored;
    socket_.close(ignored);
}

asio::awaitable<void> probe_connection::close_when_idle(std::shared_ptr<probe_connection> self) {
    while (!self->finished_) {
        const auto deadline = self->last_activity_ + kProbeIdleTimeout;
        if (net::clock::now() >= deadline) {
            spdlog::debug("probe connection idle for {} s: closed", kProbeIdleTimeout.count());
            self->close_now();
            co_return;
        }
        self->idle_timer_.expires_at(deadline);
        co_await self->idle_timer_.async_wait(as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<void> probe_connection::run(std::shared_ptr<probe_connection> self) {
    net::set_no_delay(self->socket_.native_handle());
    asio::co_spawn(self->socket_.get_executor(), close_when_idle(self),
                   net::log_if_failed("probe idle watchdog"));

    const bool kernel_stamps = net::enable_receive_timestamps(self->socket_.native_handle());
    proto::frame_buffer received;
    std::vector<proto::ping> pings;
    std::vector<std::uint8_t> replies;
    bool open = true;
    while (open && !self->finished_) {
        const net::timestamped_read read =
            co_await net::async_read_with_timestamp(self->socket_, received.prepare(kReadChunk));
        const auto read_at = net::clock::now();
        if (read.error) {
            break;
        }
        received.commit(read.bytes);
        self->last_activity_ = read_at;
        pings.clear();
        for (;;) {
            proto::decode_result frame = received.next(proto::kMaxProbePayload);
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
            const auto verdict = self->limiter_.on_ping(net::now_ns());
            if (verdict == ping_limiter::verdict::close) {
                spdlog::debug("probe connection closed: {} PINGs over the rate limit of {} a second",
                              self->limiter_.dropped(), ping_limiter::kPingsPerSecond);
                open = false;
                break;
            }
            if (verdict == ping_limiter::verdict::answer) {
                pings.push_back(*probe);
            }
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
            auto [write_error, written] = co_await asio::async_write(self->socket_, asio::buffer(replies),
                                                                     as_tuple(asio::use_awaitable));
            if (write_error) {
                break;
            }
        }
    }
    self->close_now();
}

}  // namespace speed::server
