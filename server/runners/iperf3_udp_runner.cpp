#include "server/runners/iperf3_udp_runner.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <thread>

#include "common/iperf3_udp.hpp"
#include "common/limits.hpp"
#include "common/receive_poll.hpp"
#include "common/test_timing.hpp"
#include "net/errors.hpp"
#include "net/iperf3_udp_sender.hpp"
#include "net/spawn.hpp"
#include "net/udp_socket.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

// How often the control thread looks at the streams while it waits (the first datagram, the window's end,
// a stall, the client's TEST_END).
constexpr auto kWatchInterval = 50ms;
// Receive batches before a loop lets the other work of its data thread run.
constexpr int kBatchesBeforeYield = 16;

}  // namespace

struct iperf3_udp_runner::stream {
    std::shared_ptr<asio::ip::udp::socket> socket;
    // The loop's own until `done`; the control thread reads them after.
    iperf3::udp_receiver receiver;
    bool warm_up_ended = false;
    iperf3::udp_sender_figures sent;
    std::atomic<std::int64_t> last_arrival_ns{0};
    std::atomic<bool> done{false};
};

struct iperf3_udp_runner::shared {
    bool counters_64bit = false;
    std::uint32_t datagram_bytes = 0;
    std::int64_t warm_up_ns = 0;
    std::int64_t window_ns = 0;
    double stream_bits_per_second = 0;   // a sender's pace, 0 = unpaced
    bool poll_when_empty = false;        // the client sends unpaced: receivers poll (common/receive_poll.hpp)
    std::uint64_t stream_max_bytes = 0;  // a sender's byte budget (--max-bytes), 0 = none
    std::atomic<std::int64_t> first_ns{0};  // a receiver's first datagram, on net::now_ns()'s clock
    std::atomic<bool> stop_receiving{false};
    std::atomic<bool> stop_sending{false};
    std::atomic<bool> hold{false};
    // Added to by the connects on the control thread until attach_all() returns; read-only after.
    std::vector<std::shared_ptr<stream>> streams;
};

// The listener's side of the test while it waits for its streams (all of them, both ways): each connect from
// the control peer's address gets the stream's connected socket on a data thread and, from it, the 4-byte
// reply.
class iperf3_udp_runner::connects : public iperf3_connect_handler {
  public:
    connects(asio::any_io_executor control, asio::ip::address control_peer, std::uint32_t streams,
             udp_local local, net::io_pool& data_pool, std::shared_ptr<shared> state)
        : control_peer_(unmapped(control_peer)),
          streams_(streams),
          local_(std::move(local)),
          data_pool_(data_pool),
          state_(std::move(state)),
          changed_(std::move(control)) {}

    const asio::ip::address& control_peer() const override { return control_peer_; }
    std::uint32_t streams() const override { return streams_; }

    void on_connect(const asio::ip::udp::endpoint& source, iperf3::udp_connect greeting) override {
        if (state_->streams.size() >= streams_ || closed_) {
            return;
        }
        asio::error_code ec;
        auto socket = std::make_shared<asio::ip::udp::socket>(
            open_flow_socket(data_pool_.next().get_executor(), local_, source, ec));
        if (ec) {
            spdlog::warn("udp: cannot open the socket for an iperf3 stream to {}: {}",
                         source.address().to_string(), ec.message());
            return;
        }
        net::configure_udp_data_socket(socket->native_handle());
        // The reply is the connect's size: 1:1, from the stream's own socket, to where the connect came from.
        const auto reply = iperf3::udp_connect_reply(greeting);
        net::send_datagram(socket->native_handle(), reply);
        auto entry = std::make_shared<stream>();
        entry->socket = std::move(socket);
        state_->streams.push_back(std::move(entry));
        changed_.cancel();
    }

    asio::steady_timer& changed() { return changed_; }
    void close() { closed_ = true; }

  private:
    asio::ip::address control_peer_;
    std::uint32_t streams_;
    udp_local local_;
    net::io_pool& data_pool_;
    std::shared_ptr<shared> state_;
    asio::steady_timer changed_;  // cancelled whenever a stream arrives
    bool closed_ = false;
};

namespace {

using stream_ptr = std::shared_ptr<iperf3_udp_runner::stream>;
using shared_state = std::shared_ptr<iperf3_udp_runner::shared>;

// The receiver's window starts at the test's first datagram on any stream.
std::int64_t window_start(iperf3_udp_runner::shared& state, std::int64_t arrival_ns) {
    std::int64_t first = state.first_ns.load(std::memory_order_acquire);
    if (first == 0 && state.first_ns.compare_exchange_strong(first, arrival_ns, std::memory_order_acq_rel)) {
        return arrival_ns;
    }
    return first;
}

asio::awaitable<void> receive_loop(shared_state state, stream_ptr s) {
    auto batch = std::make_unique<net::batch_receiver>();
    auto& socket = *s->socket;
    const std::int64_t window_end = state->warm_up_ns + state->window_ns;
    s->warm_up_ended = state->warm_up_ns == 0;
    receive_poll poll(state->poll_when_empty);
    for (int batches = 1; !state->stop_receiving.load(std::memory_order_acquire); ++batches) {
        std::error_code error;
        const std::size_t received = batch->receive(socket.native_handle(), error);
        if (!socket.is_open()) {
            break;
        }
        if (!error && received == 0 && poll.read_again(net::now_ns())) {
            // A sender that shares this core (more threads than cores) runs meanwhile.
            std::this_thread::yield();
            continue;
        }
        if (error || received == 0) {
            auto [ec] =
                co_await socket.async_wait(asio::socket_base::wait_read, as_tuple(asio::use_awaitable));
            if (ec) {
                break;  // cancelled by stop_streams() or abort()
            }
            continue;
        }
        poll.on_data();
        batch->for_each([&](std::span<const std::uint8_t> datagram, std::int64_t arrival_ns, bool) {
            // Measured on the server's clock: the warm-up, then the window, from the first datagram.
            const std::int64_t since = arrival_ns - window_start(*state, arrival_ns);
            if (since >= window_end) {
                return;  // after the window: the client is still finishing its own time
            }
            if (!s->warm_up_ended && since >= state->warm_up_ns) {
                s->receiver.end_warm_up();
                s->warm_up_ended = true;
            }
            s->receiver.on_datagram(datagram.size(), iperf3::read_udp_header(datagram, state->counters_64bit),
                                    arrival_ns);
            s->last_arrival_ns.store(arrival_ns, std::memory_order_relaxed);
        });
        if (batches % kBatchesBeforeYield == 0) {
            co_await asio::post(socket.get_executor(), asio::use_awaitable);
        }
    }
    s->done.store(true, std::memory_order_release);
}

// The test's length from the first datagram: the client started its own timer on TEST_RUNNING, just before,
// and stops reading when it ends; what would go after it only reaches a closed reader (iperf3 counts it as
// lost) while TEST_END is on its way. Over, held (a failure is being told) or out of budget, the sender sends
// nothing more.
asio::awaitable<void> send_loop(shared_state state, stream_ptr s) {
    net::iperf3_send_plan plan;
    plan.datagram_bytes = state->datagram_bytes;
    plan.counters_64bit = state->counters_64bit;
    plan.bits_per_second = state->stream_bits_per_second;
    plan.warm_up_ns = state->warm_up_ns;
    plan.length_ns = state->warm_up_ns + state->window_ns;
    plan.max_bytes = state->stream_max_bytes;
    co_await net::send_iperf3_datagrams(*s->socket, plan, state->stop_sending, state->hold, s->sent);
    s->done.store(true, std::memory_order_release);
}

// A direction's own figures: with --bidir the runner's request names the upload, and its sending streams'
// result is the download's.
proto::test_request in_direction(proto::test_request test, proto::direction dir) {
    test.dir = dir;
    return test;
}

}  // namespace

iperf3_udp_runner::iperf3_udp_runner(asio::any_io_executor control, net::io_pool& data_pool,
                                     udp_runner_place place, runner_request request, bool counters_64bit,
                                     stream_roles roles)
    : control_(std::move(control)),
      place_(std::move(place)),
      request_(std::move(request)),
      shared_(std::make_shared<shared>()) {
    const auto& test = request_.test;
    const auto timing = test_timing::of(test);
    const bool receives = roles == stream_roles::both_ways || test.dir == proto::direction::upload;
    const bool sends = roles == stream_roles::both_ways || test.dir == proto::direction::download;
    receivers_ = receives ? test.streams : 0;
    senders_ = sends ? test.streams : 0;
    shared_->counters_64bit = counters_64bit;
    // iperf3's default UDP block is its TCP MSS guess less headers; clients always say which (`len`).
    shared_->datagram_bytes =
        std::max<std::uint32_t>(test.udp_payload_bytes == 0 ? 1460 : test.udp_payload_bytes,
                                static_cast<std::uint32_t>(iperf3::udp_header_size(counters_64bit)));
    shared_->warm_up_ns = std::chrono::nanoseconds(timing.warm_up).count();
    shared_->window_ns = std::chrono::nanoseconds(timing.window).count();
    shared_->stream_bits_per_second =
        static_cast<double>(sender_bitrate(test, request_.limits)) / std::max<std::uint16_t>(1, test.streams);
    shared_->poll_when_empty = receive_poll::worth_it(test.bitrate);
    const test_budget budget = test_budget::for_test(test, request_.limits);
    if (budget.max_bytes != 0) {
        shared_->stream_max_bytes =
            std::max<std::uint64_t>(1, budget.max_bytes / std::max<std::uint16_t>(1, test.streams));
    }
    connects_ = std::make_shared<connects>(control_, place_.control_peer, receivers_ + senders_, place_.local,
                                           data_pool, shared_);
}

iperf3_udp_runner::~iperf3_udp_runner() {
    abort();
}

test_setup iperf3_udp_runner::open() {
    place_.listener.add_iperf3(connects_);
    return {"", test_setup::udp_flows{0, place_.listener.port(),
                                      server_rate_cap(request_.test, request_.limits)}};
}

asio::awaitable<void> iperf3_udp_runner::attach_all(test_events& events) {
    const auto deadline = clock::now() + proto::kStreamSetupTimeout;
    const std::size_t wanted = receivers_ + senders_;
    while (shared_->streams.size() < wanted) {
        if (events.aborted()) {
            throw session_error(proto::error_code::shutting_down, "the server is stopping");
        }
        if (clock::now() >= deadline) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("only {} of {} iperf3 UDP streams connected within {} s (is UDP from "
                            "the client to port {} blocked?)",
                            shared_->streams.size(), wanted, proto::kStreamSetupTimeout.count(),
                            place_.listener.port()));
        }
        connects_->changed().expires_at(std::min(deadline, clock::now() + kWatchInterval));
        co_await connects_->changed().async_wait(as_tuple(asio::use_awaitable));
    }
    place_.listener.remove_iperf3(connects_.get());
    connects_->close();
}

iperf3_udp_runner::stream_list iperf3_udp_runner::receiving() const {
    return stream_list(shared_->streams).first(std::min<std::size_t>(receivers_, shared_->streams.size()));
}

iperf3_udp_runner::stream_list iperf3_udp_runner::sending() const {
    return stream_list(shared_->streams).subspan(std::min<std::size_t>(receivers_, shared_->streams.size()));
}

// A sender starts in send(), once the client was told TEST_RUNNING.
void iperf3_udp_runner::start() {
    for (const auto& s : receiving()) {
        asio::co_spawn(s->socket->get_executor(), receive_loop(shared_, s),
                       net::log_if_failed("iperf3 udp receiver"));
    }
}

asio::awaitable<test_result> iperf3_udp_runner::send(test_events& events) {
    for (const auto& s : sending()) {
        asio::co_spawn(s->socket->get_executor(), send_loop(shared_, s),
                       net::log_if_failed("iperf3 udp sender"));
    }
    // The client ends the test with TEST_END after its own time; one that never does is given the test's
    // time plus max(1 s, that time), within the front-end's own deadline for it.
    const auto [give_up, grace] = sender_stop_wait::of(request_.test, events);
    for (;;) {
        const auto wake = std::min(give_up, clock::now() + kWatchInterval);
        if (co_await events.input_pending(wake)) {
            break;
        }
        if (clock::now() >= give_up) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("no TEST_END from the iperf3 client within {:.1f} s after the test's time",
                            std::chrono::duration<double>(grace).count()));
        }
    }
    co_await events.take_stop();
    co_await stop_streams(sending(), shared_->stop_sending, clock::now() + proto::kResultsTimeout);
    test_result result = completed_result(in_direction(request_.test, proto::direction::download));
    for (const auto& s : sending()) {
        result.udp_sent.streams.push_back({s->sent.packets, s->sent.bytes});
        result.iperf3_udp_sent.push_back(s->sent);
    }
    co_return result;
}

asio::awaitable<test_result> iperf3_udp_runner::receive(test_events& events) {
    asio::steady_timer timer(control_);
    const auto first_deadline = clock::now() + proto::kFirstByteTimeout;
    while (shared_->first_ns.load(std::memory_order_acquire) == 0) {
        if (clock::now() >= first_deadline) {
            throw session_error(proto::error_code::timeout,
                                fmt::format("no UDP datagram from the iperf3 client within {} s",
                                            proto::kFirstByteTimeout.count()));
        }
        timer.expires_after(kWatchInterval);
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
    }
    const std::int64_t window_end =
        shared_->first_ns.load(std::memory_order_acquire) + shared_->warm_up_ns + shared_->window_ns;
    const std::int64_t stall_ns = request_.stall_timeout.count();
    for (;;) {
        const std::int64_t now = net::now_ns();
        if (now >= window_end) {
            break;
        }
        std::int64_t latest = shared_->first_ns.load(std::memory_order_relaxed);
        for (const auto& s : receiving()) {
            latest = std::max(latest, s->last_arrival_ns.load(std::memory_order_relaxed));
        }
        if (stall_ns > 0 && now - latest > stall_ns) {
            throw session_error(proto::error_code::timeout,
                                fmt::format("the iperf3 UDP test stalled: no datagram for {:.1f} s",
                                            static_cast<double>(now - latest) / 1e9));
        }
        timer.expires_after(
            std::min<std::chrono::nanoseconds>(kWatchInterval, std::chrono::nanoseconds(window_end - now)));
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
    }
    co_await events.window_closed();
    co_await stop_streams(receiving(), shared_->stop_receiving, clock::now() + proto::kResultsTimeout);
    test_result result = completed_result(in_direction(request_.test, proto::direction::upload));
    result.received.window_ns = shared_->window_ns;
    result.received.omitted_ns = shared_->warm_up_ns;
    for (const auto& s : receiving()) {
        if (!s->warm_up_ended) {
            s->receiver
                .end_warm_up();  // nothing came after the warm-up: iperf3 reset the figures all the same
        }
        const auto& figures = s->receiver.figures();
        result.received.stream_bytes.push_back(figures.bytes);
        result.received.omitted_bytes += figures.omitted_bytes;
        result.iperf3_udp_received.push_back(figures);
    }
    co_return result;
}

asio::awaitable<void> iperf3_udp_runner::stop_streams(stream_list streams, std::atomic<bool>& stop,
                                                      clock::time_point deadline) {
    stop.store(true, std::memory_order_release);
    for (const auto& s : streams) {
        asio::post(s->socket->get_executor(), [socket = s->socket] {
            asio::error_code ignored;
            socket->cancel(ignored);
        });
    }
    asio::steady_timer timer(control_);
    for (;;) {
        const bool all_done = std::all_of(streams.begin(), streams.end(), [](const auto& s) {
            return s->done.load(std::memory_order_acquire);
        });
        if (all_done) {
            co_return;
        }
        if (clock::now() >= deadline) {
            throw session_error(proto::error_code::internal, "the iperf3 UDP streams did not stop");
        }
        timer.expires_after(1ms);
        co_await timer.async_wait(as_tuple(asio::use_awaitable));
    }
}

bool iperf3_udp_runner::hold_sending() {
    if (senders_ == 0) {
        return false;
    }
    shared_->hold.store(true, std::memory_order_relaxed);
    return true;
}

void iperf3_udp_runner::abort() {
    place_.listener.remove_iperf3(connects_.get());
    connects_->close();
    shared_->stop_receiving.store(true, std::memory_order_release);
    shared_->stop_sending.store(true, std::memory_order_release);
    for (const auto& s : shared_->streams) {
        asio::post(s->socket->get_executor(), [socket = s->socket] {
            asio::error_code ignored;
            socket->close(ignored);
        });
    }
}

}  // namespace speed::server
