#include "net/iperf3_udp_sender.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <optional>
#include <vector>

#include "common/udp_pacer.hpp"
#include "net/clock.hpp"

namespace speed::net {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;

namespace {

// A paced sender's bucket: 2 ms of its rate, at least two datagrams (common/udp_pacer.hpp).
constexpr std::int64_t kPacerBurstNs = 2'000'000;
// The most datagrams a sender writes before it looks at its pace and its stop flag again.
constexpr std::uint64_t kMostPerRound = 64;
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
    std::vector<std::uint8_t> datagram(
        std::max<std::size_t>(plan.datagram_bytes, iperf3::udp_header_size(plan.counters_64bit)), 0);
    const std::uint64_t bytes = datagram.size();
    const std::int64_t started = now_ns();
    std::optional<udp::pacer> pacer;
    if (plan.bits_per_second > 0) {
        pacer.emplace(plan.bits_per_second, kPacerBurstNs, 2 * bytes, started);
    }
    bool warm_up_ended = plan.warm_up_ns == 0;
    while (!stop.load(std::memory_order_acquire) && !hold.load(std::memory_order_relaxed) &&
           socket.is_open()) {
        std::int64_t now = now_ns();
        if (now - started >= plan.length_ns) {
            break;
        }
        if (!warm_up_ended && now - started >= plan.warm_up_ns) {
            sent.omitted_bytes = sent.bytes;
            sent.omitted_packets = sent.packets;
            warm_up_ended = true;
        }
        std::uint64_t allowed =
            pacer ? pacer->allowed(now, static_cast<std::uint32_t>(bytes)) : kMostPerRound;
        allowed = std::min(allowed, kMostPerRound);
        if (plan.max_bytes != 0) {
            const std::uint64_t left = (plan.max_bytes - std::min(plan.max_bytes, sent.bytes)) / bytes;
            if (left == 0) {
                break;  // the budget is spent
            }
            allowed = std::min(allowed, left);
        }
        if (allowed == 0) {
            timer.expires_after(std::min<std::chrono::nanoseconds>(
                kLongestPause,
                std::chrono::nanoseconds(std::max<std::int64_t>(1000, pacer->wait_ns(now, bytes)))));
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
            continue;
        }
        std::uint64_t sent_now = 0;
        bool blocked = false;
        bool failed = false;
        for (; sent_now < allowed; ++sent_now) {
            now = now_ns();
            iperf3::write_udp_header(datagram, iperf3::udp_header_at(now, sent.packets + 1),
                                     plan.counters_64bit);
            const ssize_t result =
                ::send(socket.native_handle(), datagram.data(), datagram.size(), MSG_DONTWAIT);
            if (result < 0) {
                blocked = errno == EAGAIN;  // EWOULDBLOCK is the same on Linux
                failed = !blocked;
                break;
            }
            ++sent.packets;
            sent.bytes += bytes;
        }
        if (pacer) {
            pacer->consume(sent_now * bytes);
        }
        if (blocked) {
            auto [ec] =
                co_await socket.async_wait(asio::socket_base::wait_write, as_tuple(asio::use_awaitable));
            if (ec) {
                break;
            }
        } else if (failed) {
            timer.expires_after(kSendErrorPause);
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
        } else if (!pacer) {
            co_await asio::post(socket.get_executor(), asio::use_awaitable);
        }
    }
}

}  // namespace speed::net
