#include "net/udp_window.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <cmath>
#include <optional>

#include "net/errors.hpp"

namespace speed::net {

using asio::experimental::as_tuple;

namespace {

constexpr std::chrono::milliseconds kDrainPoll{5};
// A timer that fires this much after its deadline means the control thread was not running (a timer wakes
// the idle control thread within tens of microseconds).
constexpr std::chrono::milliseconds kLateWakeUp{5};

std::uint64_t round_ns(double value) {
    return value > 0 ? static_cast<std::uint64_t>(std::llround(value)) : 0;
}

}  // namespace

asio::awaitable<udp_window_result> measure_udp_receiver_window(udp_flow_group& group,
                                                               const measure::plan& plan,
                                                               clock::time_point first_data_deadline,
                                                               const udp_interval_callback& on_interval) {
    while (!group.first_data_ns()) {
        if (auto failure = group.first_failure()) {
            throw session_error(proto::error_code::protocol_error,
                                "a UDP stream failed before any data arrived (" + *failure + ")");
        }
        // GCC 12 miscompiles co_await inside && (the frame resumes at a bogus point): await first.
        const bool changed = co_await group.wait_for_change(first_data_deadline);
        if (!changed && clock::now() >= first_data_deadline) {
            throw session_error(
                proto::error_code::timeout,
                "no UDP test data arrived after the streams were set up (is UDP blocked on the "
                "way back?)");
        }
    }
    const std::int64_t time_zero_ns = *group.first_data_ns();
    const std::size_t streams = group.size();
    measure::interval_meter meter(plan, streams);
    std::vector<std::uint64_t> bytes(streams, 0);
    meter.start(bytes);
    std::vector<udp::receiver_counters> previous(streams);
    std::vector<udp::receiver_counters> counters;

    while (!meter.finished()) {
        // Arrival-time binning: each boundary is the planned instant itself; a datagram counts before it when
        // its kernel arrival stamp is. The receivers learn the boundary before it comes, and the sample waits
        // until each has read past it, at most kBoundaryGrace (then it takes what was read by then).
        const std::int64_t point_ns = meter.next_point_ns();
        const std::int64_t boundary_ns = time_zero_ns + point_ns;
        group.set_boundary(boundary_ns);
        const auto planned = clock::time_point(std::chrono::nanoseconds(boundary_ns));
        // The grace starts when this coroutine sees the boundary pass, not at the boundary: a control thread
        // that was itself delayed must still give the receivers their grace to catch up.
        // If it wakes up well after the grace ended, its thread was not running, and likely neither were the
        // receivers': they get the grace once more.
        std::optional<clock::time_point> grace_end;
        bool regraced = false;
        for (;;) {
            const auto now = clock::now();
            if (now >= planned) {
                if (group.read_boundary_counters(boundary_ns, counters)) {
                    break;
                }
                if (!grace_end) {
                    grace_end = now + kBoundaryGrace;
                } else if (now >= *grace_end) {
                    if (regraced || now - *grace_end < kLateWakeUp) {
                        break;
                    }
                    regraced = true;
                    grace_end = now + kBoundaryGrace;
                }
            }
            const clock::time_point wake = grace_end ? *grace_end : planned;
            co_await group.wait_for_change(wake);
            if (auto failure = group.first_failure()) {
                throw session_error(
                    group.stalled() ? proto::error_code::timeout : proto::error_code::protocol_error,
                    "a UDP stream failed during the test (" + *failure + ")");
            }
        }
        // Past the grace, a receiver that has not read past the boundary contributes what it has read.
        group.read_boundary_counters(boundary_ns, counters);
        for (std::size_t i = 0; i < streams; ++i) {
            bytes[i] = counters[i].bytes_received;
        }
        const measure::interval closed = meter.sample(point_ns, bytes);
        proto::udp_interval_report report;
        report.index = closed.index;
        report.start_ns = static_cast<std::uint64_t>(closed.start_ns);
        report.end_ns = static_cast<std::uint64_t>(closed.end_ns);
        report.omitted = closed.omitted;
        report.streams.resize(streams);
        for (std::size_t i = 0; i < streams; ++i) {
            auto& s = report.streams[i];
            s.bytes = closed.stream_bytes[i];
            s.packets = counters[i].packets_received - previous[i].packets_received;
            // Gaps opened minus gaps filled: late arrivals can fill an earlier interval's gap.
            const std::uint64_t gaps = counters[i].gaps();
            s.lost_packets = gaps > previous[i].gaps() ? gaps - previous[i].gaps() : 0;
            s.jitter_ns = round_ns(counters[i].jitter_ns);
        }
        previous = counters;
        if (on_interval) {
            co_await on_interval(report);
        }
    }
    group.set_boundary(0);
    udp_window_result result;
    result.totals = meter.result();
    result.at_window_end = std::move(previous);
    co_return result;
}

asio::awaitable<void> drain_and_close(udp_flow_group& group, const proto::udp_sender_report& sent,
                                      clock::time_point deadline) {
    asio::steady_timer poll(co_await asio::this_coro::executor);
    std::vector<udp::receiver_counters> counters;
    for (;;) {
        group.read_counters(counters);
        bool complete = true;
        for (std::size_t i = 0; i < counters.size() && i < sent.streams.size(); ++i) {
            complete = complete && counters[i].packets_received >= sent.streams[i].packets;
        }
        if (complete || clock::now() >= deadline) {
            break;
        }
        poll.expires_after(kDrainPoll);
        co_await poll.async_wait(as_tuple(asio::use_awaitable));
    }
    group.close_all();
    // A flow that has not closed has not published its final accounting: its zeroed counters would report
    // every datagram as lost. The test ends with an error instead.
    const bool closed = co_await group.wait_all_closed(clock::now() + kDrainTimeout);
    if (!closed) {
        throw session_error(proto::error_code::timeout,
                            "a UDP stream did not close within " + std::to_string(kDrainTimeout.count()) +
                                " ms after the test (its data thread is busy or stuck): no final counts");
    }
}

proto::udp_receiver_report make_udp_receiver_report(const udp_window_result& window,
                                                    const std::vector<udp_receiver_final>& finals,
                                                    const proto::udp_sender_report& sent) {
    const std::size_t streams = finals.size();
    if (sent.streams.size() != streams || window.at_window_end.size() != streams) {
        throw session_error(proto::error_code::protocol_error,
                            "UDP_SENDER_REPORT has the wrong number of streams");
    }
    proto::udp_receiver_report report;
    report.window_ns = static_cast<std::uint64_t>(window.totals.window_ns);
    report.omitted_ns = static_cast<std::uint64_t>(window.totals.omitted_ns);
    report.omitted_bytes = window.totals.omitted_bytes;
    udp::ipdv_histogram all;
    for (std::size_t i = 0; i < streams; ++i) {
        const auto result =
            udp::finalize_stream(window.at_window_end[i], finals[i].counters, sent.streams[i].packets);
        if (!result.totals) {
            throw session_error(proto::error_code::protocol_error,
                                "stream " + std::to_string(i) + ": " + result.error);
        }
        const udp::stream_totals& t = *result.totals;
        proto::udp_stream_received s;
        s.bytes = window.totals.stream_bytes[i];
        s.packets_received = t.packets_received;
        s.lost_packets = t.lost_packets;
        s.out_of_order = t.out_of_order;
        s.duplicates = t.duplicates;
        s.late_packets = t.late_packets;
        s.jitter_ns = round_ns(t.jitter_ns);
        s.ipdv_p50_ns = finals[i].ipdv.percentile(0.50);
        s.ipdv_p90_ns = finals[i].ipdv.percentile(0.90);
        s.ipdv_p99_ns = finals[i].ipdv.percentile(0.99);
        report.streams.push_back(s);
        all.merge(finals[i].ipdv);
        report.ipdv_pairs += finals[i].counters.ipdv_pairs;
        report.ipdv_pairs_excluded += finals[i].counters.ipdv_pairs_excluded;
    }
    report.ipdv_p50_ns = all.percentile(0.50);
    report.ipdv_p90_ns = all.percentile(0.90);
    report.ipdv_p99_ns = all.percentile(0.99);
    return report;
}

}  // namespace speed::net
