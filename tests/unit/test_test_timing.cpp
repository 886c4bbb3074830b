// One test's timing (common/test_timing.hpp): the plan, length and deadlines both binaries derive from the
// TEST_REQUEST, with exact values.
#include <catch2/catch.hpp>

#include <chrono>
#include <limits>

#include "common/limits.hpp"
#include "common/test_timing.hpp"

using namespace std::chrono_literals;
using speed::test_timing;

namespace {
speed::proto::test_request request_of(std::uint32_t omit_ms, std::uint32_t duration_ms,
                                      std::uint32_t interval_ms) {
    speed::proto::test_request request;
    request.omit_ms = omit_ms;
    request.duration_ms = duration_ms;
    request.interval_ms = interval_ms;
    return request;
}
}  // namespace

TEST_CASE("test timing: the request's milliseconds, length and plan", "[test_timing]") {
    const test_timing timing = test_timing::of(request_of(2'500, 10'000, 1'000));
    CHECK(timing.warm_up == 2'500ms);
    CHECK(timing.window == 10'000ms);
    CHECK(timing.interval == 1'000ms);
    CHECK(timing.length() == 12'500ms);
    CHECK(timing.length_seconds() == 12.5);
    const speed::measure::plan plan = timing.plan();
    CHECK(plan.omit_ns == 2'500'000'000);
    CHECK(plan.duration_ns == 10'000'000'000);
    CHECK(plan.interval_ns == 1'000'000'000);
    CHECK(plan.end_ns() == 12'500'000'000);
}

TEST_CASE("test timing: the largest values the wire carries do not overflow", "[test_timing]") {
    constexpr std::uint32_t kMax = std::numeric_limits<std::uint32_t>::max();
    const test_timing timing = test_timing::of(request_of(kMax, kMax, kMax));
    CHECK(timing.length() == std::chrono::milliseconds(8'589'934'590));
    CHECK(timing.plan().end_ns() == 8'589'934'590'000'000);
    CHECK(timing.client_stop_wait() == std::chrono::milliseconds(8'589'934'590 + 10'000));
}

TEST_CASE("test timing: the client's and the server's deadlines for the end of the window", "[test_timing]") {
    const test_timing timing = test_timing::of(request_of(1'000, 3'000, 500));
    // kFirstByteTimeout (5 s) + warm-up + window + kStopGrace (5 s).
    CHECK(timing.client_stop_wait() == 14'000ms);
    // Warm-up + window + the longer of the window and the least grace.
    CHECK(timing.server_stop_wait(1'000ms) == 7'000ms);
    CHECK(timing.server_stop_wait(5'000ms) == 9'000ms);
    const test_timing short_window = test_timing::of(request_of(0, 100, 0));
    CHECK(short_window.server_stop_wait(1'000ms) == 1'100ms);
    CHECK(short_window.plan().sample_points() == std::vector<std::int64_t>{100'000'000});
}

TEST_CASE("test timing: the byte cap's rate spreads max_bytes over warm-up plus window", "[test_timing]") {
    speed::server_limits limits;
    limits.max_bitrate = 0;
    limits.max_bytes = 10'000'000;
    // 10 MB in 2 s + 3 s = 16 Mbit/s.
    CHECK(speed::sender_bitrate(request_of(2'000, 3'000, 0), limits) == 16'000'000);
}
