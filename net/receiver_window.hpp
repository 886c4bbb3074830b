// The receiving side of a time-based test, shared by speedcli (download) and speedsrv (upload).
//
// Time 0 is the moment the first payload byte of the test was read. The group's byte counters are sampled at
// every point of the plan; each sample closes an interval, handed to `on_interval` as it happens (speedcli
// prints it, speedsrv sends it to the client). A stream that fails before the window closes fails the test.
#pragma once

#include <asio/awaitable.hpp>
#include <chrono>
#include <functional>

#include "common/limits.hpp"
#include "common/measurement.hpp"
#include "common/progress_watchdog.hpp"
#include "net/clock.hpp"
#include "net/stream_group.hpp"

namespace speed::net {

using interval_callback = std::function<asio::awaitable<void>(const measure::interval&)>;

// What a receiver watches besides the plan (speedsrv: a sender that stalls or exceeds the server's caps).
struct receiver_watch {
    // No byte on any stream for this long ends the test with a timeout; zero = no watchdog.
    std::chrono::nanoseconds stall_timeout{0};
    // Bytes beyond the budget end the test with limit_exceeded.
    test_budget budget;
    // How often the watchdog and the budget are checked between planned samples.
    std::chrono::nanoseconds check_interval = std::chrono::milliseconds(250);

    bool active() const { return stall_timeout.count() > 0 || !budget.unlimited(); }
};

// Waits for the test's first payload byte on `group`; throws at `deadline` or when a stream fails first.
// Returns its steady-clock time (ns): time 0.
asio::awaitable<std::int64_t> wait_for_first_byte(stream_group& group, clock::time_point deadline);

// Throws when the sender stalled (no byte for the watch's stall timeout since `watchdog` last saw progress)
// or went over the budget; `elapsed_ns` counts from time 0, `received` is every stream's bytes.
void check_receiver_watch(const receiver_watch& watch, progress_watchdog& watchdog, std::int64_t elapsed_ns,
                          std::uint64_t received);

asio::awaitable<measure::totals> measure_receiver_window(stream_group& group, const measure::plan& plan,
                                                         clock::time_point first_byte_deadline,
                                                         const interval_callback& on_interval,
                                                         const receiver_watch& watch = {});

}  // namespace speed::net
