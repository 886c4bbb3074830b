#include "server/runners/tcp_runner.hpp"

#include <fmt/format.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <limits>
#include <numeric>

#include "common/limits.hpp"
#include "common/progress_watchdog.hpp"
#include "common/test_timing.hpp"
#include "common/time_units.hpp"
#include "common/units.hpp"
#include "net/errors.hpp"
#include "net/first_failure.hpp"
#include "net/receiver_window.hpp"
#include "net/socket_options.hpp"

namespace speed::server {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using net::clock;
using net::session_error;

namespace {

using proto::kFirstByteTimeout;
using proto::kResultsTimeout;
using proto::kStreamSetupTimeout;

// With a byte cap, a download's sender stops once it has sent this share of --max-bytes at its pace (the
// pace fits max_bytes into the test, so the client's window has all its data by then), STOP or not: the cap
// then holds within the 1.25x the docs promise even for a client that never sends STOP.
constexpr double kSendCutoffShare = 1.1;
// How often a sender checks its progress watchdog and budget while it waits for STOP.
constexpr auto kWatchInterval = 250ms;
// How often it forwards self probe marks once the client probes: a mark's delay only has to stay well within
// what the client's read history covers (common/self_probe.hpp), and a poll costs one timer.
constexpr auto kSelfProbeMarkInterval = 10ms;
// After the client's stop, how often a receiver that still misses bytes of the client's amount looks again,
// and how long it waits for more once the amount is in (see drain_after_stop()).
constexpr auto kDrainPoll = 10ms;
constexpr auto kDrainQuiet = 20ms;
// A client that sends nothing during an upload costs a timer every kMarkPoll; the window's end waits at most
// that long for the mark reader.
constexpr auto kMarkPoll = 20ms;

// An upload's self probes sent at or after `since_ns` (when the streams started), relative to it.
proto::self_probe_samples self_probe_samples_of(const net::stream_group& group, std::int64_t since_ns) {
    proto::self_probe_samples out;
    out.sent = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(group.self_probes_sent(), std::numeric_limits<std::uint32_t>::max()));
    out.dropped = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(group.self_probes_dropped(), std::numeric_limits<std::uint32_t>::max()));
    for (const auto& sample : group.self_probe_samples(since_ns)) {
        if (out.samples.size() == proto::kMaxSelfProbes) {
            break;
        }
        out.samples.push_back(
            {units::ns_to_wire_us(sample.sent_ns - since_ns), units::ns_to_wire_us(sample.rtt_ns)});
    }
    return out;
}

std::uint64_t sum_of(const std::vector<std::uint64_t>& counters) {
    return std::accumulate(counters.begin(), counters.end(), std::uint64_t{0});
}

// At most `limit` values, evenly spread over `values` (keeps a long series within a frame).
std::vector<std::uint32_t> thin_evenly(const std::vector<std::uint32_t>& values, std::size_t limit) {
    if (values.size() <= limit) {
        return values;
    }
    std::vector<std::uint32_t> kept;
    kept.reserve(limit);
    for (std::size_t i = 0; i < limit; ++i) {
        kept.push_back(values[i * values.size() / limit]);
    }
    return kept;
}

}  // namespace

tcp_runner::tcp_runner(asio::any_io_executor control, net::io_pool& data_pool, runner_request request)
    : request_(std::move(request)),
      data_pool_(data_pool),
      group_(control, request_.test.streams),
      attach_timer_(control) {}

test_setup tcp_runner::open() {
    const auto& congestion = request_.test.congestion;
    return {congestion.empty() ? net::default_congestion() : congestion, std::nullopt};
}

bool tcp_runner::attach_connection(std::size_t index, asio::ip::tcp::socket socket) {
    if (!group_.attach(index, std::move(socket), data_pool_.next())) {
        return false;
    }
    attach_timer_.cancel();
    return true;
}

asio::awaitable<void> tcp_runner::attach_all(test_events& events) {
    const auto deadline = clock::now() + kStreamSetupTimeout;
    while (!group_.all_attached()) {
        if (clock::now() >= deadline) {
            throw session_error(proto::error_code::timeout,
                                fmt::format("not all {} data connections arrived within {} s",
                                            request_.test.streams, kStreamSetupTimeout.count()));
        }
        attach_timer_.expires_at(deadline);
        co_await attach_timer_.async_wait(as_tuple(asio::use_awaitable));
        if (events.aborted()) {
            throw session_error(proto::error_code::shutting_down, "session aborted");
        }
    }
    if (auto failure = group_.set_congestion(request_.test.congestion)) {
        throw session_error(proto::error_code::unsupported, *failure);
    }
}

void tcp_runner::start() {
    if (request_.test.dir == proto::direction::download) {
        // TCP has no rate of its own: the requested (or capped) bitrate is handed to the kernel's pacing.
        const std::uint64_t bitrate = sender_bitrate(request_.test, request_.limits);
        started_ns_ = net::now_ns();
        group_.start_sending(per_stream_pacing(bitrate, request_.test.streams));
        group_.answer_self_probes();
    } else {
        // The server probes the client's data connections (docs/protocol.md, "Self probes"); their send times
        // count from here, just before the client is told to start.
        group_.start_receiving(request_.self_probes ? net::stream_group::kDefaultSelfProbeInterval
                                                    : std::chrono::nanoseconds(0));
        started_ns_ = net::now_ns();
    }
}

asio::awaitable<test_result> tcp_runner::send(test_events& events) {
    co_await watch_sending_until_input(events);
    co_await events.take_stop();
    group_.stop_all(request_.closing);
    co_await group_.wait_all_ended(clock::now() + kResultsTimeout);
    // The in-band RTT counts from the end of the sender's warm-up, as the client's probes do.
    const std::int64_t warm_up_end_ns =
        started_ns_ + std::chrono::nanoseconds(test_timing::of(request_.test).warm_up).count();
    test_result result = completed_result(request_.test);
    result.tcp_sent = group_.sender_stats();
    result.tcp_sent_in_warm_up = sent_in_warm_up_;
    result.rtt_samples_us = thin_evenly(group_.rtt_samples_us(warm_up_end_ns), proto::kMaxRttSamples);
    co_return result;
}

// While the server sends, the client's STOP may come at any time; until it does, the server checks that the
// client's TCP keeps acknowledging data (a client that was stopped or vanished stops acknowledging, however
// slow its path) and that the test stays within the server's byte cap whatever the client does with STOP.
asio::awaitable<void> tcp_runner::watch_sending_until_input(test_events& events) {
    const auto deadline = clock::now() + events.stop_timeout();
    const std::int64_t stall_ns = request_.stall_timeout.count();
    progress_watchdog watchdog(stall_ns);
    watchdog.start(net::now_ns(), group_.acknowledged_bytes());
    const test_budget budget = test_budget::for_test(request_.test, request_.limits);
    const std::int64_t started_ns = net::now_ns();
    // Far in the future without a byte cap.
    auto cutoff = clock::time_point::max();
    const std::uint64_t max_bytes = request_.limits.max_bytes;
    const std::uint64_t bitrate = sender_bitrate(request_.test, request_.limits);
    const bool byte_capped = max_bytes != 0 && bitrate != 0;
    if (byte_capped) {
        const double cutoff_seconds =
            kSendCutoffShare * static_cast<double>(max_bytes) * 8.0 / static_cast<double>(bitrate);
        cutoff = clock::now() + std::chrono::duration_cast<clock::duration>(
                                    std::chrono::duration<double>(std::min(cutoff_seconds, 1e6)));
    }
    bool sending = true;
    // The counters at the end of the warm-up: a wake-up is due then (none without a warm-up).
    const auto warm_up_end = clock::now() + test_timing::of(request_.test).warm_up;
    if (test_timing::of(request_.test).warm_up.count() == 0) {
        sent_in_warm_up_.assign(group_.size(), 0);
    }
    for (;;) {
        // GCC 12: no initializer list inside a co_await expression.
        const auto poll = group_.self_probes_answered() > 0 ? kSelfProbeMarkInterval : kWatchInterval;
        auto wake = std::min(std::min(deadline, clock::now() + poll), sending ? cutoff : deadline);
        if (sent_in_warm_up_.empty()) {
            wake = std::min(wake, warm_up_end);
        }
        if (co_await events.input_pending(wake)) {
            co_return;
        }
        if (sent_in_warm_up_.empty() && clock::now() >= warm_up_end) {
            group_.read_counters(sent_in_warm_up_);
        }
        const auto marks = group_.take_self_probe_marks();
        if (!marks.empty()) {
            co_await events.self_probe_marks(marks);
        }
        if (clock::now() >= deadline) {
            throw session_error(proto::error_code::timeout, "timed out waiting for the client's STOP");
        }
        if (!sending) {
            continue;
        }
        const std::uint64_t acknowledged = group_.acknowledged_bytes();
        if (watchdog.stalled(net::now_ns(), acknowledged)) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("the client acknowledged no data for {:.1f} s: it stopped receiving",
                            static_cast<double>(stall_ns) / 1e9));
        }
        // Before the cutoff: a test over its budget ends with the server's reason, which the session writes
        // before it resets the data connections. Stopping at the cutoff first reset them with nothing said,
        // and the client showed a lost data connection instead.
        if (auto refusal = budget.check(net::now_ns() - started_ns, acknowledged)) {
            throw session_error(refusal->code, refusal->message);
        }
        if (byte_capped &&
            (clock::now() >= cutoff ||
             static_cast<double>(acknowledged) >= kSendCutoffShare * static_cast<double>(max_bytes))) {
            // The byte cap is spent within the budget's margins: stop sending and keep waiting for STOP.
            group_.stop_all();
            sending = false;
        }
    }
}

asio::awaitable<test_result> tcp_runner::receive(test_events& events) {
    using namespace asio::experimental::awaitable_operators;
    if (request_.window_ends_at_stop) {
        // The client ended the window itself: nothing is left to tell it (events.window_closed()).
        test_result result = completed_result(request_.test);
        result.received = co_await measure_until_stop(events);
        group_.stop_all(request_.closing);
        co_return result;
    }
    bool window_open = true;
    net::first_failure failure;
    measure::totals totals;
    try {
        totals = co_await (net::noting_failure(measure_window(events, window_open), failure) &&
                           net::noting_failure(read_self_probe_marks(events, window_open), failure));
    } catch (...) {
        failure.rethrow();
    }
    co_await events.window_closed();
    group_.stop_all(request_.closing);
    test_result result = completed_result(request_.test);
    result.received = std::move(totals);
    result.self_probes = self_probe_samples_of(group_, started_ns_);
    co_return result;
}

asio::awaitable<void> tcp_runner::finish() {
    co_await group_.wait_all_ended(clock::now() + kResultsTimeout);
}

asio::awaitable<measure::totals> tcp_runner::measure_window(test_events& events, bool& window_open) {
    struct window_closer {
        bool& open;
        ~window_closer() { open = false; }
    } closer{window_open};
    const auto& test = request_.test;
    const auto plan = test_timing::of(test).plan();
    net::receiver_watch watch;
    watch.stall_timeout = request_.stall_timeout;
    watch.budget = test_budget::for_test(test, request_.limits);
    co_return co_await net::measure_receiver_window(
        group_, plan, clock::now() + kFirstByteTimeout,
        [&events](const measure::interval& closed) { return events.interval(closed); }, watch);
}

asio::awaitable<measure::totals> tcp_runner::measure_until_stop(test_events& events) {
    const auto stop_deadline = clock::now() + events.stop_timeout();
    const std::int64_t time_zero_ns =
        co_await net::wait_for_first_byte(group_, clock::now() + kFirstByteTimeout);
    net::receiver_watch watch;
    watch.stall_timeout = request_.stall_timeout;
    watch.budget = test_budget::for_test(request_.test, request_.limits);
    progress_watchdog watchdog(watch.stall_timeout.count());
    watchdog.start(net::now_ns(), 0);
    std::vector<std::uint64_t> counters(group_.size(), 0);
    // As iperf3's own server: the warm-up (-O) counts from the server's TEST_RUNNING, and what arrived in it
    // is left out. A wake-up is due at its end (none without a warm-up).
    const auto warm_up = test_timing::of(request_.test).warm_up;
    const std::int64_t warm_up_end_ns = started_ns_ + std::chrono::nanoseconds(warm_up).count();
    const auto warm_up_end =
        clock::now() + std::chrono::nanoseconds(std::max<std::int64_t>(warm_up_end_ns - net::now_ns(), 0));
    std::vector<std::uint64_t> in_warm_up;
    if (warm_up.count() == 0) {
        in_warm_up.assign(group_.size(), 0);
    }
    for (;;) {
        // GCC 12: no initializer list inside a co_await expression.
        auto wake = std::min(stop_deadline, clock::now() + kWatchInterval);
        if (in_warm_up.empty()) {
            wake = std::min(wake, warm_up_end);
        }
        if (co_await events.input_pending(wake)) {
            break;
        }
        if (auto failure = group_.first_failure()) {
            throw session_error(proto::error_code::protocol_error,
                                "a data connection was lost during the test (" + *failure + ")");
        }
        group_.read_counters(counters);
        if (in_warm_up.empty() && clock::now() >= warm_up_end) {
            in_warm_up = counters;
        }
        net::check_receiver_watch(watch, watchdog, net::now_ns() - time_zero_ns, sum_of(counters));
        if (clock::now() >= stop_deadline) {
            throw session_error(proto::error_code::timeout,
                                "timed out waiting for the client's end of the test");
        }
    }
    co_await events.take_stop();
    const std::int64_t stop_ns = net::now_ns();
    // The client wrote its last bytes: the streams read them as they come, not once a mark's worth is in.
    group_.release_receive_marks();
    measure::totals totals;
    // A client that ends within the warm-up sent nothing after it.
    const std::int64_t window_from_ns = std::max(time_zero_ns, warm_up_end_ns);
    totals.omitted_ns = window_from_ns - time_zero_ns;
    const bool stopped_in_warm_up = in_warm_up.empty();
    if (stopped_in_warm_up) {
        group_.read_counters(in_warm_up);
    }
    co_await drain_after_stop(watch, watchdog, time_zero_ns, in_warm_up, counters);
    if (stopped_in_warm_up) {
        in_warm_up = counters;
    }
    // The bytes counted are every byte written before the stop, and a paced sender's socket buffer still
    // holds a part of them then (a --bidir upload of speedcli at 200 Mbit/s: 0.12 s of them): the window
    // ends when the last of them arrived, if that is after the stop, so that the bytes are over the time
    // they arrived in.
    const std::int64_t window_end_ns =
        stopped_in_warm_up ? stop_ns : std::max(stop_ns, group_.last_byte_ns().value_or(stop_ns));
    totals.window_ns = std::max<std::int64_t>(window_end_ns - window_from_ns, 0);
    totals.stream_bytes.resize(counters.size());
    for (std::size_t i = 0; i < counters.size(); ++i) {
        const std::uint64_t omitted = std::min(in_warm_up[i], counters[i]);
        totals.omitted_bytes += omitted;
        totals.stream_bytes[i] = counters[i] - omitted;
    }
    co_return totals;
}

asio::awaitable<void> tcp_runner::drain_after_stop(const net::receiver_watch& watch,
                                                   progress_watchdog& watchdog, std::int64_t time_zero_ns,
                                                   const std::vector<std::uint64_t>& in_warm_up,
                                                   std::vector<std::uint64_t>& counters) {
    // The client stops once it has written its amount, so that much is on its way; a part of a block more
    // may follow it (a partial write). The bytes still in flight come in one stream of segments: a pause of
    // kDrainQuiet once the amount is in means the client wrote nothing more.
    const auto deadline = clock::now() + kResultsTimeout;
    // The client counts its amount from the end of its warm-up.
    const std::uint64_t amount = request_.least_bytes + sum_of(in_warm_up);
    group_.read_counters(counters);
    std::uint64_t seen = sum_of(counters);
    for (;;) {
        const bool amount_in = seen >= amount;
        const auto wake = std::min(deadline, clock::now() + (amount_in ? kDrainQuiet : kDrainPoll));
        co_await group_.wait_for_change(wake);
        if (auto failure = group_.first_failure()) {
            throw session_error(proto::error_code::protocol_error,
                                "a data connection was lost during the test (" + *failure + ")");
        }
        group_.read_counters(counters);
        const std::uint64_t now_seen = sum_of(counters);
        if (amount_in && now_seen == seen) {
            co_return;
        }
        seen = now_seen;
        net::check_receiver_watch(watch, watchdog, net::now_ns() - time_zero_ns, seen);
        if (clock::now() >= deadline) {
            throw session_error(
                proto::error_code::timeout,
                fmt::format("{} bytes arrived of the {} the client sent before its end of the test", seen,
                            amount));
        }
    }
}

asio::awaitable<void> tcp_runner::read_self_probe_marks(test_events& events, const bool& window_open) {
    while (window_open) {
        // GCC 12: no initializer list inside a co_await expression.
        const auto wake = clock::now() + kMarkPoll;
        const bool pending = co_await events.input_pending(wake);
        if (!pending || !window_open) {
            continue;
        }
        const proto::self_probe_mark mark = co_await events.take_self_probe_mark();
        group_.on_self_probe_mark(mark);
    }
}

bool tcp_runner::hold_sending() {
    if (request_.test.dir != proto::direction::download) {
        return false;
    }
    group_.hold_sending();
    return true;
}

void tcp_runner::abort() {
    group_.stop_all();
    attach_timer_.cancel();
}

}  // namespace speed::server
