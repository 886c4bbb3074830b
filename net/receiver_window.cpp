#include "net/receiver_window.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "common/progress_watchdog.hpp"
#include "net/errors.hpp"

namespace speed::net {

namespace {

std::uint64_t total_of(const std::vector<std::uint64_t>& counters) {
    return std::accumulate(counters.begin(), counters.end(), std::uint64_t{0});
}

}  // namespace

void check_receiver_watch(const receiver_watch& watch, progress_watchdog& watchdog, std::int64_t elapsed_ns,
                          std::uint64_t received) {
    if (watchdog.stalled(now_ns(), received)) {
        throw session_error(proto::error_code::timeout,
                            fmt::format("no test data arrived for {:.1f} s: the sender stopped sending",
                                        std::chrono::duration<double>(watch.stall_timeout).count()));
    }
    if (auto refusal = watch.budget.check(elapsed_ns, received)) {
        throw session_error(refusal->code, refusal->message);
    }
}

asio::awaitable<std::int64_t> wait_for_first_byte(stream_group& group, clock::time_point deadline) {
    while (!group.first_byte_ns()) {
        if (auto failure = group.first_failure()) {
            throw session_error(proto::error_code::protocol_error,
                                "a data connection failed before any data arrived (" + *failure + ")");
        }
        // co_await as its own statement: GCC 12 miscompiles a co_await inside a && condition (SIGILL).
        const bool changed = co_await group.wait_for_change(deadline);
        if (!changed && clock::now() >= deadline) {
            throw session_error(proto::error_code::timeout,
                                "no test data arrived after the streams were set up");
        }
    }
    co_return *group.first_byte_ns();
}

asio::awaitable<measure::totals> measure_receiver_window(stream_group& group, const measure::plan& plan,
                                                         clock::time_point first_byte_deadline,
                                                         const interval_callback& on_interval,
                                                         const receiver_watch& watch) {
    const std::int64_t time_zero_ns = co_await wait_for_first_byte(group, first_byte_deadline);
    measure::interval_meter meter(plan, group.size());
    // Every byte of the test arrived at or after time 0, so the meter starts from zero.
    std::vector<std::uint64_t> counters(group.size(), 0);
    meter.start(counters);
    progress_watchdog watchdog(watch.stall_timeout.count());
    watchdog.start(now_ns(), 0);

    while (!meter.finished()) {
        const auto planned =
            clock::time_point(std::chrono::nanoseconds(time_zero_ns + meter.next_point_ns()));
        while (clock::now() < planned) {
            const auto wake =
                watch.active() ? std::min(planned, clock::now() + watch.check_interval) : planned;
            co_await group.wait_for_change(wake);
            if (auto failure = group.first_failure()) {
                throw session_error(proto::error_code::protocol_error,
                                    "a data connection was lost during the test (" + *failure + ")");
            }
            if (watch.active()) {
                group.read_counters(counters);
                check_receiver_watch(watch, watchdog, now_ns() - time_zero_ns, total_of(counters));
            }
        }
        group.read_counters(counters);
        const std::int64_t sampled_ns = now_ns() - time_zero_ns;
        const measure::interval closed = meter.sample(sampled_ns, counters);
        if (on_interval) {
            co_await on_interval(closed);
        }
    }
    co_return meter.result();
}

}  // namespace speed::net
