#include <catch2/catch.hpp>

#include <vector>

#include "common/statistics.hpp"

using namespace speed::stats;

TEST_CASE("percentiles interpolate between closest ranks (type 7)", "[statistics]") {
    const std::vector<double> sorted{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    CHECK(percentile_of_sorted(sorted, 0.0) == 1.0);
    CHECK(percentile_of_sorted(sorted, 1.0) == 10.0);
    CHECK(percentile_of_sorted(sorted, 0.5) == 5.5);
    CHECK(percentile_of_sorted(sorted, 0.9) == Approx(9.1).epsilon(1e-12));
    CHECK(percentile_of_sorted(sorted, 0.99) == Approx(9.91).epsilon(1e-12));
    CHECK(percentile_of_sorted(std::vector<double>{}, 0.5) == 0.0);
    CHECK(percentile_of_sorted(std::vector<double>{7}, 0.9) == 7.0);
}

TEST_CASE("summary of an unsorted series", "[statistics]") {
    const std::vector<double> samples{4, 1, 3, 2, 10};
    const summary s = summarize(samples);
    CHECK(s.count == 5);
    CHECK(s.min == 1);
    CHECK(s.max == 10);
    CHECK(s.median == 3);
    CHECK(s.mean == 4);
    CHECK(s.p90 == Approx(7.6).epsilon(1e-12));               // 0.9 * 4 = rank 3.6 between 4 and 10
    CHECK(s.p99 == Approx(9.76).epsilon(1e-12));              // rank 3.96
    CHECK(s.stddev == Approx(3.162277660168).epsilon(1e-9));  // sqrt(50 / 5)
}

TEST_CASE("summary of nothing is all zeros", "[statistics]") {
    const summary s = summarize(std::vector<double>{});
    CHECK(s.count == 0);
    CHECK(s.mean == 0);
    CHECK(s.max == 0);
}

TEST_CASE("jitter of a probe series is the mean absolute successive difference", "[statistics]") {
    CHECK(mean_consecutive_difference(std::vector<double>{10, 12, 11, 15}) ==
          Approx((2.0 + 1.0 + 4.0) / 3.0));
    CHECK(mean_consecutive_difference(std::vector<double>{5}) == 0.0);
    CHECK(mean_consecutive_difference(std::vector<double>{}) == 0.0);
}

TEST_CASE("trimmed mean drops the requested ranks", "[statistics]") {
    const std::vector<double> samples{1, 2, 3, 4, 5, 6, 7, 8, 9, 100};
    CHECK(trimmed_mean(samples, 0.0, 0.9) == 5.0);  // drops 100
    CHECK(trimmed_mean(samples, 0.1, 0.9) == 5.5);  // drops 1 and 100
    CHECK(trimmed_mean(samples, 0.0, 1.0) == 14.5);
    CHECK(trimmed_mean(samples, 0.5, 0.5) == 0.0);
}

TEST_CASE("RFC 3550 jitter follows J += (|D| - J) / 16", "[statistics]") {
    rfc3550_jitter jitter;
    CHECK(jitter.empty());
    jitter.add_transit(100.0);
    CHECK(jitter.value() == 0.0);
    jitter.add_transit(116.0);  // D = 16 -> J = 1
    CHECK(jitter.value() == 1.0);
    jitter.add_transit(100.0);  // D = 16 -> J = 1 + 15/16
    CHECK(jitter.value() == 1.0 + 15.0 / 16.0);
    jitter.add_transit(100.0);  // D = 0 -> J = J - J/16
    CHECK(jitter.value() == (1.0 + 15.0 / 16.0) * 15.0 / 16.0);
}
