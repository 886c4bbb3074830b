// speedcli's window over iperf3's UDP receiver accounting (common/iperf3_udp_window.hpp): time 0 at the first
// datagram, the warm-up's reset, each datagram in the interval its arrival falls in, nothing after the
// window.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/iperf3_udp_window.hpp"

using namespace speed::iperf3;
using speed::measure::plan;

namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kStart = 5'000 * kMs;  // time 0 on the receiver's clock
constexpr std::size_t kBytes = 100;

// Datagram `count` on stream `index`, arrived `at_ms` after kStart, sent 1 ms before (a constant transit:
// no jitter).
void arrive(udp_window& window, std::size_t index, std::uint64_t count, std::int64_t at_ms) {
    const std::int64_t arrival = kStart + at_ms * kMs;
    window.on_datagram(index, kBytes, udp_header_at(arrival - kMs, count), arrival);
}

// Sequence numbers `first`..`last` on stream 0, one every 200 ms from `from_ms`, except those in `lost`.
void arrive_run(udp_window& window, std::uint64_t first, std::uint64_t last, std::int64_t from_ms,
                const std::vector<std::uint64_t>& lost) {
    for (std::uint64_t count = first; count <= last; ++count) {
        if (std::find(lost.begin(), lost.end(), count) == lost.end()) {
            arrive(window, 0, count, from_ms + static_cast<std::int64_t>(count - first) * 200);
        }
    }
}

}  // namespace

TEST_CASE("iperf3 UDP window: intervals by arrival time, loss where the gap opened, nothing after the window",
          "[iperf3][udp]") {
    udp_window window(plan{0, 2'000 * kMs, 1'000 * kMs}, 1);
    CHECK_FALSE(window.started());
    arrive_run(window, 1, 10, 0, {4, 8});  // 0.0 s .. 1.8 s
    arrive(window, 0, 11, 2'000);          // at the window's end: not counted
    CHECK(window.started());
    CHECK(window.first_ns() == kStart);
    CHECK(window.last_ns() == kStart + 1'800 * kMs);
    REQUIRE(window.point_count() == 2);

    const udp_window_interval first = window.close_point(0);
    CHECK(first.start_ns == 0);
    CHECK(first.end_ns == 1'000 * kMs);
    CHECK_FALSE(first.omitted);
    CHECK(first.stream_bytes == std::vector<std::uint64_t>{4 * kBytes});  // 1, 2, 3, 5
    CHECK(first.datagrams == 4);
    CHECK(first.lost == 1);
    CHECK(first.mean_jitter_seconds == 0.0);
    const udp_window_interval second = window.close_point(1);
    CHECK(second.start_ns == 1'000 * kMs);
    CHECK(second.end_ns == 2'000 * kMs);
    CHECK(second.stream_bytes == std::vector<std::uint64_t>{4 * kBytes});  // 6, 7, 9, 10
    CHECK(second.datagrams == 4);
    CHECK(second.lost == 1);

    const udp_receiver_figures& f = window.figures(0);
    CHECK(f.bytes == 8 * kBytes);
    CHECK(f.packets == 10);
    CHECK(f.errors == 2);
    CHECK(f.datagrams == 8);
    CHECK(window.omitted_bytes() == 0);
}

TEST_CASE("iperf3 UDP window: the warm-up resets iperf3's figures and is set apart", "[iperf3][udp]") {
    // No intervals: the points are the warm-up's end and the window's.
    udp_window window(plan{1'000 * kMs, 1'000 * kMs, 0}, 1);
    arrive_run(window, 1, 5, 0, {2});       // the warm-up: 0.0 s .. 0.8 s
    arrive_run(window, 6, 10, 1'000, {9});  // the window: 1.0 s .. 1.8 s
    REQUIRE(window.point_count() == 2);
    const udp_window_interval warm_up = window.close_point(0);
    CHECK(warm_up.omitted);
    CHECK(warm_up.datagrams == 4);
    CHECK(warm_up.lost == 1);
    const udp_window_interval measured = window.close_point(1);
    CHECK_FALSE(measured.omitted);
    CHECK(measured.datagrams == 4);
    CHECK(measured.lost == 1);

    const udp_receiver_figures& f = window.figures(0);
    CHECK(f.bytes == 4 * kBytes);  // the window's only
    CHECK(f.packets == 10);
    CHECK(f.omitted_packets == 5);
    CHECK(f.errors == 2);
    CHECK(f.omitted_errors == 1);
    CHECK(window.omitted_bytes() == 4 * kBytes);
}

TEST_CASE("iperf3 UDP window: a warm-up longer than an interval, and a stream that receives nothing",
          "[iperf3][udp]") {
    udp_window window(plan{2'000 * kMs, 1'000 * kMs, 1'000 * kMs}, 2);
    arrive(window, 0, 1, 500);
    // Stream 1's datagram arrived before time 0 (stream 0's first was read first): it counts from time 0.
    window.on_datagram(1, kBytes, udp_header_at(kStart - 20 * kMs, 1), kStart - 10 * kMs);
    arrive(window, 0, 2, 1'500);
    arrive(window, 0, 3, 2'500);
    REQUIRE(window.point_count() == 3);
    CHECK(window.first_ns() == kStart + 500 * kMs);
    CHECK(window.close_point(0).stream_bytes == std::vector<std::uint64_t>{kBytes, kBytes});
    CHECK(window.close_point(1).stream_bytes == std::vector<std::uint64_t>{kBytes, 0});
    const udp_window_interval last = window.close_point(2);
    CHECK_FALSE(last.omitted);
    CHECK(last.stream_bytes == std::vector<std::uint64_t>{kBytes, 0});  // 2.5 s is 2.0 s after time 0
    CHECK(window.omitted_bytes() == 3 * kBytes);
    CHECK(window.figures(0).bytes == kBytes);
    CHECK(window.figures(1).bytes == 0);
}
