// The clock pair that joins monotonic round trips with real-time kernel stamps (net/timestamps.hpp).
#include <catch2/catch.hpp>

#include "net/clock.hpp"
#include "net/timestamps.hpp"

using namespace speed;

TEST_CASE("both clocks are read within one bracket of each other", "[unit][clocks]") {
    for (int round = 0; round < 1000; ++round) {
        const std::int64_t monotonic_before = net::now_ns();
        const std::int64_t realtime_before = net::realtime_now_ns();
        const net::clock_pair pair = net::read_clocks();
        const std::int64_t realtime_after = net::realtime_now_ns();
        const std::int64_t monotonic_after = net::now_ns();
        REQUIRE(pair.monotonic_ns >= monotonic_before);
        REQUIRE(pair.monotonic_ns <= monotonic_after);
        // A wall-clock step during the loop would break the bracket; none happens on a test machine, and a
        // pair whose two readings came from different moments would fall outside it only by more than that.
        REQUIRE(pair.realtime_ns >= realtime_before);
        REQUIRE(pair.realtime_ns <= realtime_after);
    }
}
