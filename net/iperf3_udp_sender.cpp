#include "net/iperf3_udp_sender.hpp"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <optional>
#include <span>

#include "common/udp_pacer.hpp"
#include "net/clock.hpp"
#include "net/udp_socket.hpp"

namespace speed::net {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;

namespace {

// The longest a slow pace sleeps before it looks at its stop flag again.
constexpr auto kLongestPause = 50ms;
// A datagram the kernel refused for another reason than a full buffer (an ICMP error from a closed port, a
// local firewall) is tried again after this long rather than in a spin.
constexpr auto kSendErrorPause = 1ms;

}  // namespace

asio::awaitable<void> send_iperf3_datagrams(asio::ip::udp::socket& socket, iperf3_send_plan plan,
                                            const std::atomic<bool>& stop, const std::atomic<bool>& hold,
                                            iperf3::udp_sender_figures& sent) {
    asio::steady_timer timer(socket.get_executor());
    const std::size_t header_bytes = iperf3::udp_header_size(plan.counters_64bit);
    batch_sender sender(
        std::max<std::uint32_t>(plan.datagram_bytes, static_cast<std::uint32_t>(header_bytes)), header_bytes,
        true);
    const std::uint32_t bytes = sender.datagram_bytes();
    const std::int64_t started = now_ns();
    std::optional<udp::pacer> pacer;
    if (plan.bits_per_second > 0) {
        pacer.emplace(plan.bits_per_second, udp::kSenderBurstNs, std::uint64_t{2} * bytes, started);
    }
    bool warm_up_ended = plan.warm_up_ns == 0;
    // Every round is one batch at most, so the flags, the length and the warm-up are looked at between
    // batches (a batch is at most batch_sender::capacity() datagrams, about 256 KB at 1400 bytes).
    while (!stop.load(std::memory_order_acquire) && !hold.load(std::memory_order_relaxed) &&
           socket.is_open()) {
        const std::int64_t now = now_ns();
        if (now - started >= plan.length_ns) {
            break;
        }
        if (!warm_up_ended && now - started >= plan.warm_up_ns) {
            sent.omitted_bytes = sent.bytes;
            sent.omitted_packets = sent.packets;
            warm_up_ended = true;
        }
        std::uint64_t allowed = sender.capacity();
        if (plan.max_bytes != 0) {
            const std::uint64_t left = (plan.max_bytes - std::min(plan.max_bytes, sent.bytes)) / bytes;
            if (left == 0) {
                break;  // the budget is spent
            }
            allowed = std::min(allowed, left);
        }
        if (pacer) {
            // Paced, the sender wakes as soon as one datagram is due, as it did before it sent batches, and
            // sends what the bucket holds by then (at most 2 ms of the rate): waiting for a bigger batch
            // would leave less slack for a late wake-up before the bucket overflows, and a loaded host would
            // then send below the rate.
            allowed = std::min(allowed, pacer->allowed(now, bytes));
            if (allowed == 0) {
                timer.expires_after(std::min<std::chrono::nanoseconds>(
                    kLongestPause,
                    std::chrono::nanoseconds(std::max<std::int64_t>(1000, pacer->wait_ns(now, bytes)))));
                co_await timer.async_wait(as_tuple(asio::use_awaitable));
                continue;
            }
        }
        // Each datagram carries its own sequence number and the time its header is written, as iperf3's own
        // sender (with or without GSO) writes them: a batch leaves at once, and its stamps say so.
        const std::uint64_t first = sent.packets + 1;
        const auto result =
            sender.send(socket.native_handle(), allowed, [&](std::size_t i, std::span<std::uint8_t> prefix) {
                iperf3::write_udp_header(prefix, iperf3::udp_header_at(now_ns(), first + i),
                                         plan.counters_64bit);
            });
        // Only what the kernel took counts: the next batch numbers on from there.
        sent.packets += result.sent;
        sent.bytes += result.sent * std::uint64_t{bytes};
        if (pacer) {
            pacer->consume(result.sent * std::uint64_t{bytes});
        }
        if (result.would_block) {
            auto [ec] =
                co_await socket.async_wait(asio::socket_base::wait_write, as_tuple(asio::use_awaitable));
            if (ec) {
                break;
            }
        } else if (result.error || result.refused_locally) {
            timer.expires_after(kSendErrorPause);
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
        } else if (!pacer) {
            co_await asio::post(socket.get_executor(), asio::use_awaitable);
        }
    }
}

}  // namespace speed::net
