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

// A stream's cumulative figures when a sample point passed.
struct snapshot {
    std::uint64_t bytes = 0;
    std::uint64_t datagrams = 0;
    std::uint64_t errors = 0;
    double jitter_seconds = 0.0;
};

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
        bool replied = false;
        std::error_code failure;  // the socket's first receive error (an ICMP port unreachable)
        iperf3::udp_receiver receiver;
        std::uint64_t all_bytes = 0;  // warm-up included
        std::size_t next_point = 0;   // the first sample point not yet passed
        std::vector<snapshot> at_points;
        iperf3::udp_sender_figures sent;
        bool sending = false;
    };

    asio::any_io_executor executor;
    std::uint32_t datagram_bytes = 0;
    bool counters_64bit = false;
    measure::plan plan;
    std::vector<std::int64_t> points;
    std::vector<std::unique_ptr<stream>> streams;
    std::int64_t first_ns = 0;  // the first datagram's arrival (net::now_ns()'s clock); 0 = none yet
    std::int64_t last_ns = 0;   // the latest datagram's arrival
    std::atomic<bool> stopped{false};
    const std::atomic<bool> never_held{false};  // speedcli's senders are only ever stopped

    snapshot figures_of(const stream& s) const {
        const auto& f = s.receiver.figures();
        return {s.all_bytes, f.datagrams, f.errors, f.jitter_seconds};
    }

    // Closes the sample points before `since` (ns from the first datagram) for stream `s`; the warm-up's
    // end resets iperf3's figures, as iperf3's receiver does when -O ends.
    void pass_points(stream& s, std::int64_t since) {
        while (s.next_point < points.size() && since >= points[s.next_point]) {
            s.at_points.push_back(figures_of(s));
            if (points[s.next_point] == plan.omit_ns) {
                s.receiver.end_warm_up();
            }
            ++s.next_point;
        }
    }

    void on_datagram(stream& s, std::span<const std::uint8_t> datagram, std::int64_t arrival_ns) {
        if (first_ns == 0) {
            first_ns = std::max<std::int64_t>(1, arrival_ns);
        }
        // Streams are read one after the other: another stream's datagram may have arrived a little before
        // the first one read; it counts from time 0.
        const std::int64_t since = std::max<std::int64_t>(0, arrival_ns - first_ns);
        if (since >= plan.end_ns()) {
            return;  // after the window: the server sends on until it reads TEST_END
        }
        pass_points(s, since);
        s.receiver.on_datagram(datagram.size(), iperf3::read_udp_header(datagram, counters_64bit),
                               arrival_ns);
        s.all_bytes += datagram.size();
        last_ns = std::max(last_ns, arrival_ns);
    }

    // One non-blocking read of stream `s`: false when nothing was queued (or the socket failed).
    bool read_once(stream& s) {
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
        s.batch.for_each([&](std::span<const std::uint8_t> datagram, std::int64_t arrival_ns, bool) {
            if (!s.replied && is_connect_reply(datagram)) {
                s.replied = true;
                return;
            }
            on_datagram(s, datagram, arrival_ns);
        });
        return true;
    }

    void drain(stream& s) {
        for (int batches = 0; batches < kMostDrainBatches && read_once(s); ++batches) {
        }
    }
};

namespace {

using state_ptr = std::shared_ptr<iperf3_udp_streams::state>;

asio::awaitable<void> receive_loop(state_ptr state, std::size_t index) {
    auto& s = *state->streams[index];
    for (int batches = 1; !state->stopped; ++batches) {
        if (!state->read_once(s)) {
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
    co_await net::send_iperf3_datagrams(s.socket, plan, state->stopped, state->never_held, s.sent);
    s.sending = false;
}

}  // namespace

iperf3_udp_streams::iperf3_udp_streams(asio::any_io_executor executor, std::size_t count,
                                       std::uint32_t datagram_bytes, bool counters_64bit,
                                       const measure::plan& plan)
    : state_(std::make_shared<state>()) {
    state_->executor = executor;
    state_->datagram_bytes = std::max<std::uint32_t>(
        datagram_bytes, static_cast<std::uint32_t>(iperf3::udp_header_size(counters_64bit)));
    state_->counters_64bit = counters_64bit;
    state_->plan = plan;
    state_->points = plan.sample_points();
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

asio::awaitable<void> iperf3_udp_streams::open(const asio::ip::udp::endpoint& server,
                                               const socket_settings& sockets, clock::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(state_->executor);
    for (std::size_t index = 0; index < state_->streams.size(); ++index) {
        auto& s = *state_->streams[index];
        prepare_udp_socket(s.socket, server, sockets, static_cast<std::uint16_t>(index));
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
            state_->drain(s);
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
                                index, describe(server.address(), server.port())));
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
    while (st.first_ns == 0) {
        if (clock::now() >= first_deadline) {
            throw session_error(proto::error_code::timeout, "no UDP datagram from the iperf3 server");
        }
        timer.expires_after(std::min<clock::duration>(kWatchInterval, first_deadline - clock::now()));
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
    }
    const std::int64_t stall_ns = stall.count();
    std::int64_t previous = 0;
    for (std::size_t k = 0; k < st.points.size(); ++k) {
        const std::int64_t target = st.first_ns + st.points[k];
        while (net::now_ns() < target) {
            const std::int64_t now = net::now_ns();
            for (const auto& s : st.streams) {
                if (s->failure) {
                    throw session_error(proto::error_code::protocol_error,
                                        "the iperf3 server's UDP stream failed: " + s->failure.message());
                }
            }
            if (now - std::max(st.first_ns, st.last_ns) > stall_ns) {
                throw session_error(
                    proto::error_code::timeout,
                    fmt::format("the iperf3 server's UDP data stalled: no datagram for {:.1f} s",
                                units::ns_to_seconds(now - std::max(st.first_ns, st.last_ns))));
            }
            timer.expires_after(std::min<std::chrono::nanoseconds>(
                kWatchInterval, std::chrono::nanoseconds(until_ns(target))));
            co_await timer.async_wait(as_tuple(asio::use_awaitable));
        }
        // Every datagram that arrived before the point is queued by now (the kernel stamps it on arrival):
        // read them, then close the point on every stream.
        interval_report entry;
        entry.start_seconds = units::ns_to_seconds(previous);
        entry.end_seconds = units::ns_to_seconds(st.points[k]);
        entry.omitted = st.points[k] <= st.plan.omit_ns;
        udp_interval_figures udp;
        double jitter_sum = 0.0;
        for (auto& s : st.streams) {
            st.drain(*s);
            st.pass_points(*s, st.points[k]);
            const snapshot& now = s->at_points[k];
            const snapshot before = k == 0 ? snapshot{} : s->at_points[k - 1];
            entry.stream_bytes.push_back(now.bytes - before.bytes);
            entry.bytes += now.bytes - before.bytes;
            udp.packets += now.datagrams - before.datagrams;
            // A late datagram fills a gap counted before: the interval's own count cannot go below 0.
            udp.lost_packets += now.errors > before.errors ? now.errors - before.errors : 0;
            jitter_sum += now.jitter_seconds;
        }
        udp.jitter_ms = jitter_sum * 1000.0 / static_cast<double>(st.streams.size());
        entry.udp = udp;
        entry.bits_per_second = units::bits_per_second(entry.bytes, entry.end_seconds - entry.start_seconds);
        previous = st.points[k];
        if (st.plan.interval_ns > 0) {
            co_await on_interval(entry);
        }
    }
    st.stopped = true;
    iperf3_udp_received received;
    for (auto& s : st.streams) {
        asio::error_code ignored;
        s->socket.cancel(ignored);
        received.streams.push_back(s->receiver.figures());
        if (st.plan.omit_ns > 0) {
            received.omitted_bytes += s->at_points.front().bytes;  // the first point is the warm-up's end
        }
    }
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
