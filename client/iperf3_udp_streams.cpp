#include "client/iperf3_udp_streams.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>

#include "client/connect.hpp"
#include "client/udp_run.hpp"
#include "common/iperf3_protocol.hpp"
#include "common/iperf3_udp_window.hpp"
#include "common/limits.hpp"
#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/iperf3_udp_sender.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"

namespace speed::client {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

// How often the measuring coroutine looks for a stall while it waits for the next sample point.
constexpr auto kWatchInterval = 50ms;
// Receive batches before a loop lets the other work of the executor run; and the most batches one drain
// reads (a sender faster than this host cannot keep the drain going for ever).
constexpr int kBatchesBeforeYield = 16;
constexpr int kMostDrainBatches = 4096;
// How often an upload looks whether its senders have ended (they end at the test's length by themselves).
constexpr auto kSenderPoll = 10ms;

// The server's reply to the connect datagram: the current one or, from servers before 3.17, the legacy one.
bool is_connect_reply(std::span<const std::uint8_t> datagram) {
    return std::ranges::equal(datagram, iperf3::kUdpConnectReply) ||
           std::ranges::equal(datagram, iperf3::kLegacyUdpConnectReply);
}

std::int64_t until_ns(std::int64_t target_ns) {
    return std::max<std::int64_t>(0, target_ns - net::now_ns());
}

}  // namespace

struct iperf3_udp_streams::state {
    struct stream {
        explicit stream(const asio::any_io_executor& executor) : socket(executor) {}
        asio::ip::udp::socket socket;
        net::batch_receiver batch;
        std::uint32_t socket_drops = 0;  // the socket's overflow counter, as a batch last carried it
        bool replied = false;
        std::error_code failure;  // the socket's first receive error (an ICMP port unreachable)
        iperf3::udp_sender_figures sent;
        bool sending = false;
    };

    state(const measure::plan& plan, std::size_t count)
        : window(plan, count), report_intervals(plan.interval_ns > 0) {}

    asio::any_io_executor executor;
    std::uint32_t datagram_bytes = 0;
    bool counters_64bit = false;
    iperf3::udp_window window;
    bool report_intervals;
    std::vector<std::unique_ptr<stream>> streams;
    std::atomic<bool> stopped{false};
    std::atomic<bool> held{false};  // hold_sending(): the senders end, the receivers go on

    // One non-blocking read of stream `s`: false when nothing was queued (or the socket failed).
    bool read_once(std::size_t index) {
        stream& s = *streams[index];
        std::error_code error;
        const std::size_t received = s.batch.receive(s.socket.native_handle(), error);
        if (error) {
            if (!s.failure) {
                s.failure = error;
            }
            return false;
        }
        if (received == 0) {
            return false;
        }
        if (const auto drops = s.batch.socket_drops()) {
            s.socket_drops = *drops;
        }
        s.batch.for_each([&](std::span<const std::uint8_t> datagram, std::int64_t arrival_ns, bool) {
            if (!s.replied && is_connect_reply(datagram)) {
                s.replied = true;
                return;
            }
            window.on_datagram(index, datagram.size(), iperf3::read_udp_header(datagram, counters_64bit),
                               arrival_ns);
        });
        return true;
    }

    void drain(std::size_t index) {
        for (int batches = 0; batches < kMostDrainBatches && read_once(index); ++batches) {
        }
    }
};

namespace {

using state_ptr = std::shared_ptr<iperf3_udp_streams::state>;

asio::awaitable<void> receive_loop(state_ptr state, std::size_t index) {
    auto& s = *state->streams[index];
    for (int batches = 1; !state->stopped; ++batches) {
        if (!state->read_once(index)) {
            if (s.failure) {
                break;
            }
            auto [ec] =
                co_await s.socket.async_wait(asio::socket_base::wait_read, as_tuple(asio::use_awaitable));
            if (ec) {
                break;  // closed
            }
            continue;
        }
        if (batches % kBatchesBeforeYield == 0) {
            co_await asio::post(s.socket.get_executor(), asio::use_awaitable);
        }
    }
}

asio::awaitable<void> send_loop(state_ptr state, std::size_t index, net::iperf3_send_plan plan) {
    auto& s = *state->streams[index];
    co_await net::send_iperf3_datagrams(s.socket, plan, state->stopped, state->held, s.sent);
    s.sending = false;
}

}  // namespace

iperf3_udp_streams::iperf3_udp_streams(asio::any_io_executor executor, std::size_t count,
                                       std::uint32_t datagram_bytes, bool counters_64bit,
                                       const measure::plan& plan)
    : state_(std::make_shared<state>(plan, count)) {
    state_->executor = executor;
    state_->datagram_bytes = std::max<std::uint32_t>(
        datagram_bytes, static_cast<std::uint32_t>(iperf3::udp_header_size(counters_64bit)));
    state_->counters_64bit = counters_64bit;
    for (std::size_t i = 0; i < count; ++i) {
        state_->streams.push_back(std::make_unique<state::stream>(executor));
    }
}

iperf3_udp_streams::~iperf3_udp_streams() {
    close();
}

void iperf3_udp_streams::close() {
    state_->stopped = true;
    for (auto& s : state_->streams) {
        asio::error_code ignored;
        s->socket.close(ignored);
    }
}

void iperf3_udp_streams::hold_sending() {
    state_->held = true;
}

asio::awaitable<void> iperf3_udp_streams::open(const asio::ip::udp::endpoint& server,
                                               const socket_settings& sockets, clock::time_point deadline,
                                               std::size_t first) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(state_->executor);
    for (std::size_t index = 0; index < state_->streams.size(); ++index) {
        auto& s = *state_->streams[index];
        prepare_udp_socket(s.socket, server, sockets, static_cast<std::uint16_t>(first + index));
        asio::error_code ec;
        s.socket.connect(server, ec);
        if (ec) {
            throw udp_path_error("UDP to " + describe(server.address(), server.port()) + ": " + ec.message());
        }
        s.socket.non_blocking(true);
        net::configure_udp_data_socket(s.socket.native_handle());
        if (auto error = net::send_datagram(s.socket.native_handle(), iperf3::kUdpConnectMessage)) {
            throw udp_path_error("UDP to " + describe(server.address(), server.port()) + ": " +
                                 error.message());
        }
        while (!s.replied) {
            state_->drain(index);
            if (s.failure) {
                throw udp_path_error(
                    fmt::format("UDP to {} failed: {}. The iperf3 server does not take UDP there, or a "
                                "firewall rejects it.",
                                describe(server.address(), server.port()), s.failure.message()));
            }
            if (s.replied) {
                break;
            }
            if (clock::now() >= deadline) {
                throw session_error(
                    proto::error_code::timeout,
                    fmt::format("no reply to iperf3's UDP connect datagram of stream {} from {}: UDP is "
                                "probably blocked",
                                first + index, describe(server.address(), server.port())));
            }
            timer.expires_at(deadline);
            co_await (s.socket.async_wait(asio::socket_base::wait_read, as_tuple(asio::use_awaitable)) ||
                      timer.async_wait(as_tuple(asio::use_awaitable)));
        }
    }
}

asio::awaitable<iperf3_udp_received> iperf3_udp_streams::measure(clock::time_point first_deadline,
                                                                 std::chrono::nanoseconds stall,
                                                                 const interval_callback& on_interval) {
    auto& st = *state_;
    for (std::size_t i = 0; i < st.streams.size(); ++i) {
        asio::co_spawn(st.executor, receive_loop(state_, i), net::log_if_failed("iperf3 udp receiver"));
    }
    asio::steady_timer timer(st.executor);
    auto& window = st.window;
    while (!window.started()) {
        if (clock::now() >= first_deadline) {
            throw session_error(proto::error_code::timeout, "no UDP datagram from the iperf3 server");
        }
        timer.expires_after(std::min<clock::duration>(kWatchInterval, first_deadline - clock::now()));
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
    }
    for (std::size_t k = 0; k < window.point_count(); ++k) {
        const std::int64_t target = window.first_ns() + window.point_ns(k);
        while (net::now_ns() < target) {
            for (const auto& s : st.streams) {
                if (s->failure) {
                    throw session_error(proto::error_code::protocol_error,
                                        "the iperf3 server's UDP stream failed: " + s->failure.message());
                }
            }
            const std::int64_t silent_ns = net::now_ns() - std::max(window.first_ns(), window.last_ns());
            if (silent_ns > stall.count()) {
                throw session_error(
                    proto::error_code::timeout,
                    fmt::format("the iperf3 server's UDP data stalled: no datagram for {:.1f} s",
                                units::ns_to_seconds(silent_ns)));
            }
            timer.expires_after(std::min<std::chrono::nanoseconds>(
                kWatchInterval, std::chrono::nanoseconds(until_ns(target))));
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
        }
        // Every datagram that arrived before the point is queued by now (the kernel stamps it on arrival):
        // read them, then close the point.
        for (std::size_t i = 0; i < st.streams.size(); ++i) {
            st.drain(i);
        }
        const iperf3::udp_window_interval closed = window.close_point(k);
        if (!st.report_intervals) {
            continue;
        }
        interval_report entry;
        entry.start_seconds = units::ns_to_seconds(closed.start_ns);
        entry.end_seconds = units::ns_to_seconds(closed.end_ns);
        entry.omitted = closed.omitted;
        entry.stream_bytes = closed.stream_bytes;
        for (const std::uint64_t bytes : closed.stream_bytes) {
            entry.bytes += bytes;
        }
        entry.bits_per_second = units::bits_per_second(entry.bytes, entry.end_seconds - entry.start_seconds);
        entry.udp = udp_interval_figures{closed.datagrams, closed.lost, closed.mean_jitter_seconds * 1000.0};
        co_await on_interval(entry);
    }
    st.stopped = true;
    iperf3_udp_received received;
    for (std::size_t i = 0; i < st.streams.size(); ++i) {
        asio::error_code ignored;
        st.streams[i]->socket.cancel(ignored);
        received.streams.push_back(window.figures(i));
        received.socket_drops += st.streams[i]->socket_drops;
    }
    received.omitted_bytes = window.omitted_bytes();
    co_return received;
}

asio::awaitable<std::vector<iperf3::udp_sender_figures>> iperf3_udp_streams::send(
    double stream_bits_per_second, std::chrono::nanoseconds warm_up, std::chrono::nanoseconds window) {
    auto& st = *state_;
    net::iperf3_send_plan plan;
    plan.datagram_bytes = st.datagram_bytes;
    plan.counters_64bit = st.counters_64bit;
    plan.bits_per_second = stream_bits_per_second;
    plan.warm_up_ns = warm_up.count();
    plan.length_ns = (warm_up + window).count();
    for (std::size_t i = 0; i < st.streams.size(); ++i) {
        st.streams[i]->sending = true;
        asio::co_spawn(st.executor, send_loop(state_, i, plan), net::log_if_failed("iperf3 udp sender"));
    }
    asio::steady_timer timer(st.executor);
    const auto give_up = clock::now() + warm_up + window + proto::kResultsTimeout;
    while (std::any_of(st.streams.begin(), st.streams.end(), [](const auto& s) { return s->sending; })) {
        if (clock::now() >= give_up) {
            throw session_error(proto::error_code::internal, "the iperf3 UDP senders did not stop");
        }
        timer.expires_after(kSenderPoll);
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
    }
    std::vector<iperf3::udp_sender_figures> sent;
    for (const auto& s : st.streams) {
        sent.push_back(s->sent);
    }
    co_return sent;
}

}  // namespace speed::client
