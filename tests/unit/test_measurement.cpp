// The receiver's interval accounting with a fake clock: exact intervals, omit handling and totals.
#include <catch2/catch.hpp>

#include <vector>

#include "common/measurement.hpp"

using namespace speed::measure;

namespace {
constexpr std::int64_t kSecond = 1'000'000'000;
}

TEST_CASE("sample points: interval boundaries, the warm-up end and the window end", "[measurement]") {
    plan p{2 * kSecond, 3 * kSecond, kSecond};
    CHECK(p.sample_points() ==
          std::vector<std::int64_t>{1 * kSecond, 2 * kSecond, 3 * kSecond, 4 * kSecond, 5 * kSecond});
    plan uneven{kSecond / 2, 2 * kSecond, kSecond};
    CHECK(uneven.sample_points() ==
          std::vector<std::int64_t>{kSecond / 2, kSecond, 2 * kSecond, 5 * kSecond / 2});
    plan no_intervals{0, 10 * kSecond, 0};
    CHECK(no_intervals.sample_points() == std::vector<std::int64_t>{10 * kSecond});
    plan ragged_end{0, 2500'000'000, kSecond};
    CHECK(ragged_end.sample_points() == std::vector<std::int64_t>{kSecond, 2 * kSecond, 2500'000'000});
}

TEST_CASE("intervals and totals from a fake clock", "[measurement]") {
    interval_meter meter(plan{kSecond, 2 * kSecond, kSecond}, 2);
    std::vector<std::uint64_t> counters{0, 0};
    meter.start(counters);

    counters = {100, 50};
    const interval warmup = meter.sample(kSecond + 1000, counters);  // the sampler woke 1 us late
    CHECK(warmup.omitted);
    CHECK(warmup.index == 0);
    CHECK(warmup.bytes() == 150);
    CHECK(warmup.end_ns == kSecond + 1000);

    counters = {1100, 1050};
    const interval first = meter.sample(2 * kSecond, counters);
    CHECK_FALSE(first.omitted);
    CHECK(first.stream_bytes == std::vector<std::uint64_t>{1000, 1000});
    CHECK(first.start_ns == kSecond + 1000);
    // The rate uses the observed length, 1 s minus 1 us.
    CHECK(first.bits_per_second() == Approx(2000 * 8 / 0.999999).epsilon(1e-12));

    counters = {2100, 3050};
    const interval second = meter.sample(3 * kSecond, counters);
    CHECK(second.bytes() == 3000);
    CHECK(meter.finished());

    const totals result = meter.result();
    CHECK(result.stream_bytes == std::vector<std::uint64_t>{2000, 3000});
    CHECK(result.omitted_bytes == 150);
    CHECK(result.omitted_ns == kSecond + 1000);
    CHECK(result.window_ns == 2 * kSecond - 1000);
    // Intervals outside the warm-up add up to the window exactly.
    CHECK(first.bytes() + second.bytes() == result.bytes());
}

TEST_CASE("without a warm-up, the window starts at time 0", "[measurement]") {
    interval_meter meter(plan{0, kSecond, 0}, 1);
    std::vector<std::uint64_t> counters{0};
    meter.start(counters);
    counters = {125'000'000};
    meter.sample(kSecond, counters);
    const totals result = meter.result();
    CHECK(result.omitted_bytes == 0);
    CHECK(result.bits_per_second() == 1e9);
}

TEST_CASE("sampling past the plan is a caller error", "[measurement]") {
    interval_meter meter(plan{0, kSecond, 0}, 1);
    std::vector<std::uint64_t> counters{0};
    meter.start(counters);
    meter.sample(kSecond, counters);
    CHECK_THROWS_AS(meter.sample(2 * kSecond, counters), std::logic_error);
}
