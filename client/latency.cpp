#include "client/latency.hpp"

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/frame_buffer.hpp"
#include "net/clock.hpp"
#include "net/errors.hpp"
#include "net/spawn.hpp"
#include "net/timestamps.hpp"

namespace speed::client {

using asio::experimental::as_tuple;
using net::clock;

namespace {
// How long replies may trail the last probe of a series before the missing ones count as lost.
constexpr auto kReplyGrace = std::chrono::seconds(3);
}  // namespace

struct prober::series {
    std::uint32_t requested_count = 0;  // 0: until stopped
    std::chrono::nanoseconds interval{0};
    clock::time_point count_from{};    // probes sent earlier are not part of the series' figures
    std::uint32_t warm_up_probes = 0;  // the series' first probes, sent but not counted either
    std::unordered_map<std::uint32_t, std::int64_t> sent_ns;  // outstanding probes of this series
    latency_report report;
    bool stop_requested = false;
    bool finished = false;
    asio::steady_timer* pacer = nullptr;     // the series' schedule timer, to cut a wait short on stop
    std::optional<asio::steady_timer> done;  // cancelled when the series finishes
};

void summarize_latency(latency_report& report) {
    report.rtt = stats::summarize(report.rtt_ms);
    report.jitter_ms = stats::mean_consecutive_difference(report.rtt_ms);
    report.client_wait_removed = 0;
    report.server_hold_removed = 0;
    report.server_hold_rejected = 0;
    for (const auto& trip : report.corrections) {
        report.client_wait_removed += trip.client_wait_removed ? 1 : 0;
        report.server_hold_removed += trip.server_hold_removed ? 1 : 0;
        report.server_hold_rejected += trip.server_hold_rejected ? 1 : 0;
    }
    report.kernel_timestamps = !report.rtt_ms.empty() && report.corrections.size() == report.rtt_ms.size() &&
                               report.client_wait_removed == report.corrections.size() &&
                               report.server_hold_rejected == 0;
}

latency_report only_sent_in(const latency_report& report, latency::time_span span) {
    latency_report kept = report;
    kept.rtt_ms = latency::samples_in(report.rtt_ms, report.sent_ns, span);
    kept.application_rtt_ms = latency::samples_in(report.application_rtt_ms, report.sent_ns, span);
    kept.sent_ns.clear();
    kept.corrections.clear();
    for (std::size_t i = 0; i < report.sent_ns.size() && i < report.corrections.size(); ++i) {
        if (span.contains(report.sent_ns[i])) {
            kept.sent_ns.push_back(report.sent_ns[i]);
            kept.corrections.push_back(report.corrections[i]);
        }
    }
    kept.lost_sent_ns.clear();
    for (const std::int64_t sent : report.lost_sent_ns) {
        if (span.contains(sent)) {
            kept.lost_sent_ns.push_back(sent);
        }
    }
    kept.lost = static_cast<std::uint32_t>(kept.lost_sent_ns.size());
    kept.sent = static_cast<std::uint32_t>(kept.sent_ns.size()) + kept.lost;
    summarize_latency(kept);
    return kept;
}

prober::prober(asio::ip::tcp::socket socket)
    : socket_(std::move(socket)), reply_signal_(socket_.get_executor()) {}

void prober::start() {
    asio::co_spawn(socket_.get_executor(), read_replies(shared_from_this()),
                   net::log_if_failed("probe reader"));
}

void prober::close() {
    asio::error_code ignored;
    socket_.close(ignored);
}

void prober::wake_series() {
    reply_signal_.cancel();
}

asio::awaitable<void> prober::read_replies(std::shared_ptr<prober> self) {
    proto::frame_buffer received;
    const bool kernel_stamps = net::enable_receive_timestamps(self->socket_.native_handle());
    for (;;) {
        const net::timestamped_read read =
            co_await net::async_read_with_timestamp(self->socket_, received.prepare(512));
        // Timestamps first: everything below is bookkeeping that must not count as network time. The round
        // trip (monotonic) and the wait since the kernel's stamp (real time) are taken at one instant.
        const net::clock_pair now = net::read_clocks();
        const std::int64_t received_ns = now.monotonic_ns;
        std::optional<std::int64_t> client_wait_ns;
        if (kernel_stamps && read.kernel_realtime_ns) {
            client_wait_ns = now.realtime_ns - *read.kernel_realtime_ns;
        }
        if (read.error) {
            self->failure_ = read.error == asio::error::eof ? "the server closed the probe connection"
                                                            : read.error.message();
            self->wake_series();
            co_return;
        }
        received.commit(read.bytes);
        for (;;) {
            proto::decode_result frame = received.next(proto::kMaxProbePayload);
            if (frame.status == proto::decode_status::need_more) {
                break;
            }
            const auto* reply = std::get_if<proto::pong>(&frame.msg);
            if (frame.status == proto::decode_status::bad || reply == nullptr) {
                self->failure_ = frame.status == proto::decode_status::bad ? frame.reason : "not a PONG";
                self->wake_series();
                co_return;
            }
            auto& s = self->current_;
            if (!s) {
                continue;  // a late reply to a series that already ended
            }
            auto it = s->sent_ns.find(reply->sequence);
            if (it == s->sent_ns.end() || static_cast<std::uint64_t>(it->second) != reply->client_time_ns) {
                continue;  // not one of this series' probes
            }
            const auto trip = latency::round_trip_of(latency::probe_timing{
                it->second, received_ns, client_wait_ns, static_cast<std::int64_t>(reply->server_hold_ns)});
            s->report.rtt_ms.push_back(trip.network_ms);
            s->report.application_rtt_ms.push_back(trip.application_ms);
            s->report.sent_ns.push_back(it->second);
            s->report.corrections.push_back(trip);
            s->sent_ns.erase(it);
        }
        self->wake_series();
    }
}

asio::awaitable<void> prober::run_series(std::shared_ptr<prober> self, std::shared_ptr<series> s) {
    asio::steady_timer pacer(self->socket_.get_executor());
    s->pacer = &pacer;
    std::vector<std::uint8_t> frame;
    const std::uint32_t count = s->requested_count;
    const auto interval = s->interval;
    const auto start = clock::now();
    for (std::uint32_t index = 0; count == 0 || index < count; ++index) {
        const auto scheduled = start + interval * index;
        if (clock::now() < scheduled) {
            pacer.expires_at(scheduled);
            co_await pacer.async_wait(as_tuple(asio::use_awaitable));
        }
        if (s->stop_requested || self->failure_ || !self->socket_.is_open()) {
            break;
        }
        const std::uint32_t sequence = self->next_sequence_++;
        const std::int64_t sent_ns = net::now_ns();
        const proto::ping probe{sequence, static_cast<std::uint64_t>(sent_ns)};
        frame.clear();
        proto::encode(probe, frame);
        if (index >= s->warm_up_probes && clock::now() >= s->count_from) {
            s->sent_ns.emplace(sequence, sent_ns);
            ++s->report.sent;
        }
        auto [ec, written] =
            co_await asio::async_write(self->socket_, asio::buffer(frame), as_tuple(asio::use_awaitable));
        if (ec) {
            self->failure_ = ec.message();
            break;
        }
    }
    s->pacer = nullptr;
    // Wait for the replies still in flight, then count what never came as lost.
    const auto grace_end = clock::now() + kReplyGrace;
    while (!s->sent_ns.empty() && !self->failure_ && clock::now() < grace_end) {
        self->reply_signal_.expires_at(grace_end);
        co_await self->reply_signal_.async_wait(as_tuple(asio::use_awaitable));
    }
    s->report.lost = static_cast<std::uint32_t>(s->sent_ns.size());
    for (const auto& [sequence, sent] : s->sent_ns) {
        s->report.lost_sent_ns.push_back(sent);
    }
    s->sent_ns.clear();
    summarize_latency(s->report);
    s->finished = true;
    if (s->done) {
        s->done->cancel();
    }
}

asio::awaitable<latency_report> prober::measure(unsigned count, std::chrono::nanoseconds interval) {
    auto s = std::make_shared<series>();
    // One uncounted probe first, one interval ahead of the counted ones: the first message on a path pays for
    // things no later one does (ARP or neighbour discovery, cold caches), and on a host where no socket has
    // asked for kernel receive timestamps yet, the kernel turns them on a moment after the first one asks
    // (a deferred static key), so the first PING and PONG may arrive unstamped.
    s->warm_up_probes = 1;
    s->requested_count = count + 1;
    s->interval = interval;
    current_ = s;
    co_await run_series(shared_from_this(), s);
    current_.reset();
    if (failure_ && s->report.rtt_ms.empty()) {
        throw net::session_error(proto::error_code::protocol_error, "latency probes failed: " + *failure_);
    }
    co_return std::move(s->report);
}

void prober::start_background(std::chrono::nanoseconds interval, clock::time_point count_from) {
    auto s = std::make_shared<series>();
    s->interval = interval;
    s->count_from = count_from;
    s->done.emplace(socket_.get_executor(), clock::time_point::max());
    current_ = s;
    asio::co_spawn(socket_.get_executor(), run_series(shared_from_this(), s),
                   net::log_if_failed("probe series"));
}

asio::awaitable<latency_report> prober::stop_background() {
    auto s = current_;
    if (!s) {
        co_return latency_report{};
    }
    s->stop_requested = true;
    if (s->pacer != nullptr) {
        s->pacer->cancel();
    }
    while (!s->finished) {
        co_await s->done->async_wait(as_tuple(asio::use_awaitable));
    }
    current_.reset();
    co_return std::move(s->report);
}

}  // namespace speed::client
